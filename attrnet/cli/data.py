"""`attrnet data synth` and `attrnet data info`."""
from __future__ import annotations

import math
import sys
from typing import Optional

import typer

from attrnet.cli.output import info, print_json


def register(app: typer.Typer) -> None:
    data_app = typer.Typer(help="Synthetic datasets and dataset summaries.", no_args_is_help=True)

    @data_app.command("synth")
    def synth(
        preset: str = typer.Option(..., "--preset", help="celeba | market | duke | deepfashion"),
        out: str = typer.Option(..., "--out", help="Output folder (written in the preset's real format)."),
        num: int = typer.Option(2000, "--num", help="Number of images (about, for market/duke identities)."),
        seed: int = typer.Option(0, "--seed", help="Random seed; the same seed gives the same dataset."),
        size: Optional[str] = typer.Option(None, "--size", help="Image size S or HxW (default: 64 for faces and garments, 128x64 for pedestrians)."),
        as_json: bool = typer.Option(False, "--json", help="Print a JSON summary on stdout."),
    ) -> None:
        """Generate a procedural attribute dataset with planted attribute groups."""
        from attrnet.data.synth import generate
        from attrnet.core.input_spec import parse_img_size

        hw = parse_img_size(size) if size else None
        step = max(1, num // 20)
        tty = sys.stderr.isatty()

        def progress(done: int, total: int) -> None:
            if done % step == 0 or done == total:
                start, end = ("\r", "\n" if done == total else "") if tty else ("", "\n")
                sys.stderr.write(f"{start}synth {preset}: {done}/{total} images{end}")
                sys.stderr.flush()

        summary = generate(preset, out, num=num, seed=seed, size=hw, progress=progress)
        if as_json:
            print_json(summary)
        else:
            info(f"wrote {summary['images']} {preset} images ({summary['height']}x{summary['width']}) to {out} "
                 f"in {summary['seconds']:.1f} s ({summary['images_per_second']:.0f} images/s)")

    @data_app.command("info")
    def info_cmd(
        spec: str = typer.Argument(..., help="FORMAT:PATH, FORMAT one of celeba, market, duke, deepfashion, folder."),
        as_json: bool = typer.Option(False, "--json", help="Print one JSON object on stdout."),
        allow_outside: bool = typer.Option(False, "--allow-outside", help="Accept image paths (or symlinks) that lead outside the dataset folder (other commands: ATTRNET_ALLOW_OUTSIDE=1)."),
    ) -> None:
        """Images per split, attributes, output columns and positive rate per column."""
        from attrnet.data import load_index

        index = load_index(spec, allow_outside=allow_outside or None)
        rates = index.positive_rate()
        doc = {
            "format": index.format,
            "splits": index.counts(),
            "attributes": index.schema.names,
            "outputs": index.schema.columns,
            "positive_rate": {c: (None if math.isnan(r) else round(float(r), 4)) for c, r in zip(index.schema.columns, rates)},
        }
        if as_json:
            print_json(doc)
        else:
            _print_table(doc, index.schema)

    app.add_typer(data_app, name="data")


def _print_table(doc: dict, schema) -> None:
    splits = ", ".join(f"{k} {v}" for k, v in doc["splits"].items())
    lines = [f"format: {doc['format']}   images: {splits}",
             f"attributes: {len(doc['attributes'])}   output columns: {len(doc['outputs'])}", ""]
    width = max(len(c) for c in doc["outputs"])
    lines.append(f"{'column':<{width}}  {'kind':<11}  positive rate")
    for col, kind in zip(doc["outputs"], schema.binary_columns):
        rate = doc["positive_rate"][col]
        lines.append(f"{col:<{width}}  {'binary' if kind else 'categorical':<11}  {'-' if rate is None else f'{rate:.3f}'}")
    typer.echo("\n".join(lines))
