"""Cross-stitch unit placement: --stitch-at pools vs all (and the old every-stage-but-the-last) on synthetic data.

    python benchmarks/cross_stitch_placement.py --work /tmp/stitchat [--arch vgg16-thin] [--num 800] [--epochs 3]

Generates synthetic CelebA data (`attrnet data synth`, planted groups in
synth_groups.json) and trains one cross-stitch run per placement, one column
per planted group, everything else at the trainer's defaults (AdamW, the
optimiser's default alpha learning rate), one thread. Prints a markdown table:
units, parameters, validation mean accuracy and mA (best epoch), wall time.
On `tiny` pools and all are the same places; the arch must have stages that
do not end a resolution level (vgg16-thin, resnet18).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from attrnet.methods import trainer_for
from attrnet.models.backbones import backbone
from attrnet.train.checkpoint import load_model
from attrnet.train.config import TrainConfig


def placements(arch: str) -> dict[str, dict]:
    n = len(backbone(arch).stages)
    return {"pools": {"stitch_at": "pools"}, "all": {"stitch_at": "all"},
            "all-but-last (before)": {"mix_after": list(range(n - 1))}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--arch", default="vgg16-thin")
    p.add_argument("--num", type=int, default=800)
    p.add_argument("--img-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args()
    from attrnet.data.synth import generate

    root = args.work / "celeba"
    if not (root / "synth_groups.json").exists():
        generate("celeba", root, num=args.num, seed=0, size=(args.img_size, args.img_size))
    groups = str(root / "synth_groups.json")
    rows = []
    for name, where in placements(args.arch).items():
        print(f"{name} ...", file=sys.stderr, flush=True)
        out = args.work / name.split()[0]
        cfg = TrainConfig(data=f"celeba:{root}", out=str(out), arch=args.arch, method="cross-stitch",
                          epochs=args.epochs, batch_size=32, img_size=(args.img_size, args.img_size), workers=0,
                          threads=1, seed=0, log_every=10**6, method_options={"columns": groups, **where})
        t0 = time.perf_counter()
        trainer_for(cfg).run()
        model, meta = load_model(out / "best.safetensors")
        rows.append({"placement": name, "units": [m.after_stage for m in model.topology.mix],
                     "params": model.num_parameters(), "mean_accuracy": meta["metrics"]["mean_accuracy"],
                     "mA": meta["metrics"]["mA"], "wall_s": round(time.perf_counter() - t0, 1)})
    (args.work / f"placement-{args.arch}.json").write_text(json.dumps(
        {"setup": {**vars(args), "work": str(args.work), "load_avg_start": os.getloadavg()[0]}, "runs": rows},
        indent=2) + "\n")
    print("| placement | units after stages | params | val mean accuracy | val mA | wall s |\n"
          "| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['placement']} | {r['units']} | {r['params']} | {r['mean_accuracy']:.4f} | {r['mA']:.4f} | "
              f"{r['wall_s']} |")


if __name__ == "__main__":
    main()
