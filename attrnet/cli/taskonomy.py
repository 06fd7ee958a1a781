"""`attrnet taskonomy`: measure attribute transfers, choose sources within a budget, write a plan."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from attrnet.cli.output import info, print_json


def register(app: typer.Typer) -> None:
    @app.command("taskonomy")
    def taskonomy(
        data: str = typer.Option(..., "--data", help="Data SPEC format:path (e.g. celeba:/data/celeba)."),
        sources: str = typer.Option("all", "--sources", help="'all' (one source per attribute) or a groups.json."),
        budget: float = typer.Option(..., "--budget", help="Supervision budget: how many sources (summed cost) the plan may use."),
        out: Path = typer.Option(..., "--out", help="Output folder: taskonomy.json, plan.json, affinity.png."),
        epochs: int = typer.Option(2, "--epochs", min=1, help="Epochs of source-encoder training."),
        split_stage: int = typer.Option(2, "--split-stage", min=0, help="The plan shares stages below this one."),
        arch: str = typer.Option("tiny", "--arch", help="Backbone of the plan (plan.json)."),
        encoder_arch: str = typer.Option("tiny", "--encoder-arch", help="Backbone of the source encoders."),
        img_size: str = typer.Option("64", "--img-size", help="Encoder input size, S or HxW."),
        max_images: Optional[int] = typer.Option(None, "--max-images", min=4, help="Use at most this many training images (half as many held out)."),
        source_cost: str = typer.Option("unit", "--source-cost", help="Cost of a source: 'unit' (1) or 'attributes' (its size)."),
        max_order: int = typer.Option(2, "--max-order", help="1: single sources only; 2: also pairs among each target's top five."),
        seed: int = typer.Option(0, "--seed"),
        json_out: bool = typer.Option(False, "--json", help="Print the report summary as JSON on stdout."),
    ) -> None:
        """Taskonomy (Zamir et al. 2018) for attributes: transfer affinities, the budgeted BIP, a trainable plan."""
        from attrnet.core.input_spec import parse_img_size
        from attrnet.methods.taskonomy import Settings, analyse, write_outputs

        cfg = Settings(data=data, sources=sources, budget=budget, epochs=epochs, split_stage=split_stage,
                       arch=arch, encoder_arch=encoder_arch, img_size=parse_img_size(img_size),
                       max_images=max_images, source_cost=source_cost, max_order=max_order, seed=seed)
        report, topology = analyse(cfg, info)
        write_outputs(report, topology, out)
        plan = report["plan"]
        info(f"budget {plan['budget']:g}: {len(plan['groups'])} group(s); wrote {out}/taskonomy.json, "
             f"plan.json, affinity.png")
        for name, members in plan["groups"].items():
            info(f"  {name}: {', '.join(members)}")
        if json_out:
            print_json({"out": str(out), "budget": plan["budget"], "groups": plan["groups"],
                        "plans": [{k: p[k] for k in ("budget", "objective", "chosen_sources") if k in p}
                                  for p in report["plans"]],
                        "plan": str(out / "plan.json")})
