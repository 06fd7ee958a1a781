"""`attrnet eval`: metrics of a checkpoint or exported model on a dataset split."""
from __future__ import annotations

from typing import Annotated, Any

import typer

from attrnet.cli.output import ALLOW_OUTSIDE_HELP, metric, permit_outside_paths, print_json, result

__all__ = ["evaluate"]


def evaluate(
    model: Annotated[str, typer.Argument(help="best.safetensors, or an exported .onnx / .engine / .plan file.")],
    *,
    data: Annotated[str, typer.Option("--data", help="Dataset FORMAT:PATH.")],
    split: Annotated[str, typer.Option("--split", help="train | val | test.")] = "test",
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per batch.")] = 64,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda.")] = "auto",
    workers: Annotated[int, typer.Option("--workers", help="DataLoader worker processes for decoding.")] = 0,
    allow_outside: Annotated[bool, typer.Option("--allow-outside", help=ALLOW_OUTSIDE_HELP)] = False,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Per-attribute accuracy, mean accuracy, mA, instance metrics (and top-k recall where it applies)."""
    permit_outside_paths(allow_outside)
    from attrnet.evaluate import evaluate as evaluate_model

    metrics = evaluate_model(model, data, split, batch_size, device, workers)
    if as_json:
        print_json(metrics)
    else:
        result(_table(metrics))


def _table(r: dict[str, Any]) -> str:
    lines = [f"{r['model']} on {r['data']} ({r['split']}, {r['num_samples']} images)",
             f"mean accuracy {metric(r['mean_accuracy'])}   mA {metric(r['mA'])}   "
             f"instance acc {metric(r['instance_accuracy'])} prec {metric(r['instance_precision'])} "
             f"rec {metric(r['instance_recall'])} F1 {metric(r['instance_f1'])}"]
    if "top_k_recall" in r:
        lines.append("top-k recall " + "  ".join(f"@{k} {metric(v)}" for k, v in r["top_k_recall"].items()))
    width = max(len(a) for a in r["per_attribute"])
    lines += [f"  {a:<{width}}  {metric(v)}" for a, v in r["per_attribute"].items()]
    return "\n".join(lines)
