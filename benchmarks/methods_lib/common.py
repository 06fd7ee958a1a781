"""Shared pieces of the methods benchmark: budgets, planted data, one train-and-test run, ARI, mean ± std."""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["Budget", "BUDGETS", "ari", "grouping_ari", "majority",
           "make_data", "mean_std", "planted_groups", "train_and_test"]


@dataclass(frozen=True)
class Budget:
    """Data sizes and training lengths of one benchmark mode (`--quick` or the full run)."""

    num: int                 # synthetic images (80/10/10 train/val/test)
    size: int                # image side written (pixels): the VGG runs' input (thin, FAFS, full width)
    tiny_size: int           # input side of the tiny runs (images resized on load)
    difficulty: str          # synth --difficulty
    epochs: int              # tiny runs: shared, independent, cross-stitch, weightings
    fafs_epochs: int         # vgg16-thin runs: thin and FAFS
    max_stall: int           # FAFS: widen every this many steps
    full_epochs: int         # full-width vgg16 (0: parameters computed, not trained)
    taskonomy_epochs: int
    taskonomy_images: int
    awmt_k: int              # AWMT: weights updated every k validation batches (about a sixth of the run's steps)
    lr: float = 3e-3
    batch_size: int = 32


BUDGETS: dict[str, Budget] = {
    "quick": Budget(num=1200, size=64, tiny_size=32, difficulty="easy", epochs=6, fafs_epochs=6, max_stall=50,
                    full_epochs=0, taskonomy_epochs=3, taskonomy_images=640, awmt_k=30),
    "full": Budget(num=1500, size=64, tiny_size=32, difficulty="easy", epochs=8, fafs_epochs=8, max_stall=60,
                   full_epochs=1, taskonomy_epochs=3, taskonomy_images=1000, awmt_k=50),
}


def _contingency_pairs(counts: np.ndarray) -> float:
    return float((counts * (counts - 1) / 2).sum())


def ari(truth: Sequence[Any], found: Sequence[Any]) -> float:
    """Adjusted Rand index (Hubert and Arabie) of two labellings of the same items."""
    if len(truth) != len(found):
        raise ValueError("ari: labellings of different lengths")
    _, t = np.unique(np.asarray(truth, dtype=str), return_inverse=True)
    _, f = np.unique(np.asarray(found, dtype=str), return_inverse=True)
    table = np.zeros((t.max() + 1, f.max() + 1))
    np.add.at(table, (t, f), 1)
    index = _contingency_pairs(table)
    rows, cols = _contingency_pairs(table.sum(1)), _contingency_pairs(table.sum(0))
    total = _contingency_pairs(np.array([len(t)]))
    expected = rows * cols / total if total else 0.0
    top = (rows + cols) / 2
    return 1.0 if top == expected else (index - expected) / (top - expected)


def grouping_ari(groups: dict[str, list[str]] | list[list[str]], planted: dict[str, list[str]]) -> float:
    """ARI of a grouping of attributes against the planted groups (attributes the grouping leaves out: singletons)."""
    members = groups.values() if isinstance(groups, dict) else groups
    found = {a: str(g) for g, names in enumerate(members) for a in names}
    names = sorted(a for names in planted.values() for a in names)
    truth = {a: g for g, names in planted.items() for a in names}
    return ari([truth[a] for a in names], [found.get(a, "single:" + a) for a in names])


def planted_groups(root: str | Path) -> dict[str, list[str]]:
    """The planted groups of a synthetic dataset (its synth_groups.json)."""
    from attrnet.core.schema import read_groups
    from attrnet.data.synth import GROUPS_FILE

    return read_groups(Path(root) / GROUPS_FILE)


def make_data(root: Path, seed: int, budget: Budget, **variant: Any) -> dict[str, Any]:
    """Synthetic CelebA-format data at `root` at the budget's size and difficulty; returns the settings used.

    `variant`: more `attrnet.data.synth.generate` options (``noisy_group``, ``label_noise``).
    """
    from attrnet.data.synth import generate

    generate("celeba", root, num=budget.num, seed=seed, size=(budget.size, budget.size),
             difficulty=budget.difficulty, **variant)
    return {"num": budget.num, "size": budget.size, "seed": seed, "difficulty": budget.difficulty, **variant}


def majority(data: str) -> dict[str, float]:
    """Test mean accuracy and mA of always answering each attribute's most frequent training label."""
    from attrnet.data import load_index
    from attrnet.train.metrics import compute_metrics

    index = load_index(data)
    train, test = index.subset("train"), index.subset("test")
    prior = np.nan_to_num(np.nanmean(train.labels, 0))
    m = compute_metrics(np.tile(prior, (len(test), 1)), test.labels, index.schema)
    return {"test_acc": m["mean_accuracy"], "test_mA": m["mA"]}


def train_and_test(data: str, out: Path, *, seed: int, budget: Budget, arch: str = "tiny", epochs: int | None = None,
                   method: str = "shared", weighting: str = "equal", **options: Any) -> dict[str, Any]:
    """Train one run (1 torch thread, no workers), evaluate its best checkpoint on the test split."""
    from attrnet.evaluate import evaluate
    from attrnet.methods import train
    from attrnet.train.checkpoint import load_model
    from attrnet.train.config import TrainConfig

    cfg = TrainConfig.from_options(data, str(out), arch=arch, method=method, weighting=weighting,
                                   epochs=epochs or budget.epochs, batch_size=budget.batch_size, lr=budget.lr,
                                   img_size=_input_size(arch, budget), seed=seed, workers=0, threads=1,
                                   log_every=10**6, **options)
    start = time.perf_counter()
    train(cfg)
    wall = time.perf_counter() - start
    test = evaluate(out / "best.safetensors", data, "test", device="cpu")
    model, _ = load_model(out / "best.safetensors")
    return {"test_acc": test["mean_accuracy"], "test_mA": test["mA"], "params": model.num_parameters(),
            "branches": model.topology.branch_counts(), "train_s": round(wall, 1),
            "config": {k: v for k, v in cfg.to_dict().items() if k not in ("data", "out")}}


def _input_size(arch: str, budget: Budget) -> tuple[int, int]:
    """VGG-16 pools five times: at 32 pixels its thin start barely beats the majority guess, at 64 it learns."""
    side = budget.tiny_size if arch == "tiny" else budget.size
    return side, side


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for one value)."""
    values = [float(v) for v in values]
    return statistics.mean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)
