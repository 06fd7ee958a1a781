"""`attrnet taskonomy`: measure attribute transfers, choose sources within a budget, write a plan."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from attrnet.cli.output import info, print_json, result

__all__ = ["taskonomy"]


def taskonomy(
    *,
    data: Annotated[str, typer.Option("--data", help="Data SPEC format:path (e.g. celeba:/data/celeba).")],
    sources: Annotated[str, typer.Option("--sources", help="'all' (one source per attribute) or a "
                                         "groups.json.")] = "all",
    budget: Annotated[float, typer.Option("--budget", help="Supervision budget: how many sources (summed cost) "
                                          "the plan may use.")],
    out: Annotated[Path, typer.Option("--out", help="Output folder: taskonomy.json, plan.json, affinity.png.")],
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Epochs of source-encoder training.")] = 2,
    split_stage: Annotated[int, typer.Option("--split-stage", min=0, help="The plan shares stages below "
                                             "this one.")] = 2,
    arch: Annotated[str, typer.Option("--arch", help="Backbone of the plan (plan.json).")] = "tiny",
    encoder_arch: Annotated[str, typer.Option("--encoder-arch", help="Backbone of the source encoders.")] = "tiny",
    img_size: Annotated[str, typer.Option("--img-size", help="Encoder input size, S or HxW.")] = "64",
    max_images: Annotated[Optional[int], typer.Option("--max-images", min=4, help="Use at most this many "
                                                      "training images (half as many held out).")] = None,
    source_cost: Annotated[str, typer.Option("--source-cost", help="Cost of a source: 'unit' (1) or "
                                             "'attributes' (its size).")] = "unit",
    max_order: Annotated[int, typer.Option("--max-order", help="1: single sources only; 2: also pairs among "
                                           "each target's top five.")] = 2,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    json_out: Annotated[bool, typer.Option("--json", help="Print the report summary as JSON on stdout.")] = False,
) -> None:
    """Taskonomy (Zamir et al. 2018) for attributes: transfer affinities, the budgeted BIP, a trainable plan."""
    from attrnet.core.input_spec import parse_img_size
    from attrnet.methods.taskonomy import Settings, run

    cfg = Settings(data=data, sources=sources, budget=budget, epochs=epochs, split_stage=split_stage,
                   arch=arch, encoder_arch=encoder_arch, img_size=parse_img_size(img_size),
                   max_images=max_images, source_cost=source_cost, max_order=max_order, seed=seed)
    summary = run(cfg, out, info)
    if json_out:
        print_json(summary)
        return
    lines = [f"budget {summary['budget']:g}: {len(summary['groups'])} group(s); wrote {out}/taskonomy.json, "
             "plan.json, affinity.png"]
    lines += [f"  {name}: {', '.join(members)}" for name, members in summary["groups"].items()]
    result("\n".join(lines))
