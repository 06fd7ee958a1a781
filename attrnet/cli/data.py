"""`attrnet data synth` and `attrnet data info`."""
from __future__ import annotations

import sys
from typing import Annotated, Any, Optional

import typer

from attrnet.cli.output import print_json, result

__all__ = ["data_info", "data_synth"]


def data_synth(
    *,
    preset: Annotated[str, typer.Option("--preset", help="celeba | market | duke | deepfashion")],
    out: Annotated[str, typer.Option("--out", help="Output folder (written in the preset's real format).")],
    num: Annotated[int, typer.Option("--num", help="Number of images (about, for market/duke identities).")] = 2000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed; the same seed gives the same dataset.")] = 0,
    size: Annotated[Optional[str], typer.Option("--size", help="Image size S or HxW (default: 64 for faces and "
                                                "garments, 128x64 for pedestrians).")] = None,
    difficulty: Annotated[str, typer.Option(
        "--difficulty", help="How often and how strongly a group's region is degraded: none | easy | default | hard.",
    )] = "default",
    noisy_group: Annotated[Optional[str], typer.Option(
        "--noisy-group",
        help="Planted group whose train/val annotations get noisy (from synth_groups.json; test labels stay true).",
    )] = None,
    label_noise: Annotated[Optional[float], typer.Option(
        "--label-noise", help="Share of the noisy group's labels flipped (default 0.3; needs --noisy-group).",
    )] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON summary on stdout.")] = False,
) -> None:
    """Generate a procedural attribute dataset with planted attribute groups and per-group visibility."""
    from attrnet.core.input_spec import parse_img_size
    from attrnet.data.synth import generate

    step = max(1, num // 20)
    tty = sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if done % step == 0 or done == total:
            start, end = ("\r", "\n" if done == total else "") if tty else ("", "\n")
            sys.stderr.write(f"{start}synth {preset}: {done}/{total} images{end}")
            sys.stderr.flush()

    summary = generate(preset, out, num=num, seed=seed, size=parse_img_size(size) if size else None,
                       progress=progress, difficulty=difficulty, noisy_group=noisy_group, label_noise=label_noise)
    if as_json:
        print_json(summary)
    else:
        result(f"wrote {summary['images']} {preset} images ({summary['height']}x{summary['width']}) to {out} "
               f"in {summary['seconds']:.1f} s ({summary['images_per_second']:.0f} images/s)")


def data_info(
    spec: Annotated[str, typer.Argument(help="FORMAT:PATH, FORMAT one of celeba, market, duke, deepfashion, "
                                        "folder.")],
    *,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")] = False,
    allow_outside: Annotated[bool, typer.Option("--allow-outside", help="Accept image paths (or symlinks) that lead "
                                                "outside the dataset folder (other commands: "
                                                "ATTRNET_ALLOW_OUTSIDE=1).")] = False,
) -> None:
    """Images per split, attributes, output columns and positive rate per column."""
    from attrnet.data import load_index

    index = load_index(spec, allow_outside=allow_outside or None)
    doc = index.summary()
    if as_json:
        print_json(doc)
    else:
        result(_table(doc, index.schema.binary_columns))


def _table(doc: dict[str, Any], binary: list[bool]) -> str:
    splits = ", ".join(f"{k} {v}" for k, v in doc["splits"].items())
    lines = [f"format: {doc['format']}   images: {splits}",
             f"attributes: {len(doc['attributes'])}   output columns: {len(doc['outputs'])}", ""]
    width = max(len(c) for c in doc["outputs"])
    lines.append(f"{'column':<{width}}  {'kind':<11}  positive rate")
    for col, kind in zip(doc["outputs"], binary):
        rate = doc["positive_rate"][col]
        shown = "-" if rate is None else f"{rate:.3f}"
        lines.append(f"{col:<{width}}  {'binary' if kind else 'categorical':<11}  {shown}")
    return "\n".join(lines)
