"""Predict pipeline efficiency on CPU: D (decode+resize alone), M (model alone), end-to-end, E = 1/(1/D + 1/M).

    python benchmarks/predict_pipeline.py [--images 1000] [--rounds 3] [--out benchmarks/PREDICT_RESULTS.md]

One run, one machine, the default model (or --model): generated 640x480
JPEGs; D decodes and resizes them with the pipeline's own decode function in
`--workers` threads; M runs the model on the already decoded images with
`--threads` threads; end-to-end is `attrnet.Predictor` over the folder with
the same workers and threads. Each is measured `--rounds` times, interleaved,
and the median is reported. The efficiency is end-to-end / E (goal >= 0.9).
Also: the speed-up of reduced-size JPEG decoding on 1920x1080 images (one
thread, decode + resize to the model input).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from attrnet.bench.jpegs import write_jpegs
from attrnet.core.fileio import atomic_write_text
from attrnet.core.input_spec import InputSpec
from attrnet.serve.backend import cpu_count
from attrnet.serve.pipeline import load_item
from attrnet.serve.predictor import Predictor
from attrnet.serve.sources import Item


class Timer:
    """Wall and process CPU time (all threads) of a block."""

    def __enter__(self) -> "Timer":
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def decode_rate(files: list[Path], spec, workers: int, reduced: bool = True) -> tuple[float, float]:
    """Images/s of decode + resize alone in `workers` threads, and CPU-seconds per image."""
    items = [Item(str(p), path=p) for p in files]
    with Timer() as t, ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(lambda it: load_item(it, spec, reduced), items):
            pass
    return len(items) / t.wall, t.cpu / len(items)


def model_rate(backend, images: np.ndarray, batch: int) -> tuple[float, float]:
    """Images/s of the model alone on decoded images (host in, host out), and CPU-seconds per image."""
    backend.run(images[:batch])  # warm-up
    with Timer() as t:
        for i in range(0, len(images), batch):
            backend.run(images[i:i + batch])
    return len(images) / t.wall, t.cpu / len(images)


def e2e_rate(predictor: Predictor, folder: Path) -> tuple[float, float, int]:
    with Timer() as t:
        n = sum(1 for r in predictor.predict(folder) if r.ok)
    return n / t.wall, t.cpu / max(n, 1), n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="model file (default: the shipped default.onnx)")
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--big-images", type=int, default=100, help="1920x1080 JPEGs for the reduced-decode speed-up")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=None, help="decode threads (default: usable cores)")
    ap.add_argument("--threads", type=int, default=None, help="model threads (default: usable cores)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("PREDICT_RESULTS.md"))
    args = ap.parse_args()
    cores = cpu_count()
    workers, threads = args.workers or cores, args.threads or cores

    with tempfile.TemporaryDirectory(prefix="attrnet-bench-") as tmp:
        folder = Path(tmp) / "vga"
        files = write_jpegs(folder, args.images, 480, 640, distinct=50)
        big = write_jpegs(Path(tmp) / "fullhd", args.big_images, 1080, 1920, distinct=10)
        predictor = Predictor(args.model, device="cpu", batch_size=args.batch_size, workers=workers, threads=threads)
        backend = predictor.backend
        spec = backend.input_spec
        load_avg = os.getloadavg()[0]
        decoded = np.stack([load_item(Item(str(p), path=p), spec) for p in files])
        d_runs, m_runs, e_runs, d_cpu, m_cpu, e_cpu = [], [], [], [], [], []
        for r in range(args.rounds):
            rate, cpu = decode_rate(files, spec, workers)
            d_runs.append(rate), d_cpu.append(cpu)
            rate, cpu = model_rate(backend, decoded, args.batch_size)
            m_runs.append(rate), m_cpu.append(cpu)
            rate, cpu, ok = e2e_rate(predictor, folder)
            e_runs.append(rate), e_cpu.append(cpu)
            assert ok == len(files), f"{len(files) - ok} images failed"
            print(f"round {r + 1}: D {d_runs[-1]:.0f}  M {m_runs[-1]:.0f}  end-to-end {e_runs[-1]:.0f} images/s",
                  flush=True)
        stats = predictor.stats
        speedups = []
        for target in (spec, InputSpec(224, 224)):
            full = [decode_rate(big, target, 1, reduced=False)[0] for _ in range(args.rounds)]
            reduced = [decode_rate(big, target, 1, reduced=True)[0] for _ in range(args.rounds)]
            speedups.append((target, statistics.median(full), statistics.median(reduced)))

    d, m, e = (statistics.median(x) for x in (d_runs, m_runs, e_runs))
    dc, mc, ec = (1000 * statistics.median(x) for x in (d_cpu, m_cpu, e_cpu))
    ceiling = 1.0 / (1.0 / d + 1.0 / m)
    per_round = [ee * (1.0 / dd + 1.0 / mm) for dd, mm, ee in zip(d_runs, m_runs, e_runs)]
    model_name = args.model.name if args.model else "default.onnx (shipped, tiny, 64x64)"
    lines = [
        "# attrnet predict pipeline on CPU",
        "",
        f"`python benchmarks/predict_pipeline.py` on {platform.machine()} {platform.processor() or ''}".rstrip()
        + f", {cores} usable cores, load average {load_avg:.1f} at the start (a shared machine: other jobs ran).",
        f"Model {model_name} via {backend.describe()}; {args.images} generated 640x480 JPEGs;",
        f"batch {args.batch_size}, {workers} decode threads, {threads} model threads; median of {args.rounds} "
        "interleaved rounds.",
        "",
        "| measure | images/s | CPU ms per image |",
        "|---|---:|---:|",
        f"| D: decode + resize alone ({workers} threads) | {d:.0f} | {dc:.2f} |",
        f"| M: model alone ({threads} threads, batch {args.batch_size}) | {m:.0f} | {mc:.2f} |",
        f"| E = 1/(1/D + 1/M): ceiling when decode and model share the cores | {ceiling:.0f} | {dc + mc:.2f} |",
        f"| end-to-end `Predictor.predict(folder)` | {e:.0f} | {ec:.2f} |",
        f"| **efficiency end-to-end / E** (goal >= 0.9; Ultralytics about 0.6) | **{e / ceiling:.2f}** | "
        f"{(dc + mc) / ec:.2f} |",
        "",
        "The CPU column (process CPU time over all threads) does not depend on what else runs on the machine: "
        "its efficiency row is (D + M CPU cost) / end-to-end CPU cost, i.e. how little work pipelining adds.",
        "",
        f"Rounds: D {', '.join(f'{x:.0f}' for x in d_runs)}; M {', '.join(f'{x:.0f}' for x in m_runs)}; "
        f"end-to-end {', '.join(f'{x:.0f}' for x in e_runs)}; efficiency per round "
        f"{', '.join(f'{x:.2f}' for x in per_round)} (median {statistics.median(per_round):.2f}).",
        f"Last end-to-end run: decode {stats.decode_seconds:.2f} thread-seconds, model {stats.model_seconds:.2f} s, "
        f"wall {stats.wall_seconds:.2f} s.",
        "",
        f"Reduced JPEG decoding of {args.big_images} 1920x1080 JPEGs, one thread, decode + resize "
        "(images/s, median of the rounds):",
        "",
        "| resize to | full-size decode | reduced decode (`IMREAD_REDUCED_COLOR_2/4/8`) | speed-up |",
        "|---|---:|---:|---:|",
        *(f"| {t.height}x{t.width} | {f:.0f} | {r:.0f} | **{r / f:.2f}x** |" for t, f, r in speedups),
        "",
    ]
    text = "\n".join(lines)
    atomic_write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
