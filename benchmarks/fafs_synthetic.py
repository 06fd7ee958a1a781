"""FAFS on synthetic CelebA-format data with planted attribute groups (the report experiment).

Runs, all at 64x64 on the same data and seed, through the public CLI:

  thin        attrnet train --arch vgg16-thin --method shared
  fafs-loss   attrnet train --arch vgg16-thin --method fafs --affinity loss
  fafs-error  attrnet train --arch vgg16-thin --method fafs --affinity error
  full        attrnet train --arch vgg16      --method shared  (fewer epochs: it is ~600x larger)

then `attrnet eval` on the test split, and reports parameters and mean
accuracy per run, plus the adjusted Rand index (ARI) between attribute
groupings and the planted groups (``synth_groups.json``):

  - branches: the leaf groups FAFS actually created in the run (when a round ran);
  - fafs rule: the output-layer grouping FAFS's rule (spectral clustering on
    A_b, d minimising (d-1)·L0 + α·L_s) picks from the run's final affinity;
  - oracle d: spectral clustering of the final affinity into as many groups as
    were planted (judges the affinity alone, not the choice of d).

Usage:
  python benchmarks/fafs_synthetic.py --out bench_out/fafs [--num 600] [--epochs 5] [--full-epochs 1]
      [--arch vgg16-thin] [--runs thin,fafs-loss,fafs-error,full]
Results: OUT/results.json and OUT/results.md.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import time
from pathlib import Path
from typing import Any


def run_cli(argv: list[str]) -> tuple[int, str]:
    """`attrnet ARGV` in-process; returns (exit code, stdout). Progress stays on stderr."""
    from attrnet.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(argv)
    return rc, buf.getvalue()


def ari_of(groups: list[list[str]], planted: dict[str, list[str]]) -> float:
    """Adjusted Rand index between a grouping of attributes and the planted groups."""
    from sklearn.metrics import adjusted_rand_score

    truth = {a: g for g, names in enumerate(planted.values()) for a in names}
    found = {a: g for g, names in enumerate(groups) for a in names}
    names = sorted(truth)
    return float(adjusted_rand_score([truth[a] for a in names], [found[a] for a in names]))


def affinity_groupings(fafs_doc: dict[str, Any], planted: dict[str, list[str]]) -> dict[str, Any]:
    """ARI of the FAFS rule's output-layer grouping and of the oracle-d grouping of the final affinity."""
    import numpy as np

    from attrnet.methods.fafs.widening import choose_partition, spectral_groups

    names = fafs_doc["task_affinity"]["attributes"]
    a = np.asarray(fafs_doc["task_affinity"]["matrix"])
    part = choose_partition(a, fafs_doc["branch_cost"], fafs_doc["alpha"])
    rule = [[n for n, g in zip(names, part.labels) if g == k] for k in range(part.d)]
    oracle_labels = spectral_groups(a, len(planted))
    oracle = [[n for n, g in zip(names, oracle_labels) if g == k] for k in range(len(planted))]
    planted_idx = [[names.index(n) for n in members] for members in planted.values()]
    within = np.mean([a[np.ix_(g, g)][~np.eye(len(g), dtype=bool)].mean() for g in planted_idx if len(g) > 1])
    between = np.mean([a[i, j] for gi, g in enumerate(planted_idx) for h in planted_idx[gi + 1:]
                       for i in g for j in h])
    return {"rule_d": part.d, "rule_ari": ari_of(rule, planted), "oracle_ari": ari_of(oracle, planted),
            "mean_affinity_within_planted": float(within), "mean_affinity_between_planted": float(between)}


def somp_report(checkpoint: Path, seed: int = 0) -> list[dict[str, Any]]:
    """Per layer, thinning a trained wide vgg16 to vgg16-thin widths: relative reconstruction error of
    the SOMP selection vs the largest-norm filters vs random filters (inputs restricted as SOMP does)."""
    import numpy as np

    from attrnet.methods.fafs.somp import read_wide_layers, reconstruction_error, restrict_inputs, select_filters
    from attrnet.models.backbones import backbone

    rng = np.random.default_rng(seed)
    rows = []
    prev, below = None, 0
    for s, (layer, width) in enumerate(zip(read_wide_layers(checkpoint), backbone("vgg16-thin").widths)):
        w = layer.weight if prev is None else restrict_inputs(layer.weight, prev, below)
        flat = w.reshape(w.shape[0], -1)
        pick = select_filters(w, width)
        by_norm = list(np.argsort(-np.linalg.norm(flat, axis=1))[:width])
        rand = [reconstruction_error(w, list(rng.choice(len(w), width, replace=False))) for _ in range(5)]
        rows.append({"stage": s, "wide": layer.width, "thin": width, "somp": reconstruction_error(w, pick),
                     "norm": reconstruction_error(w, by_norm), "random": float(np.mean(rand))})
        prev, below = pick, layer.width
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench_out/fafs")
    ap.add_argument("--num", type=int, default=600, help="synthetic images (80/10/10 split)")
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=5, help="epochs of the thin and FAFS runs")
    ap.add_argument("--full-epochs", type=int, default=1, help="epochs of the full-width vgg16 run")
    ap.add_argument("--val-every", type=int, default=5)
    ap.add_argument("--max-stall", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--arch", default="vgg16-thin", help="arch of the thin and FAFS runs")
    ap.add_argument("--runs", default="thin,fafs-loss,fafs-error,full", help="comma list; 'none' to redo the report")
    args = ap.parse_args()

    from attrnet.train.checkpoint import build_from_metadata, load_model, read_metadata
    from attrnet.data.synth import generate

    out = Path(args.out)
    data = out / "celeba"
    if not (data / "synth_groups.json").exists():
        generate("celeba", data, num=args.num, seed=args.seed, size=(args.size, args.size))
    planted = json.loads((data / "synth_groups.json").read_text())["groups"]
    common = ["--data", f"celeba:{data}", "--img-size", str(args.size), "--batch-size", "32", "--workers", "0",
              "--seed", str(args.seed), "--log-every", "10", "--json"]
    fafs = ["--arch", args.arch, "--method", "fafs", "--val-every", str(args.val_every), "--val-batches", "2",
            "--max-stall", str(args.max_stall), "--epochs", str(args.epochs)]
    plans = {
        "thin": ["--arch", args.arch, "--method", "shared", "--epochs", str(args.epochs)],
        "fafs-loss": fafs + ["--affinity", "loss"],
        "fafs-error": fafs + ["--affinity", "error"],
        "full": ["--arch", "vgg16", "--method", "shared", "--epochs", str(args.full_epochs)],
    }
    saved = out / "results.json"
    results: dict[str, Any] = json.loads(saved.read_text()) if saved.exists() else {"runs": {}}
    results.update({"settings": vars(args), "planted_groups": {k: len(v) for k, v in planted.items()}})
    for name in [r for r in args.runs.split(",") if r and r != "none"]:
        run_dir = out / name
        start = time.perf_counter()
        rc, stdout = run_cli(["train", "--out", str(run_dir), *common, *plans[name]])
        if rc != 0:
            raise SystemExit(f"{name}: attrnet train exited {rc}")
        seconds = time.perf_counter() - start
        rc, stdout = run_cli(["eval", str(run_dir / "best.safetensors"), "--data", f"celeba:{data}",
                              "--split", "test", "--workers", "0", "--json"])
        if rc != 0:
            raise SystemExit(f"{name}: attrnet eval exited {rc}")
        test = json.loads(stdout)
        model, meta = load_model(run_dir / "best.safetensors")
        row: dict[str, Any] = {"arch": meta["arch"], "params": model.num_parameters(),
                               "branches": model.topology.branch_counts(), "train_seconds": round(seconds, 1),
                               "test_mean_accuracy": test["mean_accuracy"], "test_images": test["num_samples"],
                               "val_mean_accuracy": meta["metrics"].get("mean_accuracy")}
        if name.startswith("fafs"):
            doc = json.loads((run_dir / "fafs.json").read_text())
            last = build_from_metadata(read_metadata(run_dir / "last.safetensors"))
            row["final_branches"] = last.topology.branch_counts()
            row["final_params"] = last.num_parameters()
            row["rounds"] = [{"step": r["step"], "stage": r["stage"], "d": r["d"]} for r in doc["rounds"]]
            row["branch_ari"] = ari_of(doc["groups"], planted) if doc["rounds"] else None
            row.update(affinity_groupings(doc, planted))
        results["runs"][name] = row
        print(json.dumps({name: row}), file=sys.stderr)
    if (out / "full" / "best.safetensors").exists():
        results["somp"] = somp_report(out / "full" / "best.safetensors", args.seed)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(table(results))
    print(table(results))
    return 0


def table(results: dict[str, Any]) -> str:
    """Markdown tables: accuracy/parameters per run, ARI per FAFS run."""
    lines = ["| run | arch | branches per stage (best ckpt) | parameters | test mean acc | val mean acc | train s |",
             "|---|---|---|---:|---:|---:|---:|"]
    for name, r in results["runs"].items():
        val = "" if r["val_mean_accuracy"] is None else f"{r['val_mean_accuracy']:.4f}"
        lines.append(f"| {name} | {r['arch']} | {r['branches']} | {r['params']:,} | "
                     f"{r['test_mean_accuracy']:.4f} | {val} | {r['train_seconds']} |")
    fafs = {k: v for k, v in results["runs"].items() if k.startswith("fafs")}
    if fafs:
        lines += ["", "| run | rounds (stage: d) | final branches | ARI branches | ARI fafs rule (d) | "
                  "ARI oracle d | affinity within / between planted |", "|---|---|---|---:|---:|---:|---:|"]
        for name, r in fafs.items():
            rounds = ", ".join(f"{x['stage']}: {x['d']}" for x in r["rounds"]) or "none"
            ari = "n/a" if r["branch_ari"] is None else f"{r['branch_ari']:.3f}"
            lines.append(f"| {name} | {rounds} | {r['final_branches']} | {ari} | {r['rule_ari']:.3f} ({r['rule_d']}) | "
                         f"{r['oracle_ari']:.3f} | {r['mean_affinity_within_planted']:.3f} / "
                         f"{r['mean_affinity_between_planted']:.3f} |")
    if results.get("somp"):
        lines += ["", "| stage | wide -> thin | SOMP error | largest-norm error | random error |",
                  "|---:|---|---:|---:|---:|"]
        lines += [f"| {r['stage']} | {r['wide']} -> {r['thin']} | {r['somp']:.3f} | {r['norm']:.3f} | "
                  f"{r['random']:.3f} |" for r in results["somp"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
