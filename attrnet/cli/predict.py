"""`attrnet predict`: attribute predictions for images, folders, globs, list files and videos.

Torch is not imported unless the model is a `.safetensors` checkpoint.
"""
from __future__ import annotations

import os
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import typer

from attrnet.cli.output import info, print_json

TABLE_ROWS = 20
LOG_EVERY = 10.0  # seconds between progress lines when stderr is not a terminal


def register(app: typer.Typer) -> None:
    @app.command("predict")
    def predict(
        source: str = typer.Argument(..., help="Image, folder (recursive), glob, list file (.txt) or video."),
        model: Optional[Path] = typer.Option(None, "--model", "-m",
                                             help="Model file: .onnx, .safetensors, .engine/.plan (default: the shipped model)."),
        out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write rows to FILE.csv or FILE.jsonl as they complete."),
        batch_size: int = typer.Option(32, "--batch-size", "-b", min=1, help="Images per model call."),
        workers: Optional[int] = typer.Option(None, "--workers", "-w", min=1, help="Decode threads (default: usable cores)."),
        threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Model threads on CPU (default: usable cores)."),
        device: str = typer.Option("auto", "--device", help="auto | cpu | cuda | cuda:N."),
        backend: str = typer.Option("auto", "--backend", help="auto (by file suffix) | torch | onnxruntime | tensorrt."),
        resume: bool = typer.Option(False, "--resume", help="Append to --out, skipping paths already in it."),
        stride: int = typer.Option(1, "--stride", min=1, help="Videos: keep every n-th frame."),
        allow_outside: bool = typer.Option(False, "--allow-outside", help="List files: accept paths outside the list's folder."),
        as_json: bool = typer.Option(False, "--json", help="Machine-readable summary (and rows, without --out) on stdout."),
        use_ray: bool = typer.Option(False, "--ray", help="Run on Ray Data (the `ray` extra); --out may then be .parquet."),
        ray_address: Optional[str] = typer.Option(None, "--ray-address", help="With --ray: an existing cluster "
                                                  "(default: RAY_ADDRESS, else a local Ray for this run)."),
        concurrency: Optional[int] = typer.Option(None, "--concurrency", min=1,
                                                  help="With --ray: model actors (default: one per CPU, or per GPU)."),
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
        try:
            shown, _, _ = _write_or_keep(_with_progress(results, predictor), sink, as_json)
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


def _write_or_keep(results: Iterable[Any], sink: Any, as_json: bool) -> tuple[list[Any], int, int]:
    """Write every result to `sink` (then finish it), or keep those to show: all with --json, else the
    first TABLE_ROWS. Returns them with the number of results and of errors."""
    shown: list[Any] = []
    images = errors = 0
    for r in results:
        images, errors = images + 1, errors + (not r.ok)
        if sink is not None:
            sink.write(r)
        elif as_json or len(shown) < TABLE_ROWS:
            shown.append(r)
    if sink is not None:
        sink.finish()
    return shown, images, errors


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
    """`predict --ray`: the rows of `attrnet.serve.scale.predict_dataset`, written like local predict's
    (CSV/JSONL in the same order), or by Ray's Parquet writer (a folder of part files)."""
    from attrnet.core.device import check_device
    from attrnet.serve.scale import check_source, iter_results, predict_dataset
    from attrnet.serve.scale_model import ModelFile
    from attrnet.serve.scale_ray import ray_session
    from attrnet.serve.sinks import Sink, sink_format

    parquet = out is not None and out.suffix.lower() == ".parquet"
    if out is not None and not parquet:
        sink_format(out)
    num_gpus = 1 if check_device(device).startswith("cuda") else 0
    model_file = ModelFile.read(model)
    card = model_file.card
    check_source(source, allow_outside=allow_outside)  # a missing or empty source fails before Ray starts
    start = time.perf_counter()
    shown: list[Any] = []
    with ray_session(address):
        ds = predict_dataset(source, model_file, batch_size=batch_size, concurrency=concurrency,
                             num_gpus=num_gpus, allow_outside=allow_outside)
        if parquet:
            ds = ds.materialize()
            ds.write_parquet(str(out))
            images = ds.count()
            errors = sum(b.num_rows - b.column("error").null_count  # whole blocks: no new Ray tasks
                         for b in ds.iter_batches(batch_size=None, batch_format="pyarrow"))
        else:
            ds.context.execution_options.preserve_order = True  # rows in local predict's order
            with Sink(out, card.columns, card.schema.names) if out is not None else nullcontext() as sink:
                shown, images, errors = _write_or_keep(iter_results(ds, card), sink, as_json)
    seconds = time.perf_counter() - start
    summary = {"model": model_file.source, "backend": "Ray Data", "images": images, "errors": errors,
               "seconds": round(seconds, 3), "images_per_second": round(images / max(seconds, 1e-9), 1),
               "out": str(out) if out is not None else None}
    _report(summary, shown, images, as_json,
            f"predicted {images} images ({errors} errors) on Ray Data in {seconds:.1f} s, start-up included: "
            f"{summary['images_per_second']:.1f} images/s" + (f"; wrote {out}" if out is not None else ""))
