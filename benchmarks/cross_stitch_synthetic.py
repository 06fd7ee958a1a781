"""Cross-stitch and Taskonomy on synthetic CelebA-format data (the report experiment).

    python benchmarks/cross_stitch_synthetic.py --work /tmp/csbench [--num 1000] [--img-size 32] [--epochs 4]

1. Generates synthetic CelebA data (`attrnet data synth`, planted groups in synth_groups.json).
2. Trains shared, independent (planted-group columns), cross-stitch with planted-group
   columns and cross-stitch with per-attribute columns, each in its own process: mean
   validation accuracy, parameters, training images/s, peak RSS (ru_maxrss) and CPU time.
3. Per-attribute cross-stitch: do columns of the same planted group mix more (mean α_ba,
   a != b) than columns of different groups?
4. Model-only training speed and peak memory at 64x64, batch 32 (DESIGN §8's LibMTL point:
   40 per-attribute columns, and K = planted groups), one process per configuration.
5. `attrnet taskonomy --sources all` and the adjusted Rand index between each budget's
   grouping and synth_groups.json.

Results go to WORK/results-<parts>.json and a markdown summary on stdout.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

TRAIN_CONFIGS = {
    "shared": {"method": "shared"},
    "independent-groups": {"method": "independent", "columns": "GROUPS"},
    "cross-stitch-groups": {"method": "cross-stitch", "columns": "GROUPS"},
    "cross-stitch-groups-alpha-lr-x10": {"method": "cross-stitch", "columns": "GROUPS", "alpha_lr_mult": 10},
    "cross-stitch-per-attribute": {"method": "cross-stitch", "columns": "per-attribute"},
}
SPEED_CONFIGS = ["shared", "independent-groups", "cross-stitch-groups", "cross-stitch-per-attribute",
                 "independent-per-attribute"]


def _usage() -> dict:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return {"peak_rss_mb": round(ru.ru_maxrss / 1024, 1), "cpu_s": round(ru.ru_utime + ru.ru_stime, 1)}


def worker_train(spec: dict) -> dict:
    """One training run in this process."""
    from attrnet.train.checkpoint import load_model
    from attrnet.train.config import TrainConfig
    from attrnet.methods import trainer_for

    opts = {"columns": spec.get("columns"), "alpha_lr_mult": spec.get("alpha_lr_mult")}
    cfg = TrainConfig(data=spec["data"], out=spec["out"], arch="tiny", method=spec["method"], epochs=spec["epochs"],
                      batch_size=32, lr=spec.get("lr", 2e-3), img_size=(spec["img"], spec["img"]), workers=0,
                      seed=0, method_options={k: v for k, v in opts.items() if v is not None}, log_every=1000)
    t0 = time.perf_counter()
    summary = trainer_for(cfg).run()
    wall = time.perf_counter() - t0
    model, meta = load_model(Path(spec["out"]) / "best.safetensors")
    history = [json.loads(line) for line in (Path(spec["out"]) / "metrics.jsonl").read_text().splitlines()]
    return {"mean_accuracy": meta["metrics"].get("mean_accuracy"), "mA": meta["metrics"].get("mA"),
            "best_epoch": summary["best_epoch"], "params": model.num_parameters(),
            "train_images_per_s": round(sum(h["images_per_s"] for h in history) / len(history), 1),
            "wall_s": round(wall, 1), **_usage()}


def worker_speed(spec: dict) -> dict:
    """Model-only training steps (forward, backward, AdamW) on random tensors."""
    import torch

    from attrnet.methods.registry import make_method
    from attrnet.models.net import MultiTaskNet
    from attrnet.core.schema import celeba_schema

    schema = celeba_schema()
    name = spec["config"]
    method, columns = {"shared": ("shared", None), "independent-groups": ("independent", spec["groups"]),
                       "cross-stitch-groups": ("cross-stitch", spec["groups"]),
                       "cross-stitch-per-attribute": ("cross-stitch", "per-attribute"),
                       "independent-per-attribute": ("independent", "per-attribute")}[name]
    m = make_method(method, {"columns": columns} if columns else {})
    model = MultiTaskNet(m.initial_topology("tiny", schema), schema)
    opt = torch.optim.AdamW(m.param_groups(model, 1e-3), lr=1e-3)
    x = torch.randn(spec["batch"], 3, spec["img"], spec["img"])
    y = torch.randint(0, 2, (spec["batch"], 40)).float()

    def step() -> None:
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(spec["steps"]):
        step()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = spec["steps"] * spec["batch"]
    return {"columns": model.topology.num_leaves, "params": model.num_parameters(),
            "images_per_s": round(n / wall, 2), "images_per_cpu_s": round(n / cpu, 2),
            "threads": torch.get_num_threads(), **_usage()}


def _run_worker(kind: str, spec: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "--worker", kind, json.dumps(spec)], capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def mixing_by_group(alphas: dict, groups: dict[str, list[str]]) -> list[dict]:
    """Mean off-diagonal α_ba for column pairs in the same planted group vs different groups, per unit."""
    member = {a: g for g, names in groups.items() for a in names}
    cols = alphas["columns"]
    rows = []
    for unit in alphas["units"]:
        same, diff = [], []
        for b, row in enumerate(unit["matrix"]):
            for a, v in enumerate(row):
                if a != b:
                    (same if member[cols[a]] == member[cols[b]] else diff).append(v)
        rows.append({"after_stage": unit["after_stage"], "same_group": sum(same) / len(same),
                     "different_group": sum(diff) / len(diff), "mean_self": unit["mean_same"]})
    return rows


def taskonomy_ari(work: Path, data: str, groups: dict[str, list[str]], args) -> dict:
    from sklearn.metrics import adjusted_rand_score

    result = {}
    for order in (1, 2):
        out = work / f"taskonomy-order{order}"
        cmd = [sys.executable, "-m", "attrnet", "taskonomy", "--data", data, "--sources", "all",
               "--budget", str(len(groups)), "--out", str(out), "--epochs", str(args.taskonomy_epochs),
               "--img-size", str(args.img_size), "--max-order", str(order), "--max-images", str(args.taskonomy_images)]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            result[f"order{order}"] = {"error": proc.stderr.strip().splitlines()[-1]}
            continue
        report = json.loads((out / "taskonomy.json").read_text())
        truth = {a: g for g, names in groups.items() for a in names}
        names = report["targets"]
        per_budget = []
        for plan in report["plans"]:
            if "groups" not in plan:
                continue
            label = {a: g for g, members in plan["groups"].items() for a in members}
            per_budget.append({"budget": plan["budget"], "groups": len(plan["groups"]),
                               "ari": round(adjusted_rand_score([truth[a] for a in names],
                                                                [label[a] for a in names]), 3)})
        result[f"order{order}"] = {"wall_s": round(time.perf_counter() - t0, 1), "per_budget": per_budget}
    return result


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--num", type=int, default=1000)
    p.add_argument("--img-size", type=int, default=32)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--speed-steps", type=int, default=3)
    p.add_argument("--taskonomy-epochs", type=int, default=3)
    p.add_argument("--taskonomy-images", type=int, default=600)
    p.add_argument("--configs", nargs="*", choices=list(TRAIN_CONFIGS), default=list(TRAIN_CONFIGS),
                   help="training configurations to run")
    p.add_argument("--only", nargs="*", choices=["train", "speed", "taskonomy"], default=["train", "speed", "taskonomy"])
    args = p.parse_args()
    from attrnet.data.synth import generate

    work = args.work
    root = work / "celeba"
    if not (root / "synth_groups.json").exists():
        generate("celeba", root, num=args.num, seed=0, size=(args.img_size, args.img_size))
    gfile = str(root / "synth_groups.json")
    groups = json.loads(Path(gfile).read_text())["groups"]
    data = f"celeba:{root}"
    tag = "-".join(args.only) + ("" if args.configs == list(TRAIN_CONFIGS) else "-" + "-".join(args.configs))
    results_path = work / f"results-{tag}.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results["setup"] = {"num": args.num, "img_size": args.img_size, "epochs": args.epochs, "arch": "tiny",
                        "cores": os.cpu_count(), "load_avg_start": os.getloadavg()[0]}
    if "train" in args.only:
        results["train"] = {}
        for name in args.configs:
            c = TRAIN_CONFIGS[name]
            spec = {**c, "data": data, "out": str(work / name), "epochs": args.epochs, "img": args.img_size}
            if spec.get("columns") == "GROUPS":
                spec["columns"] = gfile
            print(f"training {name} ...", file=sys.stderr, flush=True)
            results["train"][name] = _run_worker("train", spec)
            print(json.dumps(results["train"][name]), file=sys.stderr, flush=True)
            results_path.write_text(json.dumps(results, indent=2))
        alphas = work / "cross-stitch-per-attribute" / "alphas.json"
        if "cross-stitch-per-attribute" in args.configs and alphas.exists():
            results["mixing_per_attribute"] = mixing_by_group(json.loads(alphas.read_text()), groups)
    if "speed" in args.only:
        results["speed_64x64_batch32"] = {}
        for name in SPEED_CONFIGS:
            print(f"speed {name} ...", file=sys.stderr, flush=True)
            results["speed_64x64_batch32"][name] = _run_worker(
                "speed", {"config": name, "groups": gfile, "img": 64, "batch": 32, "steps": args.speed_steps})
            print(json.dumps(results["speed_64x64_batch32"][name]), file=sys.stderr, flush=True)
            results_path.write_text(json.dumps(results, indent=2))
    if "taskonomy" in args.only:
        print("taskonomy ...", file=sys.stderr, flush=True)
        results["taskonomy"] = taskonomy_ari(work, data, groups, args)
    results["setup"]["load_avg_end"] = os.getloadavg()[0]
    results_path.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    if len(sys.argv) >= 4 and sys.argv[1] == "--worker":
        fn = {"train": worker_train, "speed": worker_speed}[sys.argv[2]]
        print(json.dumps(fn(json.loads(sys.argv[3]))))
    else:
        main()
