"""Each method's paper claim next to what it does here, on planted synthetic data (issue 15).

    python benchmarks/methods.py [--preset celeba] [--seeds 0,1,2] [--quick] [--json PATH]
        [--difficulty easy|default|hard] [--jobs 2] [--work bench_out/methods] [--out benchmarks/METHODS.md]

Per seed it generates synthetic CelebA-format data (`attrnet data synth`, planted groups in
synth_groups.json) and an AWMT variant (one planted group's labels noisy), then trains, each
run in its own process with one torch thread (`--jobs` at a time), and tests on the test split:

- FAFS (vgg16-thin at the budget's size, widening; hard = high loss, and hard = misclassified)
  against the thin start and full-width vgg16 (trained only in the full run; under --quick its
  parameters are counted): ARI of the final leaf grouping, parameters, test mean accuracy;
- cross-stitch (tiny, each planted group as two columns) against shared and independent columns:
  mean off-diagonal alpha within and across planted groups, test mean accuracy; with the
  independent columns, FAFS's affinity measured by a well-trained model;
- Taskonomy (sources = attributes, budget = number of planted groups): ARI of the plan's grouping,
  and how far the transfer affinities alone follow the planted groups;
- equal, AWMT, uncertainty and DWA weighting (tiny shared), and equal vs AWMT on the variant
  (AWMT also at other update intervals).

`--quick` runs the first seed at a smaller budget. Writes `--out` (the table, with this command,
the wall time and the machine's load) and, with --json, one object of means over the seeds.
Data and runs go under --work (made afresh by every invocation).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from methods_lib.common import BUDGETS, Budget, make_data, planted_groups  # noqa: E402
from methods_lib.jobs import job_names, run_job  # noqa: E402
from methods_lib.report import summarise, write_report  # noqa: E402

NOISY_RATE = 0.3


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="celeba", choices=["celeba"], help="synthetic data preset")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (data and training)")
    p.add_argument("--quick", action="store_true", help="first seed only, smaller budget, full width not trained")
    p.add_argument("--difficulty", choices=["easy", "default", "hard"], help="synth difficulty (default: the budget's)")
    p.add_argument("--json", type=Path, help="also write the means over seeds as one JSON object here")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (one torch thread each)")
    p.add_argument("--work", type=Path, default=Path("bench_out/methods"), help="data and runs")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "METHODS.md")
    p.add_argument("--render", type=Path, metavar="JSON", help="no training: rewrite --out from a --json file")
    p.add_argument("--only", default=",".join(job_names()), help="comma-separated jobs (default: all)")
    args = p.parse_args(argv)
    args.seed_list = [int(s) for s in args.seeds.split(",") if s.strip()]
    if not args.seed_list:
        p.error("--seeds: give at least one seed")
    if args.quick:
        args.seed_list = args.seed_list[:1]
    unknown = set(args.only.split(",")) - set(job_names())
    if unknown:
        p.error(f"--only: unknown job(s) {', '.join(sorted(unknown))} (choose from {', '.join(job_names())})")
    return args


def prepare_data(work: Path, seed: int, budget: Budget) -> dict[str, Any]:
    """The default data and the AWMT variant (one planted group's train/val labels noisy) of one seed."""
    root, variant = work / f"seed{seed}" / "data", work / f"seed{seed}" / "variant"
    default = make_data(root, seed, budget)
    noisy = max(planted_groups(root).items(), key=lambda kv: len(kv[1]))[0]  # the largest group
    noisy_settings = make_data(variant, seed, budget, noisy_group=noisy, label_noise=NOISY_RATE)
    return {"data": str(root), "variant": str(variant), "noisy_group": noisy, "default_settings": default,
            "variant_settings": noisy_settings}


def source_commit() -> str:
    """The checkout's commit (with "+changes" when the tree differs from it), or "unknown" outside git."""
    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=Path(__file__).parent, capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", "HEAD")
    return (commit + ("+changes" if git("status", "--porcelain", "--untracked-files=no") else "")) or "unknown"


def render(saved: Path, out: Path) -> None:
    """Rewrite the report from a --json file of an earlier run."""
    doc = json.loads(saved.read_text())
    results = {int(seed): runs for seed, runs in doc["per_seed"].items()}
    write_report(out, doc["run"], summarise(results), results)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.render:
        render(args.render, args.out)
        return 0
    budget = BUDGETS["quick" if args.quick else "full"]
    budget = replace(budget, difficulty=args.difficulty or budget.difficulty)
    start, load_start = time.time(), os.getloadavg()
    specs, variants = [], {}
    for seed in args.seed_list:
        data = prepare_data(args.work, seed, budget)
        variants[seed] = data["variant_settings"]
        for name in args.only.split(","):
            specs.append((seed, name, {"seed": seed, "budget": asdict(budget), "data": data["data"],
                                       "variant": data["variant"], "noisy_group": data["noisy_group"],
                                       "out": str(args.work / f"seed{seed}" / name)}))
    results: dict[int, dict[str, Any]] = {seed: {} for seed in args.seed_list}
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
        futures = {(seed, name): pool.submit(run_job, name, spec) for seed, name, spec in specs}
        for (seed, name), future in futures.items():
            try:
                results[seed][name] = future.result()
            except Exception as exc:  # one failed run is reported, the others still count
                results[seed][name] = {"error": f"{type(exc).__name__}: {exc}"}
    run = {"command": "python benchmarks/methods.py " + " ".join(sys.argv[1:] if argv is None else argv),
           "wall_s": round(time.time() - start), "load_start": load_start, "load_end": os.getloadavg(),
           "cores": os.cpu_count(), "budget": asdict(budget), "seeds": args.seed_list, "variant": variants,
           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "commit": source_commit()}
    summary = summarise(results)
    if args.json:  # first: a report that fails to render can be rewritten from it with --render
        args.json.write_text(json.dumps({**summary["means"], "run": run, "per_seed": results}, indent=2) + "\n")
    write_report(args.out, run, summary, results)
    print(json.dumps(summary["means"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
