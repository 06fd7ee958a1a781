"""How cross-stitch alphas move under each optimiser and alpha learning-rate multiplier.

    python benchmarks/cross_stitch_alpha_lr.py --work /tmp/alphalr [--num 1000] [--epochs 4]
        [--sgd 10,100,1000] [--adamw 1,10,100] [--lr 1e-3]

Generates synthetic CelebA data (`attrnet data synth`, planted groups in
synth_groups.json), splits every planted group into two columns (so column
pairs of the same group and of different groups both exist) and trains one
short cross-stitch run (`tiny`, the default per-channel alphas and --stitch-at,
--lr 1e-3 unless given, trainer defaults otherwise) per optimiser and multiplier, recording
every alpha after every step. Per run: the mean and largest per-step change of
an alpha, the range of the same-column alphas (α_bb, channel means) and of the
cross-column ones at the end, the final mean cross-column alpha between columns of the same planted
group and of different groups, and the validation mean accuracy. A markdown
table goes to stdout, the numbers to WORK/alpha_lr-lr<LR>.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import torch

from attrnet.methods.cross_stitch.method import CrossStitchMethod
from attrnet.train.config import TrainConfig
from attrnet.train.trainer import Trainer


class RecordingCrossStitch(CrossStitchMethod):
    """Cross-stitch that keeps every unit's alphas after every step (for this benchmark only)."""

    def __init__(self, options: dict[str, Any] | None = None):
        super().__init__(options)
        self.trace: list[tuple[torch.Tensor, torch.Tensor]] = []

    def attach(self, ctx) -> None:
        super().attach(ctx)
        self.ctx = ctx

    def after_step(self, step, losses, mask, logits, labels):
        alphas = [a.detach().float().reshape(a.shape[0], a.shape[1], -1) for a in self.ctx.model.alpha_parameters()]
        every = torch.cat([a.flatten() for a in alphas])          # every alpha (per channel)
        mean = torch.stack([a.mean(-1) for a in alphas])          # [units, K, K], channel means
        self.trace.append((every, mean))
        return None


def split_groups(groups: dict[str, list[str]]) -> dict[str, list[str]]:
    """Each planted group of two or more attributes as two columns; singletons stay one column."""
    out = {}
    for name, members in groups.items():
        if len(members) < 2:
            out[name] = members
            continue
        half = (len(members) + 1) // 2
        out[f"{name}.1"], out[f"{name}.2"] = members[:half], members[half:]
    return out


def alpha_stats(trace: list[tuple[torch.Tensor, torch.Tensor]], columns: list[str]) -> dict[str, float]:
    """Per-step change of every alpha; final ranges and mean cross-column alpha (channel means) within vs
    across planted groups."""
    seq = torch.stack([every for every, _ in trace])   # [steps, alphas]
    step_change = (seq[1:] - seq[:-1]).abs()
    final = trace[-1][1]
    k = final.shape[-1]
    eye = torch.eye(k, dtype=torch.bool)
    planted = [c.split(".")[0] for c in columns]
    same_group = torch.tensor([[planted[a] == planted[b] and a != b for a in range(k)] for b in range(k)])
    across = ~eye & ~same_group
    diag, off = final[:, eye], final[:, ~eye]
    return {"steps": len(trace), "mean_step_change": float(step_change.mean()),
            "max_step_change": float(step_change.max()),
            "same_min": float(diag.min()), "same_max": float(diag.max()),
            "cross_min": float(off.min()), "cross_max": float(off.max()),
            "within_group": float(final[:, same_group].mean()), "across_group": float(final[:, across].mean())}


def run_one(data: str, out: Path, columns_file: str, optimizer: str, mult: float, args) -> dict[str, Any]:
    method = RecordingCrossStitch({"columns": columns_file, "alpha_lr_mult": mult})
    cfg = TrainConfig(data=data, out=str(out), arch="tiny", method="cross-stitch", epochs=args.epochs,
                      batch_size=32, lr=args.lr, img_size=(args.img_size, args.img_size), workers=0, threads=1, seed=0,
                      optimizer=optimizer, log_every=10000,
                      method_options={"columns": columns_file, "alpha_lr_mult": mult})
    t0 = time.perf_counter()
    summary = Trainer(cfg, method).run()
    columns = list(method.groups)
    return {"optimizer": optimizer, "alpha_lr_mult": mult, **alpha_stats(method.trace, columns),
            "val_mean_accuracy": summary["final"]["mean_accuracy"], "wall_s": round(time.perf_counter() - t0, 1)}


def table(rows: list[dict[str, Any]]) -> str:
    head = ("| optimizer | mult | steps | mean Δα/step | max Δα/step | α_bb range | α_ba range | "
            "α_ba within group | α_ba across groups | val mean acc |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n")
    return head + "".join(
        f"| {r['optimizer']} | {r['alpha_lr_mult']:g} | {r['steps']} | {r['mean_step_change']:.4f} | "
        f"{r['max_step_change']:.4f} | {r['same_min']:.3f}..{r['same_max']:.3f} | "
        f"{r['cross_min']:.3f}..{r['cross_max']:.3f} | {r['within_group']:.4f} | {r['across_group']:.4f} | "
        f"{r['val_mean_accuracy']:.4f} |\n" for r in rows)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--sgd", default="10,100,1000", help="multipliers to try with --optimizer sgd ('' for none)")
    p.add_argument("--adamw", default="1,10,100", help="multipliers to try with --optimizer adamw ('' for none)")
    p.add_argument("--lr", type=float, default=1e-3, help="base learning rate of every run (attrnet's default)")
    p.add_argument("--num", type=int, default=1000, help="synthetic images")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--img-size", type=int, default=32)
    args = p.parse_args()
    from attrnet.data.synth import generate

    torch.set_num_threads(1)
    root = args.work / "celeba"
    if not (root / "synth_groups.json").exists():
        generate("celeba", root, num=args.num, seed=0, size=(args.img_size, args.img_size))
    groups = split_groups(json.loads((root / "synth_groups.json").read_text())["groups"])
    columns_file = args.work / "split_groups.json"
    columns_file.write_text(json.dumps({"groups": groups}))
    rows = []
    for optimizer in ("sgd", "adamw"):
        for mult in (float(m) for m in getattr(args, optimizer).split(",") if m.strip()):
            print(f"{optimizer} x{mult:g} ...", file=sys.stderr, flush=True)
            out = args.work / f"{optimizer}-{mult:g}-lr{args.lr:g}"
            rows.append(run_one(f"celeba:{root}", out, str(columns_file), optimizer, mult, args))
    doc = {"setup": {"lr": args.lr, "num": args.num, "img_size": args.img_size, "epochs": args.epochs,
                     "columns": len(groups), "cores": os.cpu_count(), "load_avg_start": os.getloadavg()[0]}, "runs": rows}
    (args.work / f"alpha_lr-lr{args.lr:g}.json").write_text(json.dumps(doc, indent=2) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
