"""`attrnet benchmark`: backend x precision x batch size -> images/s and p50/p99 latency."""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Optional

import typer

from attrnet.cli.output import info, print_json
from attrnet.core.errors import InputError
from attrnet.core.imageio import JPEG_SUFFIXES

GENERATED_JPEGS = 64


def parse_list(text: str, option: str, allowed: tuple[str, ...] | None = None) -> list[str]:
    """Comma-separated values of `option` (checked against `allowed`)."""
    items = [t.strip().lower() for t in text.split(",") if t.strip()]
    if not items:
        raise InputError(f"{option} needs at least one value")
    if allowed is not None:
        bad = [t for t in items if t not in allowed]
        if bad:
            raise InputError(f"{option}: unknown value {bad[0]!r} (choose from {', '.join(allowed)})")
    return list(dict.fromkeys(items))


def parse_batch_sizes(text: str) -> list[int]:
    try:
        sizes = [int(t) for t in parse_list(text, "--batch-sizes")]
    except ValueError:
        raise InputError(f"--batch-sizes takes comma-separated positive integers, got {text!r}") from None
    if any(b < 1 or b > 65536 for b in sizes):
        raise InputError(f"--batch-sizes must be within 1..65536, got {text!r}")
    return sizes


def jpeg_files(folder: Path) -> list[Path]:
    """JPEG files under `folder` (recursive, sorted)."""
    if not folder.is_dir():
        raise InputError("--images must be a directory of JPEG files", folder)
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in JPEG_SUFFIXES and p.is_file())
    if not files:
        raise InputError("no .jpg/.jpeg files in --images directory", folder)
    return files


def default_model() -> Path:
    from attrnet.weights import default_checkpoint

    return default_checkpoint()


def resized_checkpoint(model: Path, size: tuple[int, int], workdir: Path) -> Path:
    """A copy of checkpoint `model` whose metadata input size is `size` (same tensors), in `workdir`."""
    from attrnet.train.checkpoint import load_checkpoint, save_checkpoint

    if model.suffix != ".safetensors":
        raise InputError("--img-size needs a .safetensors checkpoint (an ONNX or engine file has a fixed size)", model)
    tensors, meta = load_checkpoint(model)
    meta = dict(meta)
    meta["input"] = dict(meta.get("input") or {}, height=size[0], width=size[1])
    out = workdir / f"{model.stem}_{size[0]}x{size[1]}.safetensors"
    save_checkpoint(out, tensors, meta)
    return out


def register(app: typer.Typer) -> None:
    @app.command("benchmark")
    def _cmd(
        model: Optional[Path] = typer.Option(None, "--model", help="Checkpoint (.safetensors) or exported model; "
                                             "default: the shipped model."),
        backends: str = typer.Option("torch,onnxruntime,tensorrt", "--backends", help="Comma-separated backends."),
        precision: str = typer.Option("fp32,fp16,int8", "--precision", help="Comma-separated: fp32, fp16, bf16, int8, int8-cpu."),
        batch_sizes: str = typer.Option("1,8,32,128", "--batch-sizes", help="Comma-separated batch sizes."),
        img_size: Optional[str] = typer.Option(None, "--img-size", help="S or HxW (default: the model's size)."),
        images: Optional[Path] = typer.Option(None, "--images", help="JPEG folder for end-to-end rows "
                                              "(default: generated 640x480 JPEGs)."),
        mode: str = typer.Option("model-only,end-to-end", "--mode", help="model-only, end-to-end or both."),
        iters: int = typer.Option(20, "--iters", min=1, help="Timed batches per configuration."),
        warmup: int = typer.Option(3, "--warmup", min=0, help="Untimed batches first."),
        device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
        threads: Optional[int] = typer.Option(None, "--threads", min=1, help="Intra-op threads on CPU."),
        workers: Optional[int] = typer.Option(None, "--workers", min=1, help="Decode threads (end-to-end)."),
        calib: Optional[Path] = typer.Option(None, "--calib", help="Image folder for int8 calibration when exporting."),
        as_json: bool = typer.Option(False, "--json", help="Rows as JSON on stdout."),
    ) -> None:
        """Images/s and p50/p99 latency per backend x precision x batch size, model-only and end-to-end."""
        from attrnet.bench.jpegs import write_jpegs
        from attrnet.bench.models import BACKENDS, PRECISIONS
        from attrnet.bench.rows import MODES
        from attrnet.bench.runner import BenchConfig, run_benchmark
        from attrnet.core.input_spec import parse_img_size

        cfg = BenchConfig(
            backends=parse_list(backends, "--backends", BACKENDS),
            precisions=parse_list(precision, "--precision", PRECISIONS),
            batch_sizes=parse_batch_sizes(batch_sizes),
            iters=iters, warmup=warmup, device=device,
            modes=parse_list(mode, "--mode", MODES),
            threads=threads, workers=workers, calib=calib,
        )
        size = parse_img_size(img_size) if img_size else None
        files = jpeg_files(images) if images is not None and "end-to-end" in cfg.modes else None
        path = model if model is not None else default_model()
        if not path.exists():
            raise InputError("model file not found", path)
        with tempfile.TemporaryDirectory(prefix="attrnet-bench-") as tmp:
            work = Path(tmp)
            if size is not None:
                path = resized_checkpoint(path, size, work)
            if files is None and "end-to-end" in cfg.modes:
                info(f"benchmark: writing {GENERATED_JPEGS} generated 640x480 JPEGs for end-to-end rows")
                files = write_jpegs(work / "jpegs", GENERATED_JPEGS)
            cfg.images = files
            rows = run_benchmark(path, cfg, work, log=info)
        if as_json:
            print_json([r.to_dict() for r in rows])
            return
        from rich.console import Console

        from attrnet.bench.machine import describe, one_line
        from attrnet.bench.table import rich_table

        console = Console()
        if not console.is_terminal:
            console = Console(width=160)
        console.print(rich_table(rows, title=f"attrnet benchmark: {path.name} on {one_line(describe())}"))
