"""One job per training run of the methods benchmark; each returns plain numbers (and runs in its own process).

A job is ``(name, spec)``; `run_job(name, spec)` calls the function registered in `JOBS`.
The spec holds the seed, the budget (as a dict), the data folders and the work folder.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

from methods_lib.common import Budget, grouping_ari, majority, planted_groups, train_and_test

__all__ = ["JOBS", "alpha_by_group", "clustered_ari", "degraded_matrix", "hard_affinity_ari", "job_names", "run_job",
           "split_groups", "trained_affinity", "transfer_affinity_groups"]


def split_groups(planted: dict[str, list[str]]) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Each planted group of two or more attributes as two columns (``hair.1``, ``hair.2``); column -> group."""
    columns: dict[str, list[str]] = {}
    owner: dict[str, str] = {}
    for group, names in planted.items():
        halves = [names] if len(names) < 2 else [names[: len(names) // 2], names[len(names) // 2:]]
        for i, half in enumerate(halves, 1):
            column = group if len(halves) == 1 else f"{group}.{i}"
            columns[column], owner[column] = list(half), group
    return columns, owner


def alpha_by_group(alphas: dict[str, Any], owner: dict[str, str]) -> dict[str, float]:
    """Mean off-diagonal α_ba over every unit, for column pairs of the same planted group and of different ones."""
    cols = alphas["columns"]
    within, across = [], []
    for unit in alphas["units"]:
        for b, row in enumerate(unit["matrix"]):
            for a, value in enumerate(row):
                if a != b:
                    (within if owner[cols[a]] == owner[cols[b]] else across).append(value)
    return {"alpha_within": sum(within) / len(within), "alpha_across": sum(across) / len(across)}


def _budget(spec: dict[str, Any]) -> Budget:
    return Budget(**spec["budget"])


def _run(spec: dict[str, Any], data_key: str = "data", **kwargs: Any) -> dict[str, Any]:
    root = spec[data_key]
    return train_and_test(f"celeba:{root}", Path(spec["out"]), seed=spec["seed"], budget=_budget(spec), **kwargs)


def _weighting(name: str, data_key: str = "data") -> Callable[[dict[str, Any]], dict[str, Any]]:
    def job(spec: dict[str, Any]) -> dict[str, Any]:
        row = _run(spec, data_key, weighting=name, awmt_k=spec["budget"]["awmt_k"] if name == "awmt" else None)
        if name != "awmt":
            return row
        noisy = planted_groups(spec[data_key])[spec["noisy_group"]] if data_key == "variant" else []
        return {**row, **awmt_weights(Path(spec["out"]) / "weights.jsonl", noisy)}
    return job


def awmt_k_sweep(spec: dict[str, Any]) -> dict[str, Any]:
    """AWMT on the variant with its weights updated 3x more and 2x less often than the budget's k."""
    k = spec["budget"]["awmt_k"]
    out, runs = Path(spec["out"]), {}
    for every in (max(2, k // 3), 2 * k):
        row = train_and_test(f"celeba:{spec['variant']}", out / f"k{every}", seed=spec["seed"], budget=_budget(spec),
                             weighting="awmt", awmt_k=every)
        runs[str(every)] = row["test_acc"]
    return {"test_acc_by_k": runs}


def awmt_weights(path: Path, noisy: list[str]) -> dict[str, float]:
    """AWMT's task weights over the run: mean weight of the `noisy` attributes and of the others, final min and max."""
    records = [json.loads(line)["weights"] for line in path.read_text().splitlines() if line.strip()]
    names = list(records[-1])
    w = np.array([[r[n] if r[n] is not None else np.nan for n in names] for r in records])
    is_noisy = np.array([n in noisy for n in names])
    out = {"weight_final_min": float(np.nanmin(w[-1])), "weight_final_max": float(np.nanmax(w[-1])),
           "weight_others": float(np.nanmean(w[:, ~is_noisy]))}
    if is_noisy.any():
        out["weight_noisy"] = float(np.nanmean(w[:, is_noisy]))
    return out


def _columns_file(spec: dict[str, Any]) -> tuple[Path, dict[str, str]]:
    columns, owner = split_groups(planted_groups(spec["data"]))
    out = Path(spec["out"])
    path = out.with_name(out.name + "-columns.json")  # one per job: jobs run in parallel
    path.write_text(json.dumps({"groups": columns}, indent=2) + "\n")
    return path, owner


def independent(spec: dict[str, Any]) -> dict[str, Any]:
    path, _ = _columns_file(spec)
    row = _run(spec, method="independent", method_options={"columns": str(path)})
    return {**row, **trained_affinity(spec["data"], Path(spec["out"]) / "best.safetensors")}


def trained_affinity(root: str, checkpoint: Path) -> dict[str, float]:
    """FAFS's loss affinity measured with a trained model on the training split, against the planted groups.

    Hard = the sample's loss is at least the task's mean loss; A(i, j) = P(both hard or both
    easy); spectral clustering into as many groups as were planted. Returns its ARI
    (``loss_affinity_ari``: how far the data's co-hard structure lets a well-trained model's
    affinity find the groups), the ARI of the same affinity with hard = "the attribute's group
    is degraded in this image" (``visibility_affinity_ari``: what the planted visibility alone
    would give), and how often a sample is hard when its group is degraded and when it is not.
    """
    from attrnet.core.imageio import decode_image, resize_to_spec
    from attrnet.core.input_spec import InputSpec
    from attrnet.data import load_index
    from attrnet.evaluate.evaluation import checkpoint_runner

    index = load_index(f"celeba:{root}")
    train, names, planted = index.subset("train"), index.schema.names, planted_groups(root)
    run, meta = checkpoint_runner(checkpoint, "cpu")
    spec = InputSpec.from_dict(meta["input"])
    images = np.stack([resize_to_spec(decode_image(p), spec) for p in train.paths])
    p = np.clip(np.concatenate([run(images[i:i + 128]) for i in range(0, len(images), 128)]), 1e-6, 1 - 1e-6)
    y = train.labels > 0.5
    loss = -np.where(y, np.log(p), np.log(1 - p))
    hard = (loss >= loss.mean(0)).astype(float)
    degraded = degraded_matrix(Path(root), [Path(q).relative_to(root).as_posix() for q in train.paths], names, planted)
    return {"loss_affinity_ari": hard_affinity_ari(hard, names, planted),
            "visibility_affinity_ari": hard_affinity_ari(degraded, names, planted),
            "p_hard_degraded": float(hard[degraded > 0].mean()), "p_hard_clean": float(hard[degraded == 0].mean())}


def degraded_matrix(root: Path, images: list[str], names: list[str], planted: dict[str, list[str]]) -> np.ndarray:
    """``[N, A]`` 1.0 where the attribute's planted group is degraded in the image (synth_visibility.csv);
    `images`: paths inside the dataset, as that file names them. A group the file has no column for
    (CelebA's ``image`` group, Blurry) is never degraded."""
    from attrnet.data.synth import VISIBILITY_FILE, read_visibility

    visibility = read_visibility(root / VISIBILITY_FILE)
    owner = {a: g for g, members in planted.items() for a in members}
    levels = [[visibility[image].get(owner[n], 1.0) for n in names] for image in images]
    return (np.array(levels) < 1.0).astype(float)


def hard_affinity_ari(hard: np.ndarray, names: list[str], planted: dict[str, list[str]]) -> float:
    """ARI against the planted groups of spectral clustering of A = P(both hard or both easy)."""
    return clustered_ari((hard.T @ hard + (1 - hard).T @ (1 - hard)) / len(hard), names, planted)


def clustered_ari(affinity: np.ndarray, names: list[str], planted: dict[str, list[str]]) -> float:
    """ARI against the planted groups of spectral clustering of `affinity` (over `names`) into as many
    groups as were planted, as FAFS clusters its branch affinity."""
    from attrnet.methods.fafs.widening import spectral_groups

    labels = spectral_groups(affinity, len(planted))
    return grouping_ari([[n for n, g in zip(names, labels) if g == k] for k in set(labels)], planted)


def cross_stitch(spec: dict[str, Any]) -> dict[str, Any]:
    path, owner = _columns_file(spec)
    row = _run(spec, method="cross-stitch", method_options={"columns": str(path), **spec.get("options", {})})
    alphas = json.loads((Path(spec["out"]) / "alphas.json").read_text())
    return {**row, **alpha_by_group(alphas, owner), "columns": len(alphas["columns"])}


def thin(spec: dict[str, Any]) -> dict[str, Any]:
    return _run(spec, arch="vgg16-thin", epochs=spec["budget"]["fafs_epochs"])


def fafs(spec: dict[str, Any]) -> dict[str, Any]:
    from attrnet.train.checkpoint import build_from_metadata, read_metadata

    b = spec["budget"]
    options = {"max_stall": b["max_stall"], "seed": spec["seed"], **spec.get("options", {})}
    row = _run(spec, arch="vgg16-thin", epochs=b["fafs_epochs"], method="fafs", method_options=options)
    out = Path(spec["out"])
    doc = json.loads((out / "fafs.json").read_text())
    last = build_from_metadata(read_metadata(out / "last.safetensors"))
    planted = planted_groups(spec["data"])
    return {**row, "ari": grouping_ari(doc["groups"], planted), "groups": doc["groups"], "leaves": len(doc["groups"]),
            "affinity_ari": affinity_ari(doc, planted),
            "rounds": [{"step": r["step"], "stage": r["stage"], "d": r["d"]} for r in doc["rounds"]],
            "final_params": last.num_parameters(), "final_branches": last.topology.branch_counts()}


def affinity_ari(doc: dict[str, Any], planted: dict[str, list[str]]) -> float:
    """ARI of spectral clustering of FAFS's final task affinity into as many groups as were planted.

    Judges the affinity alone, apart from FAFS's choice of the number of branches.
    """
    return clustered_ari(np.asarray(doc["task_affinity"]["matrix"]), doc["task_affinity"]["attributes"], planted)


def full_width(spec: dict[str, Any]) -> dict[str, Any]:
    """vgg16 (the widths FAFS thins from): trained when the budget has full epochs, else only counted."""
    epochs = spec["budget"]["full_epochs"]
    if epochs:
        row = _run(spec, arch="vgg16", epochs=epochs)
        return {**row, "trained": True, "somp": somp_report(Path(spec["out"]) / "best.safetensors", spec["seed"])}
    from attrnet.core.schema import celeba_schema
    from attrnet.core.topology import shared
    from attrnet.models.backbones import backbone
    from attrnet.models.net import MultiTaskNet

    schema = celeba_schema()
    model = MultiTaskNet(shared("vgg16", backbone("vgg16").widths, schema.names), schema)
    return {"params": model.num_parameters(), "trained": False}


def somp_report(checkpoint: Path, seed: int) -> list[dict[str, Any]]:
    """Per layer, thinning the trained vgg16 to vgg16-thin widths: relative reconstruction error of the SOMP
    selection, of the largest-norm filters and of random filters (mean of 5), inputs restricted as SOMP does."""
    from attrnet.methods.fafs.somp import read_wide_layers, reconstruction_error, restrict_inputs, select_filters
    from attrnet.models.backbones import backbone

    rng = np.random.default_rng(seed)
    rows, prev, below = [], None, 0
    for stage, (layer, width) in enumerate(zip(read_wide_layers(checkpoint), backbone("vgg16-thin").widths)):
        w = layer.weight if prev is None else restrict_inputs(layer.weight, prev, below)
        pick = select_filters(w, width)
        by_norm = list(np.argsort(-np.linalg.norm(w.reshape(w.shape[0], -1), axis=1))[:width])
        rand = [reconstruction_error(w, list(rng.choice(len(w), width, replace=False))) for _ in range(5)]
        rows.append({"stage": stage, "wide": layer.width, "thin": width, "somp": reconstruction_error(w, pick),
                     "norm": reconstruction_error(w, by_norm), "random": float(np.mean(rand))})
        prev, below = pick, layer.width
    return rows


def taskonomy(spec: dict[str, Any]) -> dict[str, Any]:
    import time

    from attrnet.methods.taskonomy import Settings, run

    b, planted = spec["budget"], planted_groups(spec["data"])
    settings = Settings(data=f"celeba:{spec['data']}", sources="all", budget=len(planted),
                        epochs=b["taskonomy_epochs"], img_size=(b["tiny_size"], b["tiny_size"]),
                        max_images=b["taskonomy_images"], max_order=1, seed=spec["seed"])
    start = time.perf_counter()
    summary = run(settings, Path(spec["out"]), lambda message: None)
    report = json.loads((Path(spec["out"]) / "taskonomy.json").read_text())
    return {"ari": grouping_ari(summary["groups"], planted), "groups": summary["groups"],
            "largest_group": max(len(members) for members in summary["groups"].values()),
            "single_groups": sum(len(members) == 1 for members in summary["groups"].values()),
            "budget": len(planted), "train_s": round(time.perf_counter() - start, 1),
            **transfer_affinity_groups(report, planted)}


def transfer_affinity_groups(report: dict[str, Any], planted: dict[str, list[str]]) -> dict[str, float]:
    """How far Taskonomy's first-order transfer affinities alone (before the budgeted plan) follow the planted
    groups: the share of targets whose best source other than themselves is in their group, and the ARI of
    spectral clustering (into the planted number of groups) of the affinity ranks, made symmetric."""
    sources, targets = [s["name"] for s in report["sources"]], report["targets"]
    owner = {a: g for g, members in planted.items() for a in members}
    first = np.asarray(report["affinity"]["matrix"])  # [sources, targets]
    best_other = [max((s for s in range(len(sources)) if sources[s] != name), key=lambda s: first[s, t])
                  for t, name in enumerate(targets)]
    same = [owner.get(sources[s]) == owner[name] for s, name in zip(best_other, targets)]
    out = {"top1_same_group": float(np.mean(same))}
    own = [first[sources.index(name), t] for t, name in enumerate(targets) if name in sources]
    if own:  # the share of each target's AHP column that its own source holds
        out["self_share"] = float(np.mean(own))
    if sources == targets:  # one source per attribute: a square affinity to cluster
        rank = np.argsort(np.argsort(-first, axis=0), axis=0).astype(float)  # 0: the target's best source
        closeness = rank.max() * 2 - (rank + rank.T)
        np.fill_diagonal(closeness, closeness.max())
        out["affinity_rank_ari"] = clustered_ari(closeness, targets, planted)
    return out


JOBS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "full": full_width,
    "fafs": fafs,
    "fafs_error": lambda spec: fafs({**spec, "options": {**spec.get("options", {}), "affinity": "error"}}),
    "thin": thin,
    "taskonomy": taskonomy,
    "xstitch": cross_stitch,
    "independent": independent,
    "shared": _weighting("equal"),
    "awmt": _weighting("awmt"),
    "uncertainty": _weighting("uncertainty"),
    "dwa": _weighting("dwa"),
    "equal_variant": _weighting("equal", "variant"),
    "awmt_variant": _weighting("awmt", "variant"),
    "awmt_variant_k": awmt_k_sweep,
    "majority": lambda spec: majority(f"celeba:{spec['data']}"),
    "majority_variant": lambda spec: majority(f"celeba:{spec['variant']}"),
}


def job_names() -> list[str]:
    """Every job, the longest first (so parallel workers finish together)."""
    return list(JOBS)


def run_job(name: str, spec: dict[str, Any]) -> dict[str, Any]:
    """Run the job `name`; its spec and result also go to OUT/result.json."""
    out = Path(spec["out"])
    out.mkdir(parents=True, exist_ok=True)
    print(f"methods: seed {spec['seed']} {name} ...", file=sys.stderr, flush=True)
    result = JOBS[name](spec)
    (out / "result.json").write_text(json.dumps({"spec": spec, "result": result}, indent=2) + "\n")
    return result
