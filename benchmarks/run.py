"""attrnet benchmark suite: inference, end-to-end predict and training speed, side by side in one run.

    python benchmarks/run.py --suite cpu --out benchmarks/RESULTS.md
    python benchmarks/run.py --suite gpu --out benchmarks/RESULTS.gpu.md

Sections (``--sections inference,e2e,train``):

- inference: unfolded eager torch vs folded torch vs ONNX Runtime fp32 / int8
  (QDQ symmetric, the TensorRT layout) / int8-cpu (uint8 activations) on CPU;
  on GPU eager and folded torch fp16, and folded fp16 with CUDA graphs. Models
  (random init: speed only): `tiny`, a branched `vgg16-thin`, a cross-stitch
  model and `resnet50` multi-head at 224x224; batch 1/32/256. Host uint8 in,
  probabilities out (on GPU the input is already on the device).
- e2e: `Predictor` over a folder of generated 640x480 JPEGs with the shipped
  default model: D (decode+resize alone, same threads), M (model alone), the
  end-to-end rate and the pipeline efficiency e2e / (1/(1/D + 1/M)).
- train: training images/s of the shared model under each weighting and of
  cross-stitch at K = groups and K = attributes (40), each in a child process
  whose own peak RSS is read with os.wait4.

The results file (and the ``--json`` file) is rewritten atomically after
each section, so a run stopped part-way (e.g. by ``timeout`` in
benchmarks/gpu_check.sh) keeps the sections it finished; the machine, date
and library versions head it.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from attrnet.bench import machine
from attrnet.bench.models import onnx_for
from attrnet.bench.proc import run_child
from attrnet.bench.stats import percentile, pipeline_ceiling
from attrnet.bench.table import markdown_table
from attrnet.core.fileio import atomic_write_text

SECTIONS = ("inference", "e2e", "train")


@dataclass
class ModelCase:
    name: str
    arch: str
    kind: str  # shared | branched | cross-stitch
    size: int
    batches: tuple[int, ...]
    note: str = ""


@dataclass
class Cell:
    model: str
    variant: str
    batch: int
    note: str = ""
    images_per_s: float | None = None
    p50_ms: float | None = None
    peak_gpu_mb: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def log(msg: str) -> None:
    sys.stderr.write(msg + "\n")
    sys.stderr.flush()


# ---------------------------------------------------------------- models

def build_net(case: ModelCase):
    """A random-init MultiTaskNet for `case` over the 40 CelebA attributes, BatchNorm statistics perturbed."""
    import torch

    from attrnet.bench.train_speed import celeba_groups
    from attrnet.core import topology as T
    from attrnet.models.backbones import backbone
    from attrnet.models.net import MultiTaskNet
    from attrnet.core.schema import complete_groups, preset

    schema = preset("celeba")
    widths = backbone(case.arch).widths
    groups = complete_groups(celeba_groups(), schema)
    if case.kind == "shared":
        topo = T.shared(case.arch, widths, schema.names)
    elif case.kind == "branched":  # FAFS-like: shared trunk, groups split over the last 5 layers
        topo = T.split(case.arch, widths, groups, len(widths) - 5)
    else:
        topo = T.cross_stitch(case.arch, widths, groups)
    torch.manual_seed(0)
    net = MultiTaskNet(topo, schema)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
    return net.eval()


def save_ckpt(net, size: int, folder: Path) -> Path:
    from attrnet.train.checkpoint import model_metadata, save_model
    from attrnet.core.input_spec import InputSpec

    path = folder / "best.safetensors"
    save_model(path, net, model_metadata(net, InputSpec(size, size).to_dict()))
    return path


def time_budget(fn: Callable[[], Any], budget_s: float, min_iters: int = 2, max_iters: int = 20,
                warmup: int = 1, sync: Callable[[], None] | None = None) -> list[float]:
    """Per-call seconds: `warmup` untimed calls, then calls until `budget_s` is spent (min/max iterations)."""
    for _ in range(warmup):
        fn()
        if sync:
            sync()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < max_iters and (len(times) < min_iters or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        times.append(time.perf_counter() - t0)
    return times


# ---------------------------------------------------------------- inference

def cpu_variants(net, case: ModelCase, work: Path, cores: int) -> dict[str, Callable[[np.ndarray], Any]]:
    """name -> run(uint8 batch) for the CPU suite."""
    import torch

    from attrnet.export.fold import fold_model
    from attrnet.core.input_spec import InputSpec
    from attrnet.serve.backends import open_backend
    from attrnet.bench.eager import EagerUInt8

    spec = InputSpec(case.size, case.size)
    torch.set_num_threads(cores)
    eager = EagerUInt8(net, spec).eval()
    folded, _ = fold_model(net, spec)

    def torch_run(module):
        def run(x: np.ndarray):
            with torch.inference_mode():
                return module(torch.from_numpy(x))
        return run

    out: dict[str, Callable[[np.ndarray], Any]] = {"eager torch (unfolded)": torch_run(eager),
                                                   "folded torch": torch_run(folded)}
    ckpt = save_ckpt(net, case.size, work)
    for precision in ("fp32", "int8", "int8-cpu"):
        t0 = time.perf_counter()
        path = onnx_for(ckpt, precision, work, calib_images=16)
        log(f"  exported {path.name} in {time.perf_counter() - t0:.1f}s")
        out[f"onnxruntime {precision}"] = open_backend(path, "cpu", "onnxruntime", threads=cores).run
    return out


def gpu_variants(net, case: ModelCase) -> dict[str, Callable[[Any], Any]]:
    """name -> run(uint8 CUDA batch) for the GPU suite (fp16)."""
    import torch

    from attrnet.export.fold import fold_model
    from attrnet.core.input_spec import InputSpec
    from attrnet.serve.gpu import CudaGraphRunner, prepare_module
    from attrnet.bench.eager import EagerUInt8

    spec = InputSpec(case.size, case.size)
    eager = prepare_module(EagerUInt8(net, spec), "cuda", torch.float16,
                           channels_last=False)
    folded = prepare_module(fold_model(net, spec)[0], "cuda", torch.float16)
    graphs = CudaGraphRunner(folded, case.batches, torch.float16, image_shape=(case.size, case.size), prepared=True)

    def eager_run(module):
        def run(x):
            with torch.inference_mode():
                return module(x)
        return run

    return {"eager torch fp16 (unfolded)": eager_run(eager), "folded torch fp16": eager_run(folded),
            "folded fp16 + CUDA graphs": graphs}


def inference(suite: str, cases: list[ModelCase], budget: float, cores: int) -> list[Cell]:
    cells: list[Cell] = []
    gpu = suite == "gpu"
    for case in cases:
        log(f"inference: {case.name} at {case.size}x{case.size}")
        net = build_net(case)
        with tempfile.TemporaryDirectory(prefix="attrnet-suite-") as tmp:
            variants = gpu_variants(net, case) if gpu else cpu_variants(net, case, Path(tmp), cores)
            for b in case.batches:
                x = np.random.default_rng(b).integers(0, 256, (b, case.size, case.size, 3), dtype=np.uint8)
                for name, run in variants.items():
                    cells.append(_measure_cell(case, name, b, x, run, budget, gpu))
                    c = cells[-1]
                    log(f"  {name:28s} batch {b:4d}: " + (f"{c.images_per_s:10.1f} images/s" if c.images_per_s
                                                          else c.note))
            del variants
    return cells


def _measure_cell(case: ModelCase, name: str, b: int, x: np.ndarray, run, budget: float, gpu: bool) -> Cell:
    sync = None
    if gpu:
        import torch

        x = torch.from_numpy(x).cuda()
        sync = torch.cuda.synchronize
        torch.cuda.reset_peak_memory_stats()
    try:
        lat = time_budget(lambda: run(x), budget, sync=sync)
    except Exception as exc:  # noqa: BLE001 - a failing variant is a table cell, not a crash
        return Cell(case.name, name, b, note=f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
    peak = None
    if gpu:
        import torch

        peak = torch.cuda.max_memory_allocated() / 2**20
    return Cell(case.name, name, b, images_per_s=b * len(lat) / sum(lat), p50_ms=percentile(lat, 50) * 1e3,
                peak_gpu_mb=peak)


def inference_markdown(cells: list[Cell], cases: list[ModelCase], suite: str) -> str:
    base_name = "eager torch fp16 (unfolded)" if suite == "gpu" else "eager torch (unfolded)"
    base = {(c.model, c.batch): c.images_per_s for c in cells if c.variant == base_name}
    body = []
    for c in cells:
        ref = base.get((c.model, c.batch))
        ratio = f"{c.images_per_s / ref:.2f}x" if c.images_per_s and ref else "-"
        row = [c.model, c.variant, str(c.batch), f"{c.images_per_s:,.1f}" if c.images_per_s else "-",
               f"{c.p50_ms:.2f}" if c.p50_ms else "-", ratio]
        if suite == "gpu":
            row.append(f"{c.peak_gpu_mb:,.0f}" if c.peak_gpu_mb is not None else "-")
        row.append(c.note)
        body.append(row)
    headers = ["model", "variant", "batch", "images/s", "p50 ms/batch", "vs eager"]
    if suite == "gpu":
        headers.append("peak GPU MiB")
    headers.append("note")
    notes = [f"- {c.name}: {c.note}" for c in cases if c.note]
    return markdown_table(headers, body) + ("\n\n" + "\n".join(notes) if notes else "")


# ---------------------------------------------------------------- end to end

def end_to_end(suite: str, count: int, cores: int, batch: int, rounds: int = 3) -> dict[str, Any]:
    from attrnet.bench.jpegs import write_jpegs
    from attrnet.serve.pipeline import load_item
    from attrnet.serve.predictor import Predictor
    from attrnet.serve.sources import Item
    from attrnet.weights import default_checkpoint, default_onnx

    device = "cuda" if suite == "gpu" else "cpu"
    model = default_checkpoint() if suite == "gpu" else default_onnx()
    with tempfile.TemporaryDirectory(prefix="attrnet-e2e-") as tmp:
        folder = Path(tmp) / "jpegs"
        files = write_jpegs(folder, count, 480, 640, distinct=32)
        pred = Predictor(model, device=device, batch_size=batch, workers=cores, threads=cores)
        spec = pred.backend.input_spec
        log(f"e2e: {count} JPEGs 640x480 -> {spec.height}x{spec.width}, {pred!r}")
        items = [Item(str(p), p) for p in files]
        batches: list[np.ndarray] = []
        wall = {"D": 0.0, "M": 0.0, "e2e": 0.0}  # best images/s
        cpu = {"D": float("inf"), "M": float("inf"), "e2e": float("inf")}  # least CPU seconds per image

        def timed(key: str, fn: Callable[[], int]) -> None:
            t0, c0 = time.perf_counter(), time.process_time()
            n = fn()
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            wall[key] = max(wall[key], n / dt)
            cpu[key] = min(cpu[key], dc / n)

        def decode_all() -> int:
            decoded = list(pool.map(lambda it: load_item(it, spec), items))
            batches[:] = [np.stack(decoded[i:i + batch]) for i in range(0, count - batch + 1, batch)]
            return count

        def model_all() -> int:
            for x in batches:
                pred.backend.run(x)
            return sum(len(x) for x in batches)

        def predict_all() -> int:
            results[:] = list(pred.predict(folder))
            return len(results)

        results: list[Any] = []
        with ThreadPoolExecutor(cores) as pool:
            list(pool.map(lambda it: load_item(it, spec), items[:64]))  # page cache and decoder warm
            list(pred.predict(files[:64]))
            for _ in range(rounds):  # best of `rounds`: the least disturbed run on a shared machine
                timed("D", decode_all)
                timed("M", model_all)
                timed("e2e", predict_all)
        d_rate, m_rate, e2e = wall["D"], wall["M"], wall["e2e"]
        errors = sum(1 for r in results if not r.ok)
        stats = pred.stats
    ceiling = pipeline_ceiling(d_rate, m_rate)
    out = {"model": model.name, "device": device, "images": count, "batch": batch, "workers": cores, "rounds": rounds,
           "input": f"{spec.height}x{spec.width}", "decode_per_s": d_rate, "model_per_s": m_rate,
           "e2e_per_s": e2e, "ceiling_per_s": ceiling, "efficiency": e2e / ceiling, "errors": errors,
           "cpu_ms_per_image": {k: 1e3 * v for k, v in cpu.items()},
           "cpu_efficiency": (cpu["D"] + cpu["M"]) / cpu["e2e"],
           "stats": {k: v for k, v in vars(stats).items() if isinstance(v, (int, float))}}
    if suite == "gpu":
        out["gpu_goal_efficiency"] = e2e / min(d_rate, m_rate)
    log(f"  D {d_rate:.1f}/s  M {m_rate:.1f}/s  e2e {e2e:.1f}/s  efficiency {out['efficiency']:.2f}  "
        f"CPU-time efficiency {out['cpu_efficiency']:.2f}")
    return out


def e2e_markdown(r: dict[str, Any]) -> str:
    rows = [["D: decode + resize alone", f"{r['decode_per_s']:,.1f}"],
            ["M: model alone (batch %d)" % r["batch"], f"{r['model_per_s']:,.1f}"],
            ["E = 1/(1/D + 1/M)", f"{r['ceiling_per_s']:,.1f}"],
            ["end-to-end `Predictor.predict(folder)`", f"{r['e2e_per_s']:,.1f}"],
            ["pipeline efficiency e2e / E", f"{r['efficiency']:.2f} (goal >= 0.9)"]]
    c = r["cpu_ms_per_image"]
    rows.append(["CPU-time efficiency (D + M CPU ms/image) / e2e CPU ms/image",
                 f"{r['cpu_efficiency']:.2f} ({c['D']:.2f} + {c['M']:.2f} vs {c['e2e']:.2f} ms)"])
    if "gpu_goal_efficiency" in r:
        rows.append(["e2e / min(D, M)", f"{r['gpu_goal_efficiency']:.2f} (GPU goal >= 0.8)"])
    head = (f"{r['images']} generated 640x480 JPEGs, model `{r['model']}` (input {r['input']}) on {r['device']}, "
            f"batch {r['batch']}, {r['workers']} decode threads and {r['workers']} model threads, {r['errors']} errors; "
            f"D, M and e2e each the best of {r['rounds']} interleaved rounds.\n\n")
    return head + markdown_table(["measure", "images/s"], rows)


# ---------------------------------------------------------------- training

def training(suite: str, cores: int) -> list[dict[str, Any]]:
    device = "cuda" if suite == "gpu" else "cpu"
    big = suite == "gpu"
    configs = [{"method": "shared", "weighting": w, "batch_size": 32, "steps": 20 if big else 12}
               for w in ("equal", "awmt", "uncertainty", "dwa")]
    configs += [{"method": "cross-stitch", "columns": "groups", "batch_size": 32 if big else 16,
                 "steps": 20 if big else 2},
                {"method": "cross-stitch", "columns": "per-attribute", "batch_size": 32 if big else 8,
                 "steps": 10 if big else 2}]
    if not big:  # side by side: the same steps with glibc's default malloc (attrnet.train.host_memory)
        configs += [{**configs[0], "keep_freed_memory": False}, {**configs[4], "keep_freed_memory": False}]
    out = []
    for cfg in configs:
        cfg = {**cfg, "device": device, "threads": None if big else cores, "img_size": 64, "arch": "tiny"}
        res = run_child([sys.executable, "-m", "attrnet.bench.train_speed", json.dumps(cfg)], timeout_s=300)
        label = cfg["method"] + (f" ({cfg['columns']})" if cfg["method"] == "cross-stitch" else "")
        if cfg.get("keep_freed_memory") is False:
            label += ", glibc default malloc"
        if res.returncode != 0:
            tail = (res.stderr.strip().splitlines() or ["timed out" if res.returncode == -9 else "failed"])[-1]
            out.append({**cfg, "label": label, "error": tail[:160], "max_rss_mb": res.max_rss_mb})
        else:
            out.append({**json.loads(res.stdout.strip().splitlines()[-1]), "label": label,
                        "max_rss_mb": res.max_rss_mb})
        r = out[-1]
        log(f"train: {label:28s} {r['weighting']:12s} " +
            (f"{r['images_per_s']:8.1f} images/s, peak RSS {r['max_rss_mb']:.0f} MiB" if "images_per_s" in r
             else r["error"]))
    return out


def torch_baseline_mb() -> float:
    """Peak RSS of a child that only imports torch: the floor under every training figure."""
    return run_child([sys.executable, "-c", "import torch"], timeout_s=120).max_rss_mb


def train_markdown(rows: list[dict[str, Any]], baseline_mb: float | None = None) -> str:
    shared = next((r["images_per_s"] for r in rows if r.get("method") == "shared" and r.get("weighting") == "equal"
                   and "images_per_s" in r), None)
    body = []
    for r in rows:
        ok = "images_per_s" in r
        body.append([r["label"], r["weighting"], str(r.get("columns_k", "-")), f"{r.get('params', 0):,}" if ok else "-",
                     str(r["batch_size"]), f"{r['images_per_s']:,.1f}" if ok else "-",
                     f"{r['images_per_s'] / shared:.3f}" if ok and shared else "-",
                     f"{r['max_rss_mb']:,.0f}",
                     f"{r['peak_gpu_mb']:,.0f}" if r.get("peak_gpu_mb") else "-",
                     "" if ok else "error: " + r["error"]])
    table = markdown_table(["model", "weighting", "K columns", "params", "batch", "train images/s",
                            "vs shared equal", "peak RSS MiB", "peak GPU MiB", "note"], body)
    if baseline_mb is not None:
        table += f"\n\nA child process that only imports torch peaks at {baseline_mb:,.0f} MiB on this machine."
    return table


# ---------------------------------------------------------------- goals

LIBMTL_CS40_IMAGES_PER_S = 5.0  # LibMTL 1.1.5 cross-stitch, 40 tasks, 2-core CPU
LIBMTL_CS40_RAM_MB = 20 * 1024
LIBMTL_SHARED_IMAGES_PER_S = 295.0  # its plain shared loop on the same small encoder


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "missed")


def goals_markdown(raw: dict[str, Any], suite: str) -> str:
    """The issue's goals against this run's figures."""
    rows: list[list[str]] = []
    cells = raw.get("inference", [])
    rate = {(c["model"], c["variant"], c["batch"]): c["images_per_s"] for c in cells if c["images_per_s"]}
    models = list(dict.fromkeys(c["model"] for c in cells))
    if suite == "cpu":
        for m in models:
            ratios = [rate[(m, "onnxruntime fp32", b)] / rate[(m, "eager torch (unfolded)", b)]
                      for (mm, v, b) in rate if mm == m and v == "onnxruntime fp32"
                      and (m, "eager torch (unfolded)", b) in rate]
            if ratios:
                rows.append([f"folded ONNX Runtime fp32 >= 2x unfolded eager torch: {m}",
                             f"{min(ratios):.2f}x - {max(ratios):.2f}x over batch sizes", _verdict(min(ratios) >= 2)])
    else:
        r50 = rate.get(("resnet50 40 heads", "folded fp16 + CUDA graphs", 256))
        rows.append(["resnet50 multi-head 224, batch 256, fp16, CUDA graphs >= 15,000 images/s",
                     f"{r50:,.0f}" if r50 else "-", _verdict(r50 >= 15000 if r50 else None)])
        vgg = rate.get(("vgg16-thin branched", "folded fp16 + CUDA graphs", 256))
        rows.append(["branched vgg16-thin several times faster than resnet50 (batch 256)",
                     f"{vgg / r50:.1f}x" if vgg and r50 else "-", _verdict(vgg / r50 >= 3 if vgg and r50 else None)])
    e2e = raw.get("e2e")
    if e2e:
        if suite == "cpu":
            rows.append(["predict pipeline efficiency e2e / (1/(1/D + 1/M)) >= 0.9", f"{e2e['efficiency']:.2f}",
                         _verdict(e2e["efficiency"] >= 0.9)])
            if "cpu_efficiency" in e2e:
                rows.append(["predict CPU-time efficiency (D + M CPU time) / e2e CPU time, per image",
                             f"{e2e['cpu_efficiency']:.2f}", "context"])
        else:
            rows.append(["end-to-end predict with nvjpeg >= 5,000 images/s", f"{e2e['e2e_per_s']:,.0f}",
                         _verdict(e2e["e2e_per_s"] >= 5000)])
            rows.append(["GPU e2e >= 0.8 x min(D, M)", f"{e2e['gpu_goal_efficiency']:.2f}",
                         _verdict(e2e["gpu_goal_efficiency"] >= 0.8)])
    train = {r["label"]: r for r in raw.get("train", []) if "images_per_s" in r}
    cs40, cs8 = train.get("cross-stitch (per-attribute)"), train.get("cross-stitch (groups)")
    if suite == "cpu" and cs40:
        rows.append(["cross-stitch K=40 training >= LibMTL's 5 images/s", f"{cs40['images_per_s']:.1f} images/s",
                     _verdict(cs40["images_per_s"] >= LIBMTL_CS40_IMAGES_PER_S)])
        rows.append(["cross-stitch K=40 peak memory <= 1/5 of LibMTL's ~20 GB", f"{cs40['max_rss_mb']:,.0f} MiB",
                     _verdict(cs40["max_rss_mb"] <= LIBMTL_CS40_RAM_MB / 5)])
    shared = train.get("shared")
    if suite == "cpu" and shared:
        peer = LIBMTL_CS40_IMAGES_PER_S / LIBMTL_SHARED_IMAGES_PER_S
        for label, r in (("K=40", cs40), ("K=groups", cs8)):
            if r:
                rel = r["images_per_s"] / shared["images_per_s"]
                rows.append([f"cross-stitch {label} speed relative to the same run's shared model "
                             f"(LibMTL K=40: {peer:.3f})", f"{rel:.3f} ({rel / peer:.1f}x LibMTL's ratio)",
                             "context"])
    if suite == "cpu" and cs8:
        rows.append(["cross-stitch K=groups training >= 10x LibMTL (50 images/s)", f"{cs8['images_per_s']:.1f} images/s",
                     _verdict(cs8["images_per_s"] >= 10 * LIBMTL_CS40_IMAGES_PER_S)])
    return markdown_table(["goal", "this run", "verdict"], rows)


# ---------------------------------------------------------------- report

def cases_for(suite: str) -> list[ModelCase]:
    if suite == "gpu":
        b = (1, 32, 256)
        return [ModelCase("tiny", "tiny", "shared", 64, b), ModelCase("vgg16-thin branched", "vgg16-thin", "branched", 224, b),
                ModelCase("cross-stitch tiny K=8", "tiny", "cross-stitch", 64, b),
                ModelCase("resnet50 40 heads", "resnet50", "shared", 224, b)]
    return [ModelCase("tiny", "tiny", "shared", 64, (1, 32, 256)),
            ModelCase("vgg16-thin branched", "vgg16-thin", "branched", 64, (1, 32, 256),
                      "vgg16-thin at 64x64 on CPU (the FAFS CPU size) to keep the suite within minutes"),
            ModelCase("cross-stitch tiny K=8", "tiny", "cross-stitch", 64, (1, 32),
                      "cross-stitch K=8 batch 256 not run on the 2-core CPU (about 10 s per batch per variant)"),
            ModelCase("resnet50 40 heads", "resnet50", "shared", 224, (1, 32),
                      "resnet50 at 224: batch 256 not run on the 2-core CPU (about a minute per batch per variant); "
                      "batch 32 is timed over 2 batches after 1 warm-up")]


def load_sentence(load: tuple[float, float], cores: int) -> str:
    """What the 1-minute load average at the start and end of the run says about the figures."""
    where = f"1-minute load average {load[0]:.1f} at the start and {load[1]:.1f} at the end, {cores} cores"
    if max(load) > cores:
        return (f"Other jobs shared the machine during the run ({where}), so every figure here is noisy: "
                "compare ratios within one run rather than absolute figures across runs.")
    return (f"The machine was otherwise idle ({where}). Compare ratios within one run rather than absolute "
            "figures across runs.")


def foreign_sections(previous: str, own: list[str]) -> list[str]:
    """The ``## `` sections of a previous results file that other scripts write (e.g. benchmarks/ray_scale.py's
    "Ray Data and Ray Serve"), kept as they are when this suite rewrites the file."""
    chunks = previous.split("\n## ")[1:]
    return ["## " + c.rstrip("\n") for c in chunks if not any(c.startswith(o) for o in own)]


def render(suite: str, info: dict[str, Any], parts: dict[str, str], wall: float, threads: int,
           load: tuple[float, float], sections: list[str], previous: str = "") -> str:
    lines = [f"# attrnet benchmark results ({suite} suite)", "",
             f"Measured on {machine.one_line(info)}.",
             f"{threads} CPU threads for torch, ONNX Runtime, decoding and training. "
             f"Suite wall time {wall / 60:.1f} min. Untrained random-init models (speed only). "
             "Command: `python benchmarks/run.py --suite " + suite + " --out ...`.", ""]
    lines += [load_sentence(load, os.cpu_count() or 1), ""]
    titles = {"inference": "Inference (model-only: uint8 batch in host memory -> probabilities)",
              "e2e": "End-to-end predict (JPEG files -> probabilities), pipeline efficiency",
              "train": "Training speed (in-memory batches, tiny backbone at 64x64, 40 CelebA attributes) "
                       "and peak memory"}
    if "goals" in parts:
        lines += ["## Goals (issue 9) against this run", "", parts["goals"], ""]
    for key in SECTIONS:
        if key in parts:
            lines += [f"## {titles[key]}", "", parts[key], ""]
    for section in foreign_sections(previous, ["Goals", *titles.values(), "Other reports"]):
        lines += [section, ""]
    lines += ["## Other reports", "",
              "- Export speed and fp16/int8 quality: [EXPORT_RESULTS.md](EXPORT_RESULTS.md) "
              "(`python benchmarks/export_speed.py`).",
              "- Predict pipeline D / M / end-to-end and reduced decoding: [PREDICT_RESULTS.md](PREDICT_RESULTS.md) "
              "(`python benchmarks/predict_pipeline.py`).",
              "- Method effects on planted groups (FAFS, cross-stitch, Taskonomy, loss weightings; each paper's "
              "claim next to what is measured): [METHODS.md](METHODS.md) (`python benchmarks/methods.py`)."]
    if suite == "cpu":
        lines.append("- GPU suite (`--suite gpu`, or all GPU checks at once with `benchmarks/gpu_check.sh`): "
                     "not measured yet; no GPU has been lent to the project's sessions.")
    pending = [name for name in sections if name not in parts]
    if pending:
        lines.append(f"- Not finished in this run (yet): {', '.join(pending)}.")
    return "\n".join(lines + [""]) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", choices=("cpu", "gpu"), required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--sections", default=",".join(SECTIONS))
    ap.add_argument("--budget", type=float, default=None, help="Seconds of timing per inference cell.")
    ap.add_argument("--e2e-images", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None,
                    help="CPU threads for torch, ONNX Runtime, decoding and training (default: the usable cores).")
    ap.add_argument("--models", default=None, help="Comma-separated subset of the inference models (by arch).")
    ap.add_argument("--json", type=Path, default=None, help="Also write the raw figures as JSON here.")
    args = ap.parse_args(argv)
    sections = [s for s in args.sections.split(",") if s]
    bad = [s for s in sections if s not in SECTIONS]
    if bad:
        ap.error(f"unknown section {bad[0]!r} (choose from {', '.join(SECTIONS)})")
    if args.suite == "gpu":
        import torch

        if not torch.cuda.is_available():
            ap.error("--suite gpu needs a CUDA device (torch sees none)")
    cores = args.threads or machine.usable_cores()
    t0 = time.perf_counter()
    load_start = os.getloadavg()[0]
    info = machine.describe()
    parts: dict[str, str] = {}
    raw: dict[str, Any] = {}
    previous = Path(args.out).read_text(encoding="utf-8") if Path(args.out).is_file() else ""

    def save() -> None:
        """Write the results so far (after every section: a run killed later keeps them)."""
        parts["goals"] = goals_markdown(raw, args.suite)
        load = (load_start, os.getloadavg()[0])
        atomic_write_text(args.out, render(args.suite, info, parts, time.perf_counter() - t0, cores, load, sections,
                                           previous))
        if args.json:
            atomic_write_text(args.json, json.dumps({"machine": info, "load_average_1min": load, **raw}, indent=2,
                                                    default=str) + "\n")

    if "inference" in sections:
        cases = cases_for(args.suite)
        if args.models:
            wanted = set(args.models.split(","))
            cases = [c for c in cases if c.arch in wanted]
        budget = args.budget if args.budget is not None else (3.0 if args.suite == "gpu" else 1.5)
        cells = inference(args.suite, cases, budget, cores)
        parts["inference"] = inference_markdown(cells, cases, args.suite)
        raw["inference"] = [vars(c) for c in cells]
        save()
    if "e2e" in sections:
        count = args.e2e_images or (5000 if args.suite == "gpu" else 500)
        r = end_to_end(args.suite, count, cores, 64 if args.suite == "gpu" else 32)
        parts["e2e"] = e2e_markdown(r)
        raw["e2e"] = r
        save()
    if "train" in sections:
        rows = training(args.suite, cores)
        parts["train"] = train_markdown(rows, torch_baseline_mb())
        raw["train"] = rows
    save()
    log(f"wrote {args.out} in {(time.perf_counter() - t0) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
