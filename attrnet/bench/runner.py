"""The benchmark: backend x precision x batch size -> images/s and p50/p99 latency, model-only and end-to-end.

Model-only times ``Backend.run`` on a uint8 batch already in memory (host in,
host out). End-to-end times `attrnet.Predictor` over JPEG files (decode,
resize, batch, run, labels): images/s is files over wall time; the latencies
are the intervals between consecutive batches coming out of the pipeline.
Combinations that cannot run here become rows with a `reason`; failures
while running become rows with an `error`.
"""
from __future__ import annotations

import itertools
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from attrnet.bench import models
from attrnet.bench.inputs import GENERATED_JPEGS, benchmark_model, jpeg_files, resized_checkpoint
from attrnet.bench.rows import MODES, Row, failed, measured, skipped
from attrnet.bench.stats import time_calls
from attrnet.core.errors import AttrnetError, InputError, NotAvailableError

__all__ = ["BenchConfig", "benchmark", "cycle_files", "Log", "model_path_for", "random_batch",
           "resolve_device", "run_benchmark", "time_end_to_end", "time_model_only"]

Log = Callable[[str], None]


@dataclass
class BenchConfig:
    backends: Sequence[str] = ("torch", "onnxruntime", "tensorrt")
    precisions: Sequence[str] = ("fp32", "fp16", "int8")
    batch_sizes: Sequence[int] = (1, 8, 32, 128)
    iters: int = 20
    warmup: int = 3
    device: str = "auto"
    modes: Sequence[str] = MODES
    images: Sequence[Path] | None = None  # JPEG files for end-to-end
    threads: int | None = None
    workers: int | None = None
    calib: Path | None = None  # image folder for int8 calibration when exporting

    def __post_init__(self) -> None:
        _check_choices("--backends", self.backends, models.BACKENDS)
        _check_choices("--precision", self.precisions, models.PRECISIONS)
        _check_choices("--mode", self.modes, MODES)
        if not self.batch_sizes:
            raise InputError("--batch-sizes needs at least one value")
        if any(b < 1 or b > 65536 for b in self.batch_sizes):
            raise InputError(f"--batch-sizes must be within 1..65536, got {','.join(map(str, self.batch_sizes))}")
        if self.iters < 1 or self.warmup < 0:
            raise InputError(f"--iters must be >= 1 and --warmup >= 0, got {self.iters} and {self.warmup}")


def _check_choices(option: str, values: Sequence[str], allowed: Sequence[str]) -> None:
    if not values:
        raise InputError(f"{option} needs at least one value")
    bad = [v for v in values if v not in allowed]
    if bad:
        raise InputError(f"{option}: unknown value {bad[0]!r} (choose from {', '.join(allowed)})")


def resolve_device(device: str) -> str:
    """`auto` -> ``cuda`` when torch sees a GPU (and is installed), else ``cpu``."""
    if device != "auto":
        return device
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda" if torch.cuda.is_available() else "cpu"


def model_path_for(backend: str, precision: str, model: Path, device: str, workdir: Path,
                   calib: Path | None = None) -> Path:
    """The file that runs `backend` at `precision` on `device`, or NotAvailableError saying why not."""
    if precision not in models.PRECISIONS:
        raise InputError(f"unknown precision {precision!r} (choose from {', '.join(models.PRECISIONS)})")
    on_gpu = device.startswith("cuda")
    if backend == "torch":
        if precision.startswith("int8"):
            raise NotAvailableError("torch runs fp32/fp16/bf16; int8 runs as the QDQ ONNX file (onnxruntime, tensorrt)")
        if precision in ("fp16", "bf16") and not on_gpu:
            raise NotAvailableError(f"torch {precision} runs on CUDA only (no CUDA device here)")
        if precision == "fp32" and on_gpu:
            raise NotAvailableError("the torch backend serves fp16 on CUDA (fp32 CUDA is not a served configuration)")
        ckpt = models.checkpoint_for(model)
        if ckpt is None:
            raise NotAvailableError("torch needs the .safetensors checkpoint (none beside the model)")
        return ckpt
    if backend == "onnxruntime":
        if precision == "bf16":
            raise NotAvailableError("attrnet exports no bf16 ONNX (fp32, fp16, int8)")
        if precision == "fp16" and not on_gpu:
            raise NotAvailableError("fp16 ONNX needs a GPU execution provider; ONNX Runtime's CPU provider "
                                    "has no fp16 kernels for these ops and would cast back to fp32")
        return models.onnx_for(model, precision, workdir, calib)
    if backend == "tensorrt":
        try:
            import tensorrt  # noqa: F401
        except ImportError:
            raise NotAvailableError("TensorRT is not installed (pip install 'attrnet[trt]' on a CUDA machine)") from None
        if not on_gpu:
            raise NotAvailableError("TensorRT needs a CUDA device")
        if precision == "int8-cpu":
            raise NotAvailableError("int8-cpu (asymmetric uint8 activations) is an ONNX Runtime CPU layout, not for TensorRT")
        folder, stem = models.model_stem(model)
        engine = folder / f"{stem}.{precision}.engine"
        if not engine.exists():
            raise NotAvailableError(f"no {engine.name} beside the model: build it with "
                                    f"`attrnet export {stem}.safetensors --trt --precision {precision}`")
        return engine
    raise InputError(f"unknown backend {backend!r} (choose from {', '.join(models.BACKENDS)})")


def random_batch(batch: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (batch, height, width, 3), dtype=np.uint8)


def time_model_only(run: Callable[[np.ndarray], Any], batch: np.ndarray, iters: int, warmup: int) -> list[float]:
    """Per-call seconds of `run(batch)` (host in, host out: synchronous)."""
    return time_calls(lambda: run(batch), iters, warmup)


def time_end_to_end(predict: Callable[[Sequence[Path]], Any], files: Sequence[Path], batch: int,
                    warmup_files: Sequence[Path] = ()) -> tuple[list[float], float]:
    """Intervals between consecutive batches of results and the total seconds, predicting over `files`.

    `predict(paths)` yields one result per path (lazily). Errors in results are
    counted by the caller; this only times.
    """
    if warmup_files:
        for _ in predict(list(warmup_files)):
            pass
    stamps = []
    t0 = time.perf_counter()
    for i, _ in enumerate(predict(list(files)), 1):
        if i % batch == 0 or i == len(files):
            stamps.append(time.perf_counter())
    total = time.perf_counter() - t0
    intervals = [b - a for a, b in zip([t0] + stamps[:-1], stamps)]
    return intervals, total


def cycle_files(files: Sequence[Path], count: int) -> list[Path]:
    """`count` paths taken from `files` in order, repeating when there are fewer."""
    return list(itertools.islice(itertools.cycle(files), count))


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:300]


def run_benchmark(model: Path, cfg: BenchConfig, workdir: Path, log: Log = lambda m: None) -> list[Row]:
    """Every row for `model` under `cfg`; exported files go to `workdir`."""
    from attrnet.serve.backends import open_backend

    device = resolve_device(cfg.device)
    rows: list[Row] = []
    for backend, precision in itertools.product(cfg.backends, cfg.precisions):
        try:
            path = model_path_for(backend, precision, model, device, workdir, cfg.calib)
        except NotAvailableError as exc:
            rows += skipped(backend, precision, cfg.batch_sizes, _short(exc), cfg.modes, device)
            continue
        except AttrnetError as exc:
            rows += [failed(backend, precision, b, m, _short(exc), device) for m in cfg.modes for b in cfg.batch_sizes]
            continue
        log(f"benchmark: {backend} {precision} ({path.name}) on {device}")
        try:
            loaded = open_backend(path, device, backend, threads=cfg.threads)
        except NotAvailableError as exc:
            rows += skipped(backend, precision, cfg.batch_sizes, _short(exc), cfg.modes, device)
            continue
        used = loaded.device
        if "model-only" in cfg.modes:
            spec = loaded.input_spec
            for b in cfg.batch_sizes:
                try:
                    lat = time_model_only(loaded.run, random_batch(b, spec.height, spec.width), cfg.iters, cfg.warmup)
                    rows.append(measured(backend, precision, b, "model-only", lat, device=used))
                    log(f"  model-only batch {b}: {rows[-1].images_per_s:,.1f} images/s")
                except Exception as exc:  # noqa: BLE001 - a failing configuration is a row, not a crash
                    rows.append(failed(backend, precision, b, "model-only", _short(exc), used))
        if "end-to-end" in cfg.modes:
            rows += _end_to_end_rows(backend, precision, path, used, cfg, log)
    return rows


def benchmark(model: str | Path | None, cfg: BenchConfig, *, img_size: tuple[int, int] | None = None,
              image_dir: str | Path | None = None, log: Log = lambda m: None) -> tuple[Path, list[Row]]:
    """The model file benchmarked and its rows: `model` (default: the shipped model), its input size
    changed to `img_size` if given; end-to-end rows read the JPEGs under `image_dir`, or generated
    640x480 JPEGs. Exports and generated files live in a temporary folder removed afterwards."""
    files = jpeg_files(image_dir) if image_dir is not None and "end-to-end" in cfg.modes else None
    path = benchmark_model(model)
    with tempfile.TemporaryDirectory(prefix="attrnet-bench-") as tmp:
        work = Path(tmp)
        if img_size is not None:
            path = resized_checkpoint(path, img_size, work)
        if files is None and "end-to-end" in cfg.modes:
            from attrnet.bench.jpegs import write_jpegs

            log(f"benchmark: writing {GENERATED_JPEGS} generated 640x480 JPEGs for end-to-end rows")
            files = write_jpegs(work / "jpegs", GENERATED_JPEGS)
        run_cfg = replace(cfg, images=files)
        return path, run_benchmark(path, run_cfg, work, log=log)


def _end_to_end_rows(backend: str, precision: str, path: Path, device: str, cfg: BenchConfig, log: Log) -> list[Row]:
    if not cfg.images:
        return skipped(backend, precision, cfg.batch_sizes, "no JPEG files given", ("end-to-end",), device)
    try:
        from attrnet.serve.predictor import Predictor
    except ImportError as exc:
        return skipped(backend, precision, cfg.batch_sizes, f"attrnet.Predictor is not available ({exc})",
                       ("end-to-end",), device)
    rows = []
    for b in cfg.batch_sizes:
        try:
            pred = Predictor(path, backend=backend, device=device, batch_size=b, workers=cfg.workers,
                             threads=cfg.threads)
            files = cycle_files(cfg.images, max(b * cfg.iters, 8 * b))  # amortise the pipeline fill
            warm = cycle_files(cfg.images, b * max(1, cfg.warmup))
            lat, total = time_end_to_end(pred.predict, files, b, warm)
            rows.append(measured(backend, precision, b, "end-to-end", lat, images=len(files), total_s=total,
                                 device=device))
            log(f"  end-to-end batch {b}: {rows[-1].images_per_s:,.1f} images/s")
        except Exception as exc:  # noqa: BLE001 - a failing configuration is a row, not a crash
            rows.append(failed(backend, precision, b, "end-to-end", _short(exc), device))
    return rows
