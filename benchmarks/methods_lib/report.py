"""Means over seeds, the goals' verdicts and benchmarks/METHODS.md."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from methods_lib.common import mean_std

__all__ = ["KEYS", "summarise", "write_report"]

# JSON key prefix -> the job whose test mean accuracy (KEY_acc) and mA (KEY_mA) it reports
_RUNS = {"fafs": "fafs", "thin": "thin", "full": "full", "xstitch": "xstitch", "shared": "shared",
         "independent": "independent", "equal": "shared", "awmt": "awmt", "uncertainty": "uncertainty", "dwa": "dwa",
         "equal_variant": "equal_variant", "awmt_variant": "awmt_variant", "majority": "majority",
         "majority_variant": "majority_variant"}
# JSON key -> (job, field of its result)
KEYS: dict[str, tuple[str, str]] = {
    **{f"{key}_{metric}": (job, field) for key, job in _RUNS.items()
       for metric, field in (("acc", "test_acc"), ("mA", "test_mA"))},
    **{f"{job}_params": (job, "params") for job in ("fafs", "thin", "full")},
    "fafs_ari": ("fafs", "ari"), "fafs_error_ari": ("fafs_error", "ari"),
    "fafs_error_affinity_ari": ("fafs_error", "affinity_ari"), "fafs_final_params": ("fafs", "final_params"),
    "fafs_affinity_ari": ("fafs", "affinity_ari"), "trained_affinity_ari": ("independent", "loss_affinity_ari"),
    "visibility_affinity_ari": ("independent", "visibility_affinity_ari"),
    "p_hard_degraded": ("independent", "p_hard_degraded"), "p_hard_clean": ("independent", "p_hard_clean"),
    "xstitch_alpha_within": ("xstitch", "alpha_within"), "xstitch_alpha_across": ("xstitch", "alpha_across"),
    "taskonomy_ari": ("taskonomy", "ari"), "taskonomy_largest_group": ("taskonomy", "largest_group"),
    "taskonomy_top1_same_group": ("taskonomy", "top1_same_group"),
    "taskonomy_single_groups": ("taskonomy", "single_groups"), "taskonomy_self_share": ("taskonomy", "self_share"),
    "taskonomy_affinity_rank_ari": ("taskonomy", "affinity_rank_ari"),
    "fafs_leaves": ("fafs", "leaves"),
    **{f"awmt_variant_weight_{k}": ("awmt_variant", f"weight_{k}") for k in ("noisy", "others", "final_min",
                                                                            "final_max")},
}

CLAIMS = {
    "FAFS (Lu et al., CVPR 2017)": "Widening a thin network where tasks disagree puts related attributes in one "
    "branch, and the widened net is more accurate than the thin start at a small fraction of VGG-16's parameters.",
    "Cross-stitch (Misra et al., CVPR 2016)": "Learned alphas share more between related tasks than between "
    "unrelated ones; stitched columns do at least as well as one shared net or independent columns.",
    "Taskonomy (Zamir et al., CVPR 2018)": "Transfer affinities reveal which tasks belong together; the budgeted "
    "plan groups each target with the sources that transfer to it.",
    "AWMT (He et al., ACM MM 2017)": "Weighting tasks by their validation-loss trend trains better than equal "
    "weights, most where tasks learn at different speeds or some labels are noisy.",
}


def _values(results: dict[int, dict[str, Any]], job: str, field: str) -> list[float]:
    return [r[job][field] for r in results.values() if isinstance(r.get(job, {}).get(field), (int, float))]


def summarise(results: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Means and standard deviations over seeds of every `KEYS` entry, and the goals' verdicts."""
    means: dict[str, float | None] = {}
    stds: dict[str, float] = {}
    for key, (job, field) in KEYS.items():
        values = _values(results, job, field)
        means[key], stds[key] = mean_std(values) if values else (None, 0.0)
    gaps = [r["xstitch"]["alpha_within"] - r["xstitch"]["alpha_across"] for r in results.values()
            if "alpha_within" in r.get("xstitch", {})]
    spread = max(stds["xstitch_alpha_within"], stds["xstitch_alpha_across"])
    means["awmt_variant_acc_by_k"] = _mean_by_key([r["awmt_variant_k"]["test_acc_by_k"] for r in results.values()
                                                   if "test_acc_by_k" in r.get("awmt_variant_k", {})])
    return {"means": means, "stds": stds, "goals": _goals(means, gaps, spread)}


def _mean_by_key(dicts: list[dict[str, float]]) -> dict[str, float]:
    keys = {k for d in dicts for k in d}
    return {k: mean_std([d[k] for d in dicts if k in d])[0] for k in sorted(keys)}


def _goals(m: dict[str, float | None], gaps: list[float], spread: float) -> list[tuple[str, str, bool | None, str]]:
    """(goal, measured, met, measured alongside) for each goal of issue 15 (met None: not measured)."""
    def have(*keys: str) -> bool:
        return all(m.get(k) is not None for k in keys)

    goals = []
    if have("fafs_ari"):
        goals.append(("FAFS ARI ≥ 0.8", _f(m["fafs_ari"], 3), m["fafs_ari"] >= 0.8,
                      f"{_f(m['fafs_leaves'], 1)} leaf branches; FAFS's final loss affinity cut into the planted "
                      f"number of groups: ARI {_f(m['fafs_affinity_ari'], 3)}; the same affinity measured with the "
                      f"trained independent columns (test acc {_f(m['independent_acc'])}): ARI "
                      f"{_f(m['trained_affinity_ari'], 3)}, because a degraded group does not make its attributes "
                      f"hard: P(hard) {_f(m['p_hard_degraded'], 2)} where the group is degraded vs "
                      f"{_f(m['p_hard_clean'], 2)} where it is not (the same affinity with hard = degraded: ARI "
                      f"{_f(m['visibility_affinity_ari'], 3)}). With hard = misclassified (`--affinity error`): "
                      f"ARI {_f(m['fafs_error_ari'], 3)}, its affinity cut into the planted number of groups "
                      f"{_f(m['fafs_error_affinity_ari'], 3)}"))
    if have("taskonomy_ari"):
        goals.append(("Taskonomy ARI ≥ 0.6", _f(m["taskonomy_ari"], 3), m["taskonomy_ari"] >= 0.6,
                      f"largest group of the plan: {_f(m['taskonomy_largest_group'], 1)} of 40 attributes. The "
                      "transfer affinities themselves follow the groups: a target's best other source is in its "
                      f"planted group for {_f(m['taskonomy_top1_same_group'], 2)} of targets, and clustering the "
                      f"affinity ranks gives ARI {_f(m['taskonomy_affinity_rank_ari'], 3)}. The plan assigns every "
                      "target to one of the sources it buys, maximising the summed AHP affinity, and a target's "
                      f"own source holds {_f(m['taskonomy_self_share'], 3)} of its AHP column on average; "
                      f"{_f(m['taskonomy_single_groups'], 1)} of its sources serve only themselves"))
    if have("fafs_acc", "thin_acc", "fafs_params", "full_params"):
        ok = m["fafs_acc"] >= m["thin_acc"] + 0.01 and m["fafs_params"] <= m["full_params"] / 10
        goals.append(("FAFS acc ≥ thin + 1 point at ≤ 1/10 full-width params",
                      f"{m['fafs_acc'] - m['thin_acc']:+.4f} acc, {m['fafs_params'] / m['full_params']:.4f} "
                      "of full params", ok, f"majority-class guess: test acc {_f(m['majority_acc'])}"))
    if gaps:
        gap = sum(gaps) / len(gaps)
        goals.append(("cross-stitch alpha within > across by more than the seed spread",
                      f"gap {gap:+.4f}, spread {spread:.4f}", gap > spread, f"{len(gaps)} seed(s)"))
    if have("awmt_variant_acc", "equal_variant_acc"):
        goals.append(("AWMT ≥ equal on the variant", f"{m['awmt_variant_acc'] - m['equal_variant_acc']:+.4f}",
                      m["awmt_variant_acc"] >= m["equal_variant_acc"],
                      f"AWMT's weights over the run: noisy group {_f(m['awmt_variant_weight_noisy'], 2)}, other "
                      f"attributes {_f(m['awmt_variant_weight_others'], 2)}; at the end from "
                      f"{_f(m['awmt_variant_weight_final_min'], 3)} to {_f(m['awmt_variant_weight_final_max'], 2)}"
                      f"{_k_sweep(m)}"))
    return goals


def _k_sweep(m: dict[str, Any]) -> str:
    """AWMT's variant accuracy at other update intervals k (from the awmt_variant_k job), as text."""
    by_k = m.get("awmt_variant_acc_by_k") or {}
    if not by_k:
        return ""
    runs = ", ".join(f"k={k}: {acc:.4f}" for k, acc in sorted(by_k.items(), key=lambda kv: int(kv[0])))
    return f"; updating the weights less often brings AWMT closer to equal weighting ({runs})"


def _f(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ms(summary: dict[str, Any], key: str, digits: int = 4) -> str:
    mean, std = summary["means"][key], summary["stds"][key]
    if mean is None:
        return "not run"
    if abs(mean) >= 1000:
        return f"{mean:,.0f}" + (f" ± {std:,.0f}" if std else "")
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def method_rows(s: dict[str, Any]) -> list[str]:
    """The main table: method, the paper's claim, what is measured here."""
    measured = {
        "FAFS (Lu et al., CVPR 2017)": f"ARI {_ms(s, 'fafs_ari', 3)} (its final affinity cut into the planted "
        f"number of groups: {_ms(s, 'fafs_affinity_ari', 3)}; the same loss affinity from the trained independent "
        f"columns: {_ms(s, 'trained_affinity_ari', 3)}; hard = misclassified instead: {_ms(s, 'fafs_error_ari', 3)}); "
        f"test acc FAFS {_ms(s, 'fafs_acc')} "
        f"({_ms(s, 'fafs_params')} params), thin {_ms(s, 'thin_acc')} ({_ms(s, 'thin_params')}), full width "
        f"{_ms(s, 'full_acc')} ({_ms(s, 'full_params')})",
        "Cross-stitch (Misra et al., CVPR 2016)": f"alpha within {_ms(s, 'xstitch_alpha_within')} vs across "
        f"{_ms(s, 'xstitch_alpha_across')}; test acc cross-stitch {_ms(s, 'xstitch_acc')}, shared "
        f"{_ms(s, 'shared_acc')}, independent {_ms(s, 'independent_acc')}",
        "Taskonomy (Zamir et al., CVPR 2018)": f"ARI of the plan {_ms(s, 'taskonomy_ari', 3)}; best other source "
        f"in the target's group {_ms(s, 'taskonomy_top1_same_group', 2)}; affinity ranks clustered: ARI "
        f"{_ms(s, 'taskonomy_affinity_rank_ari', 3)}",
        "AWMT (He et al., ACM MM 2017)": f"variant: AWMT {_ms(s, 'awmt_variant_acc')} vs equal "
        f"{_ms(s, 'equal_variant_acc')}; default data: AWMT {_ms(s, 'awmt_acc')} vs equal {_ms(s, 'equal_acc')}",
    }
    return ["| method | paper's claim | measured here (mean ± std over seeds) |", "|---|---|---|"] + [
        f"| {name} | {claim} | {measured[name]} |" for name, claim in CLAIMS.items()]


def weighting_rows(s: dict[str, Any]) -> list[str]:
    rows = ["| weighting | test mean acc | test mA | variant test mean acc | variant test mA |", "|---|---:|---:|---:|---:|"]
    for w in ("majority", "equal", "awmt", "uncertainty", "dwa"):
        variant = [_ms(s, f"{w}_variant_acc"), _ms(s, f"{w}_variant_mA")] if f"{w}_variant_acc" in KEYS else ["", ""]
        rows.append(f"| {w} | {_ms(s, f'{w}_acc')} | {_ms(s, f'{w}_mA')} | {' | '.join(variant)} |")
    return rows


def seed_rows(results: dict[int, dict[str, Any]]) -> list[str]:
    """Per seed and run: test accuracy, parameters, training seconds, and what each method found."""
    rows = ["| seed | run | test mean acc | test mA | params | train s | found |", "|---:|---|---:|---:|---:|---:|---|"]
    for seed, runs in results.items():
        for name, r in runs.items():
            found = r.get("error") or _found(name, r)
            rows.append(f"| {seed} | {name} | {_f(r.get('test_acc'))} | {_f(r.get('test_mA'))} | "
                        f"{r.get('params', 0):,} | {r.get('train_s', '')} | {found} |")
    return rows


def _found(name: str, r: dict[str, Any]) -> str:
    if name in ("fafs", "fafs_error"):
        rounds = ", ".join(f"stage {x['stage']}: d={x['d']}" for x in r["rounds"]) or "no widening"
        return f"ARI {r['ari']:.3f}; {rounds}; final branches {r['final_branches']}"
    if name == "taskonomy":
        return (f"ARI {r['ari']:.3f}; {len(r['groups'])} groups at budget {r['budget']} "
                f"({r.get('single_groups', '?')} of one attribute)")
    if name == "awmt_variant_k":
        return "; ".join(f"k={k}: test acc {acc:.4f}" for k, acc in r["test_acc_by_k"].items())
    if name == "xstitch":
        return f"alpha within {r['alpha_within']:.4f}, across {r['alpha_across']:.4f} ({r['columns']} columns)"
    if name == "full" and not r.get("trained"):
        return "parameters counted, not trained"
    return ""


def somp_rows(results: dict[int, dict[str, Any]]) -> list[str]:
    """SOMP against largest-norm and random filters, thinning the first seed's trained full-width vgg16."""
    seed, somp = next(((seed, r["full"]["somp"]) for seed, r in results.items() if r.get("full", {}).get("somp")),
                      (None, None))
    if somp is None:
        return []
    return ["", f"## SOMP on the trained full-width vgg16 (seed {seed})", "",
            "Relative reconstruction error min_A ||W - A W_sel|| / ||W|| per layer, thinning to vgg16-thin widths "
            "(random: mean of 5 draws).", "",
            "| stage | wide -> thin | SOMP | largest norm | random |", "|---:|---|---:|---:|---:|"] + [
        f"| {r['stage']} | {r['wide']} -> {r['thin']} | {r['somp']:.3f} | {r['norm']:.3f} | {r['random']:.3f} |"
        for r in somp]


def _load(triple: list[float]) -> str:
    return " / ".join(f"{x:.2f}" for x in triple)


def write_report(path: Path, run: dict[str, Any], summary: dict[str, Any], results: dict[int, dict[str, Any]]) -> None:
    """benchmarks/METHODS.md: the command, the machine, the claims table, the goals, the weightings, per seed."""
    b, v = run["budget"], next(iter(run["variant"].values()))
    lines = ["# Method effects on planted synthetic data", "",
             f"Made by `{run['command']}` on {run['date']} at commit {run.get('commit', 'unknown')}: seeds {run['seeds']}, {run['wall_s']} s wall on "
             f"{run['cores']} cores shared with other jobs (load average 1/5/15 min {_load(run['load_start'])} at the "
             f"start, {_load(run['load_end'])} at the end). Every run uses one torch thread; "
             "benchmarks/methods.py describes the runs, `--json` gives the numbers.", "",
             f"Data per seed s: `attrnet data synth --preset celeba --num {b['num']} --size {b['size']} "
             f"--difficulty {b['difficulty']} --seed s` (80/10/10 train/val/test); the AWMT variant adds "
             f"`--noisy-group {v['noisy_group']} --label-noise {v['label_noise']}` (that planted group's labels "
             "flipped at that rate in the training and validation splits; the test split keeps the true labels). "
             f"The VGG runs (thin, FAFS, full width) read {b['size']}-pixel images, the tiny runs "
             f"{b.get('tiny_size', b['size'])}-pixel ones.", "",
             f"Budget: `{b}`.", "", *([run["note"], ""] if run.get("note") else []),
             *method_rows(summary), "", "## Goals (issue 15)", "",
             "| goal | measured | met | measured alongside (the cause where it is not met) |", "|---|---|---|---|"]
    lines += [f"| {g} | {m} | {'yes' if ok else '**no**'} | {why} |" for g, m, ok, why in summary["goals"]]
    lines += ["", "## Loss weightings (tiny, shared trunk)", "", *weighting_rows(summary), "",
              "## Per seed", "", *seed_rows(results), *somp_rows(results), ""]
    path.write_text("\n".join(lines))
