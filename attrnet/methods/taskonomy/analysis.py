"""Taskonomy's measurement: train source encoders, fit readouts, measure every transfer, solve per budget.

`analyse(settings)` returns the report (``taskonomy.json``) and the plan's Topology (``plan.json``);
`write_outputs` writes both with the affinity heat map; `run` does both and returns a summary. The maths (tournament, AHP, the BIP) is in `plan`.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from attrnet.core.errors import AttrnetError
from attrnet.core.topology import Topology
from attrnet.methods.taskonomy.plan import Transfer, ahp_affinity, plan_topology, solve_budgets, top_pairs, tournament

__all__ = ["analyse", "measure_transfers", "run", "Settings", "write_outputs"]

@dataclass
class Settings:
    """What `attrnet taskonomy` runs with."""

    data: str
    sources: str = "all"
    budget: float = 4
    epochs: int = 2
    split_stage: int = 2
    arch: str = "tiny"
    encoder_arch: str = "tiny"
    img_size: tuple[int, int] = (64, 64)
    max_images: int | None = None
    source_cost: str = "unit"
    max_order: int = 2
    batch_size: int = 32
    lr: float = 2e-3
    seed: int = 0


def measure_transfers(f_tr, y_tr, f_te, y_te, schema, max_order: int = 2,
                      chunk: int = 8) -> tuple[np.ndarray, list[Transfer]]:
    """First-order affinities ``[S, T]`` and every candidate transfer with its final affinity.

    `f_*`: frozen features ``[N, S, D]`` of the S sources; `y_*`: labels over
    the schema's columns. Per target: readouts for each source, then (order 2)
    for each pair among its top five sources; one tournament over all of them.
    """
    import torch

    from attrnet.methods.taskonomy import transfer as tt

    s_count = f_tr.shape[1]
    attrs = list(schema.attributes)
    binary = [t for t, a in enumerate(attrs) if a.kind == "binary"]
    bcols = [schema.slices[t].start for t in binary]
    losses: dict[int, np.ndarray] = {}
    if binary:
        lb = tt.binary_readout_losses(f_tr, y_tr[:, bcols], f_te, y_te[:, bcols])
        losses.update({t: lb[i] for i, t in enumerate(binary)})
    for t, a in enumerate(attrs):
        if a.kind != "binary":
            sl = schema.slices[t]
            losses[t] = tt.softmax_readout_losses(f_tr, y_tr[:, sl], f_te, y_te[:, sl])
    first = np.zeros((s_count, len(attrs)))
    for t in range(len(attrs)):
        first[:, t] = ahp_affinity(tournament(losses[t]))
    candidates = {t: [(s,) for s in range(s_count)] for t in range(len(attrs))}
    if max_order >= 2 and s_count >= 2:
        pairs = {t: top_pairs(first, t) for t in range(len(attrs))}

        def gather(f: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:  # idx [..., 2] -> [N, ..., 2D]
            return torch.cat([f[:, idx[..., 0]], f[:, idx[..., 1]]], dim=-1)

        for i in range(0, len(binary), chunk):
            part = binary[i:i + chunk]
            idx = torch.tensor([pairs[t] for t in part])  # [g, P, 2]
            cols = bcols[i:i + chunk]
            lp = tt.binary_readout_losses(gather(f_tr, idx), y_tr[:, cols], gather(f_te, idx), y_te[:, cols])
            for j, t in enumerate(part):
                losses[t] = np.concatenate([losses[t], lp[j]])
        for t, a in enumerate(attrs):
            if a.kind != "binary":
                idx, sl = torch.tensor(pairs[t]), schema.slices[t]
                lp = tt.softmax_readout_losses(gather(f_tr, idx), y_tr[:, sl], gather(f_te, idx), y_te[:, sl])
                losses[t] = np.concatenate([losses[t], lp])
        for t in range(len(attrs)):
            candidates[t] += pairs[t]
    transfers = []
    for t in range(len(attrs)):
        aff = ahp_affinity(tournament(losses[t]))
        transfers += [Transfer(tuple(c), t, float(v)) for c, v in zip(candidates[t], aff)]
    return first, transfers


def analyse(cfg: Settings, progress: Callable[[str], None] | None = None) -> tuple[dict[str, Any], Topology]:
    """Train source encoders, measure transfers, solve the BIP per budget; the report and the plan."""
    import torch

    from attrnet.data import load_index
    from attrnet.core.errors import InputError
    from attrnet.core.input_spec import InputSpec
    from attrnet.methods.taskonomy import transfer as tt
    from attrnet.models.backbones import backbone

    say = progress or (lambda _msg: None)
    torch.manual_seed(cfg.seed)
    widths = backbone(cfg.arch).widths
    if not 0 <= cfg.split_stage < len(widths):
        raise InputError(f"--split-stage must lie in 0..{len(widths) - 1} for {cfg.arch}, got {cfg.split_stage}")
    if cfg.max_order not in (1, 2):
        raise InputError(f"--max-order takes 1 or 2, got {cfg.max_order}")
    index = load_index(cfg.data)
    schema = index.schema
    sources = tt.make_sources(cfg.sources, schema, cfg.source_cost)
    if cfg.budget < min(s.cost for s in sources):
        raise InputError(f"--budget {cfg.budget:g} buys no source (the cheapest costs {min(s.cost for s in sources):g})")
    h, w = cfg.img_size
    spec = InputSpec(h, w)
    counts = index.counts()
    if counts["train"] < 4:
        raise InputError(f"taskonomy needs training images; {cfg.data} has {counts['train']}")
    x_tr, y_tr = tt.load_images(index, "train", spec, cfg.max_images, cfg.seed)
    if counts["val"] >= 2:
        held = cfg.max_images if cfg.max_images is None else max(2, cfg.max_images // 2)
        x_te, y_te = tt.load_images(index, "val", spec, held, cfg.seed)
    else:  # no validation split: hold out a third of the training images
        cut = max(2, len(x_tr) // 3)
        x_te, y_te, x_tr, y_tr = x_tr[:cut], y_tr[:cut], x_tr[cut:], y_tr[cut:]
    device = "cuda" if torch.cuda.is_available() else "cpu"

    model = tt.encoder_model(cfg.encoder_arch, sources, schema)
    say(f"training {len(sources)} source encoders ({cfg.encoder_arch}, {model.num_parameters():,} parameters) "
        f"on {len(x_tr)} images for {cfg.epochs} epoch(s)")
    tt.train_encoders(model, x_tr, tt.column_labels(y_tr, schema, model.schema), spec, cfg.epochs,
                      cfg.batch_size, cfg.lr, cfg.seed, device, say)
    f_tr = tt.features(model, x_tr, spec, device=device)
    f_te = tt.features(model, x_te, spec, device=device)
    say(f"fitting readouts for {len(schema.names)} targets on {len(x_tr)} images, tournament on {len(x_te)}")

    targets = schema.names
    first, transfers = measure_transfers(f_tr, y_tr, f_te, y_te, schema, cfg.max_order)

    names = [s.name for s in sources]
    plans = solve_budgets(transfers, names, targets, [s.cost for s in sources], cfg.budget)
    chosen = [p for p in plans if "groups" in p]
    if not chosen:
        raise AttrnetError(f"no transfer plan fits budget {cfg.budget:g}")
    chosen_plan = (chosen[-1]["budget"], chosen[-1]["groups"])
    topology = plan_topology(cfg.arch, widths, chosen_plan[1], cfg.split_stage)
    report = {
        "format": "attrnet.taskonomy",
        "version": 1,
        "data": cfg.data,
        "sources": [{"name": s.name, "attributes": list(s.attributes), "cost": s.cost} for s in sources],
        "targets": targets,
        "affinity": {"rows": "sources", "columns": "targets", "order": 1, "matrix": first.round(6).tolist()},
        "transfers": {
            targets[t]: sorted(({"sources": [names[s] for s in tr.sources], "affinity": round(tr.affinity, 6),
                                 "self": tr.sources == (names.index(targets[t]),) if targets[t] in names else False}
                                for tr in transfers if tr.target == t), key=lambda d: -d["affinity"])
            for t in range(len(targets))
        },
        "plans": plans,
        "plan": {"budget": chosen_plan[0], "groups": chosen_plan[1], "split_stage": cfg.split_stage,
                 "arch": cfg.arch},
        "encoders": {"arch": cfg.encoder_arch, "epochs": cfg.epochs, "train_images": len(x_tr),
                     "held_out_images": len(x_te), "img_size": [h, w], "max_order": cfg.max_order},
    }
    return report, topology


def write_outputs(report: dict[str, Any], topology: Topology, out: str | Path) -> list[Path]:
    """Write ``taskonomy.json``, ``plan.json`` (trainable with ``attrnet train --topology``) and
    ``affinity.png`` into `out`; returns the paths written."""
    import json

    from attrnet.core.fileio import atomic_write_text
    from attrnet.methods.heatmap import save_heatmaps

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "taskonomy.json", out / "plan.json", out / "affinity.png"]
    atomic_write_text(paths[0], json.dumps(report, indent=2) + "\n")
    topology.save(paths[1])
    names = [s["name"] for s in report["sources"]]
    save_heatmaps(paths[2], [("first-order affinity (AHP, per target column)", report["affinity"]["matrix"])],
                  names, report["targets"], "Taskonomy: source (row) -> target (column)")
    return paths


def run(cfg: Settings, out: str | Path, progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """`analyse`, then `write_outputs` into `out`; returns the summary: the chosen budget and groups,
    each budget's objective and sources, and the plan file."""
    report, topology = analyse(cfg, progress)
    write_outputs(report, topology, out)
    plan = report["plan"]
    return {"out": str(out), "budget": plan["budget"], "groups": plan["groups"],
            "plans": [{k: p[k] for k in ("budget", "objective", "chosen_sources") if k in p} for p in report["plans"]],
            "plan": str(Path(out) / "plan.json")}
