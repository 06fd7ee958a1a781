"""Side-by-side loss weightings on synthetic CelebA-format data (tiny arch, CPU).

    python benchmarks/train_weighting.py --num 2000 --epochs 8 --seeds 0 1 2 --out bench_runs

Generates (or reuses) `--out/data`, trains every weighting with every seed on
the same data, evaluates `best.safetensors` on the test split, and prints a
markdown table: mean accuracy and mA (mean ± std over seeds, test split),
and training throughput in images/s (AWMT includes its per-step validation
batch; `equal` is the same loop without it). Results also go to
`--out/results.json`.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

WEIGHTINGS = ("equal", "awmt", "uncertainty", "dwa")


def run_one(data: str, out: Path, weighting: str, seed: int, args: argparse.Namespace) -> dict:
    from attrnet.train.config import TrainConfig
    from attrnet.evaluate import evaluate
    from attrnet.methods import trainer_for

    cfg = TrainConfig(data=data, out=str(out), arch="tiny", weighting=weighting, epochs=args.epochs,
                      batch_size=args.batch_size, lr=args.lr, img_size=(args.size, args.size), seed=seed,
                      workers=args.workers, threads=args.threads, awmt_k=args.awmt_k, log_every=10**6)
    start = time.perf_counter()
    trainer_for(cfg).run()
    wall = time.perf_counter() - start
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    test = evaluate(out / "best.safetensors", data, "test", device="cpu")
    return {"weighting": weighting, "seed": seed, "test_mean_accuracy": test["mean_accuracy"], "test_mA": test["mA"],
            "val_mean_accuracy": max(r["mean_accuracy"] for r in rows),
            "images_per_s": statistics.mean(r["images_per_s"] for r in rows), "wall_s": wall}


def throughput(data: str, out: Path, args: argparse.Namespace, repeats: int = 3) -> dict:
    """Training images/s of one epoch without (equal) and with AWMT's validation batch, interleaved."""
    from attrnet.train.config import TrainConfig
    from attrnet.methods import trainer_for

    rates: dict[str, list[float]] = {"equal": [], "awmt": []}
    for r in range(repeats):
        for w in rates:
            cfg = TrainConfig(data=data, out=str(out / f"speed-{w}-{r}"), arch="tiny", weighting=w, epochs=1,
                              batch_size=args.batch_size, lr=args.lr, img_size=(args.size, args.size),
                              workers=args.workers, threads=args.threads, awmt_k=args.awmt_k, log_every=10**6)
            t = trainer_for(cfg)
            t.setup()
            rates[w].append(t.train_epoch(0)["images_per_s"])
    return {w: statistics.median(v) for w, v in rates.items()}


def majority_baseline(data: str) -> dict:
    import numpy as np

    from attrnet.data import load_index
    from attrnet.train.metrics import compute_metrics

    index = load_index(data)
    train, test = index.subset("train"), index.subset("test")
    prior = np.nan_to_num(np.nanmean(train.labels, 0))
    m = compute_metrics(np.tile(prior, (len(test), 1)), test.labels, index.schema)
    return {"mean_accuracy": m["mean_accuracy"], "mA": m["mA"]}


def table(results: list[dict], baseline: dict) -> str:
    def ms(values: list[float], digits: int = 4) -> str:
        if len(values) < 2:
            return f"{values[0]:.{digits}f}"
        return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"

    lines = ["| weighting | test mean accuracy | test mA | images/s (train) |",
             "|---|---|---|---|",
             f"| majority class | {baseline['mean_accuracy']:.4f} | {baseline['mA']:.4f} | |"]
    for w in WEIGHTINGS:
        rs = [r for r in results if r["weighting"] == w]
        if rs:
            lines.append(f"| {w} | {ms([r['test_mean_accuracy'] for r in rs])} | {ms([r['test_mA'] for r in rs])} "
                         f"| {ms([r['images_per_s'] for r in rs], 1)} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="bench_runs")
    p.add_argument("--num", type=int, default=2000)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--weightings", nargs="+", default=list(WEIGHTINGS))
    p.add_argument("--awmt-k", type=int, default=25)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--throughput", action="store_true", help="also time one epoch with and without AWMT, interleaved")
    args = p.parse_args()

    from attrnet.data.synth import generate
    from attrnet.core.fileio import atomic_write_text

    out = Path(args.out)
    root = out / "data"
    if not (root / "list_attr_celeba.txt").exists():
        generate("celeba", root, num=args.num, seed=0, size=(args.size, args.size))
    data = f"celeba:{root}"
    results_path = out / "results.json"
    results = json.loads(results_path.read_text())["runs"] if results_path.exists() else []
    done = {(r["weighting"], r["seed"]) for r in results}
    for seed in args.seeds:
        for w in args.weightings:
            if (w, seed) in done:
                continue
            r = run_one(data, out / f"{w}-s{seed}", w, seed, args)
            results.append(r)
            print(json.dumps(r), flush=True)
            atomic_write_text(results_path, json.dumps({"args": vars(args), "runs": results}, indent=2) + "\n")
    baseline = majority_baseline(data)
    print(table(results, baseline))
    if args.throughput:
        speed = throughput(data, out, args)
        print(f"training throughput, median of 3 interleaved epochs: without the AWMT validation batch "
              f"(equal) {speed['equal']:.1f} images/s, with it (awmt) {speed['awmt']:.1f} images/s "
              f"({speed['awmt'] / speed['equal']:.2f}x)")


if __name__ == "__main__":
    main()
