"""Ray Data predict against local predict, and the Ray Serve endpoint against its limit, side by side in one run.

    python benchmarks/ray_scale.py [--images 2000] [--rounds 2] [--out benchmarks/RESULTS.md]

Needs the `ray` extra. Everything runs on this machine, in one process
driving a local Ray started with all usable cores, on generated 640x480
JPEGs and the shipped default model (or --model):

- Ray Data: `predict_dataset` over the folder (one actor per core, one
  thread each) against `Predictor.predict` over the same folder (all cores),
  interleaved rounds. The start-up (``ray.init``, and actor start-up until
  the first rows arrive) is given separately from the rate once started.
- Endpoint: requests/s and p50/p99 latency at each --clients concurrency,
  with dynamic batching on (--max-batch, --batch-wait-ms) and off (batch 1),
  against its limit E = 1/(1/H + 1/D + 1/M): H is a no-op endpoint with the
  same Serve set-up (benchmarks/ray_http.py), D decode + resize alone and M
  the model alone at the batch size the endpoint runs.

The section "Ray Data and Ray Serve" of --out is replaced (or added); the run
takes a few minutes on 2 cores.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from predict_pipeline import decode_rate, model_rate
from ray_http import Load, noop_app, run_load

from attrnet.bench.jpegs import write_jpegs
from attrnet.bench.machine import cpu_model, usable_cores
from attrnet.bench.stats import pipeline_ceiling
from attrnet.core.fileio import atomic_write_text
from attrnet.serve.pipeline import load_item
from attrnet.serve.predictor import Predictor
from attrnet.serve.scale import predict_dataset
from attrnet.serve.scale_endpoint import QUIET_LOGS, answer, endpoint_app
from attrnet.serve.scale_model import BatchModel, ModelFile
from attrnet.serve.sources import Item

HEADING = "## Ray Data and Ray Serve (issue 16)"


def local_rate(predictor: Predictor, folder: Path) -> float:
    start = time.perf_counter()
    n = sum(1 for r in predictor.predict(folder) if r.ok)
    return n / (time.perf_counter() - start)


def ray_rate(folder: Path, model: ModelFile, concurrency: int, batch_size: int) -> tuple[float, float, float]:
    """(whole-run images/s, seconds until the first rows, images/s once the first rows arrived)."""
    start = time.perf_counter()
    first: tuple[float, int] | None = None
    n = 0
    ds = predict_dataset(folder, model, batch_size=batch_size, concurrency=concurrency)
    for batch in ds.iter_batches(batch_size=batch_size, batch_format="numpy"):
        if any(isinstance(e, str) for e in batch["error"]):
            raise RuntimeError("Ray predict returned error rows on generated JPEGs")
        n += len(batch["path"])
        if first is None:
            first = (time.perf_counter(), n)
    end = time.perf_counter()
    assert first is not None
    return n / (end - start), first[0] - start, (n - first[1]) / (end - first[0])


def serve_loads(app: Any, url: str, bodies: list[bytes], clients: list[int], per_client: int) -> list[Load]:
    from ray import serve

    serve.run(app, name="bench", route_prefix="/", logging_config=QUIET_LOGS)
    try:
        loads = []
        for c in clients:
            run_load(url, bodies, c, 2 * c)  # warm-up: connections, first batches
            loads.append(run_load(url, bodies, c, max(100, per_client * c)))
            if set(loads[-1].statuses) != {200}:
                raise RuntimeError(f"endpoint answered {loads[-1].statuses}")
        return loads
    finally:
        serve.delete("bench")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="an .onnx file (default: the shipped default.onnx)")
    ap.add_argument("--images", type=int, default=2000, help="JPEGs for Ray Data vs local predict")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds of local and Ray Data predict")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--max-batch", type=int, default=64, help="endpoint's dynamic batch size")
    ap.add_argument("--batch-wait-ms", type=float, default=5.0)
    ap.add_argument("--clients", default="1,16,64", help="concurrent requests to measure the endpoint at")
    ap.add_argument("--per-client", type=int, default=12, help="requests per concurrent client (at least 100)")
    ap.add_argument("--port", type=int, default=18600)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("RESULTS.md"))
    args = ap.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    cores = usable_cores()
    load_start = os.getloadavg()[0]
    import ray

    with tempfile.TemporaryDirectory(prefix="attrnet-ray-bench-") as tmp:
        folder = Path(tmp) / "vga"
        files = write_jpegs(folder, args.images, 480, 640, distinct=50)
        predictor = Predictor(args.model, device="cpu", batch_size=args.batch_size, workers=cores, threads=cores)
        model = ModelFile.read(predictor.backend.path)
        local_rate(predictor, folder)  # warm-up: page cache, ORT
        t = time.perf_counter()
        ray.init(num_cpus=cores, include_dashboard=False, logging_level="WARNING")
        init_s = time.perf_counter() - t
        local, remote = [], []
        for r in range(args.rounds):
            local.append(local_rate(predictor, folder))
            remote.append(ray_rate(folder, model, cores, args.batch_size))
            print(f"round {r + 1}: local {local[-1]:.0f}, Ray Data {remote[-1][2]:.0f} images/s once started "
                  f"({remote[-1][1]:.1f} s to the first rows)", flush=True)

        spec, backend = predictor.backend.input_spec, predictor.backend
        sample = files[:50]
        bodies = [p.read_bytes() for p in sample]
        decoded = np.stack([load_item(Item(str(p), path=p), spec) for p in files[:512]])
        d = statistics.median(decode_rate(files[:512], spec, cores)[0] for _ in range(3))
        m_batch = statistics.median(model_rate(backend, decoded, args.max_batch)[0] for _ in range(3))
        m_one = statistics.median(model_rate(backend, decoded[:128], 1)[0] for _ in range(3))
        row = answer(BatchModel(model), [bodies[0]])[0][1]

        from ray import serve

        serve.start(http_options={"host": "127.0.0.1", "port": args.port}, logging_config=QUIET_LOGS)
        url = f"http://127.0.0.1:{args.port}/predict"
        results = {}
        for label, max_batch in (("on", args.max_batch), ("off", 1)):
            noop = noop_app(row, max_batch=max_batch, batch_wait_ms=args.batch_wait_ms, cpus_per_replica=cores)
            h = serve_loads(noop, url, bodies, [max(clients)], args.per_client)[0]
            app = endpoint_app(model, max_batch=max_batch, batch_wait_ms=args.batch_wait_ms, cpus_per_replica=cores)
            loads = serve_loads(app, url, bodies, clients, args.per_client)
            m = m_batch if max_batch > 1 else m_one
            results[label] = (h, loads, 1.0 / (1.0 / h.per_second + 1.0 / d + 1.0 / m))
            print(f"batching {label}: H {h.per_second:.0f}/s, " + ", ".join(
                f"c={x.concurrency} {x.per_second:.0f} req/s" for x in loads), flush=True)
        serve.shutdown()
        ray.shutdown()

    text = render(args, cores, (load_start, os.getloadavg()[0]), init_s, local, remote, d, m_batch, m_one, results)
    write_section(args.out, text)
    print(text)


def render(args: argparse.Namespace, cores: int, load: tuple[float, float], init_s: float, local: list[float],
           remote: list[tuple[float, float, float]], d: float, m_batch: float, m_one: float,
           results: dict[str, tuple[Load, list[Load], float]]) -> str:
    lo, steady = statistics.median(local), statistics.median(x[2] for x in remote)
    whole, first = statistics.median(x[0] for x in remote), statistics.median(x[1] for x in remote)
    shared = load[0] > 0.5 * cores or load[1] > 0.5 * cores
    top = max(x.concurrency for x in results["on"][1])
    lines = [
        HEADING, "",
        f"`python benchmarks/ray_scale.py` on {cpu_model()}, {cores} usable cores, ray {_ray_version()}; "
        f"load average {load[0]:.1f} at the start and {load[1]:.1f} at the end"
        + (" (a shared machine: other jobs ran, so compare the ratios, not the absolute numbers)." if shared else "."),
        f"Model {args.model.name if args.model else 'default.onnx (shipped, tiny, 64x64)'}; generated 640x480 JPEGs.",
        "",
        f"Ray Data `predict_dataset` against local `Predictor.predict` on the same {args.images} JPEGs "
        f"(batch {args.batch_size}; local: {cores} decode + {cores} model threads; Ray: {cores} actors of one "
        f"CPU and one thread each), median of {args.rounds} interleaved rounds:",
        "",
        "| measure | images/s | vs local |",
        "|---|---:|---:|",
        f"| local predict | {lo:.0f} | 1.00 |",
        f"| **Ray Data once started** (after the first rows) | {steady:.0f} | **{steady / lo:.2f}** (goal >= 0.8) |",
        f"| Ray Data whole run, actor start-up included | {whole:.0f} | {whole / lo:.2f} |",
        "",
        f"Start-up, given separately: `ray.init` (a new local Ray) {init_s:.1f} s; then each run "
        f"{first:.1f} s until the first rows (actors start, import attrnet and load the model).",
        "",
        f"Endpoint (`attrnet serve`, one replica of {cores} CPUs: {cores} decode threads beside the model), "
        f"requests/s and latency; the client (aiohttp, same machine) posts the JPEG files' bytes; D = {d:.0f} "
        f"decode + resize images/s ({cores} threads), M = {m_batch:.0f} model images/s at batch {args.max_batch} "
        f"and {m_one:.0f} at batch 1:",
        "",
        "| batching | clients | requests/s | p50 ms | p99 ms | vs E |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, (h, loads, e) in results.items():
        name = f"on (max {args.max_batch}, wait {args.batch_wait_ms:g} ms)" if label == "on" else "off"
        for x in loads:
            ratio = f"**{x.per_second / e:.2f}**" if label == "on" and x.concurrency == top else f"{x.per_second / e:.2f}"
            lines.append(f"| {name} | {x.concurrency} | {x.per_second:.0f} | {x.p50_ms:.1f} | {x.p99_ms:.1f} | {ratio} |")
    lines.append("")
    for label, (h, _, e) in results.items():
        lines.append(f"- Batching {label}: H = {h.per_second:.0f} requests/s (no-op endpoint, same set-up, "
                     f"{h.concurrency} clients), E = 1/(1/H + 1/D + 1/M) = {e:.0f} requests/s.")
    on_top = next(x for x in results["on"][1] if x.concurrency == top)
    lines += [f"- Goal: with batching, {top} clients reach >= 0.7 E: "
              f"{on_top.per_second / results['on'][2]:.2f}. The decode + model ceiling alone, "
              f"1/(1/D + 1/M) = {pipeline_ceiling(d, m_batch):.0f} images/s, shows what Serve's HTTP path costs.", ""]
    return "\n".join(lines)


def _ray_version() -> str:
    import ray

    return ray.__version__


def write_section(path: Path, section: str) -> None:
    """Replace this benchmark's section of `path` (up to the next ``## `` heading), or insert it before
    "## Other reports" (else at the end)."""
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if HEADING in text:
        start = text.index(HEADING)
        nxt = text.find("\n## ", start + len(HEADING))
        text = text[:start] + section + ("\n" + text[nxt + 1:] if nxt >= 0 else "")
    elif "\n## Other reports" in text:
        at = text.index("\n## Other reports") + 1
        text = text[:at] + section + "\n" + text[at:]
    else:
        text = text.rstrip("\n") + "\n\n" + section
    atomic_write_text(path, text)


if __name__ == "__main__":
    main()
