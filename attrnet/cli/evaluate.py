"""`attrnet eval`: metrics of a checkpoint or exported model on a dataset split."""
from __future__ import annotations

from typing import Any

import typer

from attrnet.cli.output import ALLOW_OUTSIDE_HELP, info, permit_outside_paths, print_json


def register(app: typer.Typer) -> None:
    @app.command("eval")
    def evaluate_cmd(
        model: str = typer.Argument(..., help="best.safetensors, or an exported .onnx / .engine / .plan file."),
        data: str = typer.Option(..., "--data", help="Dataset FORMAT:PATH."),
        split: str = typer.Option("test", "--split", help="train | val | test."),
        batch_size: int = typer.Option(64, "--batch-size", help="Images per batch."),
        device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
        workers: int = typer.Option(0, "--workers", help="DataLoader worker processes for decoding."),
        allow_outside: bool = typer.Option(False, "--allow-outside", help=ALLOW_OUTSIDE_HELP),
        as_json: bool = typer.Option(False, "--json", help="One JSON object on stdout."),
    ) -> None:
        """Per-attribute accuracy, mean accuracy, mA, instance metrics (and top-k recall where it applies)."""
        permit_outside_paths(allow_outside)
        from attrnet.core.errors import InputError
        from attrnet.evaluate import evaluate

        if batch_size < 1:
            raise InputError(f"--batch-size must be >= 1, got {batch_size}")
        result = evaluate(model, data, split, batch_size, device, workers)
        if as_json:
            print_json(result)
        else:
            _print(result)


def _fmt(v: Any) -> str:
    return "n/a" if v is None else f"{v:.4f}"


def _print(r: dict[str, Any]) -> None:
    lines = [f"{r['model']} on {r['data']} ({r['split']}, {r['num_samples']} images)",
             f"mean accuracy {_fmt(r['mean_accuracy'])}   mA {_fmt(r['mA'])}   "
             f"instance acc {_fmt(r['instance_accuracy'])} prec {_fmt(r['instance_precision'])} "
             f"rec {_fmt(r['instance_recall'])} F1 {_fmt(r['instance_f1'])}"]
    if "top_k_recall" in r:
        lines.append("top-k recall " + "  ".join(f"@{k} {_fmt(v)}" for k, v in r["top_k_recall"].items()))
    width = max(len(a) for a in r["per_attribute"])
    lines += [f"  {a:<{width}}  {_fmt(v)}" for a, v in r["per_attribute"].items()]
    info("\n".join(lines))
