"""`attrnet benchmark`: backend x precision x batch size -> images/s and p50/p99 latency."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from attrnet.cli.output import info, print_json
from attrnet.core.errors import InputError

__all__ = ["benchmark"]


def split_list(text: str) -> list[str]:
    """The comma-separated values of an option, lower-cased, without repeats."""
    return list(dict.fromkeys(t.strip().lower() for t in text.split(",") if t.strip()))


def parse_batch_sizes(text: str) -> list[int]:
    """``--batch-sizes 1,8,32`` -> ``[1, 8, 32]``."""
    try:
        return [int(t) for t in split_list(text)]
    except ValueError:
        raise InputError(f"--batch-sizes takes comma-separated positive integers, got {text!r}") from None


def benchmark(
    *,
    model: Annotated[Optional[Path], typer.Option("--model", help="Checkpoint (.safetensors) or exported model; "
                                                  "default: the shipped model.")] = None,
    backends: Annotated[str, typer.Option("--backends", help="Comma-separated backends."
                                          )] = "torch,onnxruntime,tensorrt",
    precision: Annotated[str, typer.Option("--precision", help="Comma-separated: fp32, fp16, bf16, int8, "
                                           "int8-cpu.")] = "fp32,fp16,int8",
    batch_sizes: Annotated[str, typer.Option("--batch-sizes", help="Comma-separated batch sizes.")] = "1,8,32,128",
    img_size: Annotated[Optional[str], typer.Option("--img-size", help="S or HxW (default: the model's "
                                                    "size).")] = None,
    images: Annotated[Optional[Path], typer.Option("--images", help="JPEG folder for end-to-end rows "
                                                   "(default: generated 640x480 JPEGs).")] = None,
    mode: Annotated[str, typer.Option("--mode", help="model-only, end-to-end or both.")] = "model-only,end-to-end",
    iters: Annotated[int, typer.Option("--iters", min=1, help="Timed batches per configuration.")] = 20,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Untimed batches first.")] = 3,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda or cuda:N.")] = "auto",
    threads: Annotated[Optional[int], typer.Option("--threads", min=1, help="Intra-op threads on CPU.")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", min=1, help="Decode threads (end-to-end).")] = None,
    calib: Annotated[Optional[Path], typer.Option("--calib", help="Image folder for int8 calibration when "
                                                  "exporting.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Rows as JSON on stdout.")] = False,
) -> None:
    """Images/s and p50/p99 latency per backend x precision x batch size, model-only and end-to-end."""
    from attrnet.bench.runner import BenchConfig, benchmark as run
    from attrnet.core.input_spec import parse_img_size

    cfg = BenchConfig(backends=split_list(backends), precisions=split_list(precision),
                      batch_sizes=parse_batch_sizes(batch_sizes), iters=iters, warmup=warmup, device=device,
                      modes=split_list(mode), threads=threads, workers=workers, calib=calib)
    path, rows = run(model, cfg, img_size=parse_img_size(img_size) if img_size else None, image_dir=images, log=info)
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
