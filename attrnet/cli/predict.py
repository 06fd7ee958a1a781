"""`attrnet predict`: attribute predictions for images, folders, globs, list files and videos.

Torch is not imported unless the model is a `.safetensors` checkpoint.
"""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any, Iterator, Optional

import typer

from attrnet.cli.output import info, print_json

__all__ = ["predict"]

TABLE_ROWS = 20
LOG_EVERY = 10.0  # seconds between progress lines when stderr is not a terminal


def predict(
    source: Annotated[str, typer.Argument(help="Image, folder (recursive), glob, list file (.txt) or video.")],
    *,
    model: Annotated[Optional[Path], typer.Option("--model", "-m", help="Model file: .onnx, .safetensors, "
                                                  ".engine/.plan (default: the shipped model).")] = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Write rows to FILE.csv or FILE.jsonl as they "
                                                "complete.")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", "-b", min=1, help="Images per model call.")] = 32,
    workers: Annotated[Optional[int], typer.Option("--workers", "-w", min=1, help="Decode threads (default: usable "
                                                   "cores).")] = None,
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="Model threads on CPU (default: usable "
                                                   "cores).")] = None,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda | cuda:N.")] = "auto",
    backend: Annotated[str, typer.Option("--backend", help="auto (by file suffix) | torch | onnxruntime | "
                                         "tensorrt.")] = "auto",
    resume: Annotated[bool, typer.Option("--resume", help="Append to --out, skipping paths already in it.")] = False,
    stride: Annotated[int, typer.Option("--stride", min=1, help="Videos: keep every n-th frame.")] = 1,
    allow_outside: Annotated[bool, typer.Option("--allow-outside", help="List files: accept paths outside the list's "
                                                "folder.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary (and rows, without --out) on "
                                          "stdout.")] = False,
    use_ray: Annotated[bool, typer.Option("--ray", help="Run on Ray Data (the `ray` extra); --out may then be "
                                          "FILE.parquet, a folder of part files.")] = False,
    ray_address: Annotated[Optional[str], typer.Option("--ray-address", help="With --ray: an existing cluster "
                                                       "(default: RAY_ADDRESS, else a local Ray for this run).")] = None,
    concurrency: Annotated[Optional[int], typer.Option("--concurrency", min=1, help="With --ray: model actors "
                                                       "(default: one per CPU, or per GPU).")] = None,
) -> None:
    """Predict attributes; bad images become error rows, the run goes on."""
    from attrnet.core.errors import InputError

    if use_ray:
        if resume:
            raise InputError("--resume does not work with --ray (write a new --out)")
        _predict_on_ray(source, model, out, batch_size, device, concurrency, ray_address, allow_outside, as_json)
        return
    from attrnet.serve.predictor import Predictor
    from attrnet.serve.sinks import Sink, sink_format

    if resume and out is None:
        raise InputError("--resume needs --out FILE")
    if out is not None:
        sink_format(out)
    predictor = Predictor(model, backend=backend, device=device, batch_size=batch_size,
                          workers=workers, threads=threads)
    sink = Sink(out, predictor.columns, predictor.attributes, resume=resume) if out is not None else None
    skipped = len(sink.done) if sink is not None else 0
    results = predictor.predict(source, stride=stride, allow_outside=allow_outside,
                                skip=(sink.done.__contains__ if sink is not None and sink.done else None))
    shown: list[Any] = []
    try:
        for r in _with_progress(results, predictor):
            if sink is not None:
                sink.write(r)
            elif as_json or len(shown) < TABLE_ROWS:
                shown.append(r)
        if sink is not None:
            sink.finish()
    finally:
        if sink is not None:
            sink.close()
    stats = predictor.stats
    summary = {
        "model": str(predictor.backend.path),
        "backend": predictor.backend.describe(),
        "images": stats.images,
        "errors": stats.errors,
        "skipped": skipped,
        "seconds": round(stats.wall_seconds, 3),
        "images_per_second": round(stats.images_per_second, 1),
        "decode_seconds": round(stats.decode_seconds, 3),
        "model_seconds": round(stats.model_seconds, 3),
        "workers": predictor.pipeline.workers,
        "out": str(out) if out is not None else None,
    }
    if stats.images == 0 and not skipped:
        raise InputError("no images to predict", source)
    _report(summary, shown, stats.images, as_json, _summary_line(summary))


def _report(summary: dict[str, Any], shown: list[Any], total: int, as_json: bool, line: str) -> None:
    """The summary on stdout with --json (and the rows, without --out), else the table without --out;
    then `line` on stderr."""
    if as_json:
        if summary["out"] is None:
            summary["results"] = [{"path": r.source, "error": r.error, "probs": r.probs, "labels": r.labels}
                                  for r in shown]
        print_json(summary)
    elif summary["out"] is None:
        _print_table(shown, total)
    info(line)


def _with_progress(results: Iterator[Any], predictor: Any) -> Iterator[Any]:
    """Pass results through, showing count, errors and images/s on stderr: a live line on a terminal,
    else a plain line every LOG_EVERY seconds (for logs)."""
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        last = time.perf_counter()
        for n, r in enumerate(results, 1):
            yield r
            if time.perf_counter() - last >= LOG_EVERY:
                last = time.perf_counter()
                stats = predictor.stats
                info(f"predict: {n} images, {stats.errors} errors, {n / max(stats.wall_seconds, 1e-9):.1f} images/s")
        return
    columns = (SpinnerColumn(), TextColumn("{task.completed} images"), TextColumn("{task.fields[errors]} errors"),
               TextColumn("{task.fields[rate]:.1f} images/s"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("predict", total=None, errors=0, rate=0.0)
        for n, r in enumerate(results, 1):
            yield r
            if n % 8 == 0 or not r.ok:
                stats = predictor.stats
                progress.update(task, completed=n, errors=stats.errors, rate=n / max(stats.wall_seconds, 1e-9))


def _print_table(results: list[Any], total: int) -> None:
    from rich.console import Console
    from rich.table import Table

    rows = results[:TABLE_ROWS]
    files = [r.path for r in rows if r.path is not None]
    base = os.path.dirname(files[0]) if len(files) == 1 else os.path.commonpath(files) if files else ""
    table = Table("path", "predicted attributes", caption=f"paths under {base}" if base else None)
    for r in rows:
        name = os.path.relpath(r.path, base) if base and r.path is not None else r.source
        table.add_row(name, f"[red]error: {r.error}[/red]" if r.error else (", ".join(r.positives()) or "-"))
    Console(soft_wrap=False).print(table)
    if total > TABLE_ROWS:
        sys.stdout.write(f"... and {total - TABLE_ROWS} more (use --out FILE.csv to keep every row)\n")


def _summary_line(s: dict[str, Any]) -> str:
    done = f"predicted {s['images']} images ({s['errors']} errors"
    done += f", {s['skipped']} already in {s['out']}" if s["skipped"] else ""
    line = (f"{done}) in {s['seconds']:.1f} s: {s['images_per_second']:.1f} images/s with {s['backend']}; "
            f"decode {s['decode_seconds']:.1f} s over {s['workers']} threads, model {s['model_seconds']:.1f} s")
    return line + (f"; wrote {s['out']}" if s["out"] else "")


def _predict_on_ray(source: str, model: Optional[Path], out: Optional[Path], batch_size: int, device: str,
                    concurrency: Optional[int], address: Optional[str], allow_outside: bool, as_json: bool) -> None:
    """`predict --ray`: `attrnet.serve.scale_job.predict_job`, reported like a local run."""
    from attrnet.core.device import check_device
    from attrnet.serve.scale_job import predict_job

    gpus = 1 if check_device(device).startswith("cuda") else 0
    job = predict_job(source, model, out, address=address, batch_size=batch_size, concurrency=concurrency,
                      num_gpus=gpus, allow_outside=allow_outside, keep=None if as_json else TABLE_ROWS)
    summary = {"model": job.model, "backend": "Ray Data", "images": job.images, "errors": job.errors,
               "seconds": round(job.seconds, 3), "images_per_second": round(job.images_per_second, 1), "out": job.out}
    _report(summary, job.results, job.images, as_json,
            f"predicted {job.images} images ({job.errors} errors) on Ray Data in {job.seconds:.1f} s, start-up "
            f"included: {job.images_per_second:.1f} images/s" + (f"; wrote {job.out}" if job.out else ""))
