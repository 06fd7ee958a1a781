"""Top-down widening for FAFS (Lu et al. 2017, §3.2 and §3.4): how many branches, and which.

One widening round splits one branch b of stage s into d copies. The "units"
above b (the attributes its leaf reads when s is the last stage, else the
branches of stage s+1 whose parent is b) are grouped into d groups; group g
is re-parented to copy g (`attrnet.core.topology.split_topology`), and every
copy starts as an exact copy of b (`attrnet.models.surgery.widen_model`), so
the widened network computes exactly what the old one did. This module
chooses d and the groups.

The number of groups d minimises

    L(g_d) = (d - 1) · L0 · 2^{p_l} + α · L_s(g_d),
    L_s(g_d) = (1/d) Σ_g [1 - mean_{k in g} min_{l in g} A_b(k, l)]

where p_l counts the pooling layers between stage s's input and the heads
(so branching a layer costs in proportion to its feature-map size, as the
authors' ``col_costs`` do), and each grouping g_d is the best of several
spectral clusterings of A_b (precomputed affinity).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from attrnet.core.topology import Topology, canonical
from attrnet.models.backbones import backbone

__all__ = ["branch_cost", "choose_partition", "DEFAULT_ALPHA", "DEFAULT_BRANCH_COST", "DEFAULT_RESTARTS", "kmeans",
           "Partition", "pool_exponent", "separation_loss", "spectral_embedding", "spectral_groups"]

# Defaults from the authors' released code (github.com/luyongxi/deep_share):
DEFAULT_BRANCH_COST = 1.0 / 64   # lib/models/factory.py: col_costs = 2^p / 64 (fc layers 1/64)
DEFAULT_ALPHA = 1.0              # tools/train_cls.py: --split_thresh default 1.0
DEFAULT_RESTARTS = 5             # lib/utils/config.py: TRAIN.CLUSTER_REP = 5


# ---------------------------------------------------------------- cost

def pool_exponent(topology: Topology, stage: int) -> int:
    """p_l: pooling (downsampling) layers between stage `stage`'s input and the heads."""
    return backbone(topology.arch).pools_from(stage)


def branch_cost(topology: Topology, stage: int, unit_cost: float = DEFAULT_BRANCH_COST) -> float:
    """Cost of one extra branch at `stage`: L0 · 2^{p_l}."""
    return unit_cost * 2.0 ** pool_exponent(topology, stage)


def separation_loss(ab: np.ndarray, labels: Sequence[int]) -> float:
    """L_s(g_d) = (1/d) Σ_g [1 - mean_{k in g} min_{l in g} A_b(k, l)]."""
    labels = np.asarray(labels)
    groups = np.unique(labels)
    total = 0.0
    for g in groups:
        idx = np.flatnonzero(labels == g)
        total += 1.0 - ab[np.ix_(idx, idx)].min(axis=1).mean()
    return total / len(groups)


@dataclass
class Partition:
    """The chosen grouping of units and the cost of every candidate d."""

    labels: list[int]
    losses: dict[int, float] = field(default_factory=dict)
    separation: dict[int, float] = field(default_factory=dict)

    @property
    def d(self) -> int:
        return len(set(self.labels))


def spectral_embedding(ab: np.ndarray, components: int, seed: int = 0) -> np.ndarray:
    """The spectral embedding `SpectralClustering(affinity="precomputed")` clusters: ``[n, components]``."""
    from sklearn.manifold import spectral_embedding as embed

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "graph is not fully connected" on near-block matrices
        return embed(ab, n_components=components, drop_first=False, random_state=seed)


def kmeans(points: np.ndarray, d: int, seed: int, n_init: int = 10, max_iter: int = 100) -> np.ndarray:
    """Labels of the lowest-inertia of `n_init` k-means++ / Lloyd runs (vectorised numpy; the
    points are a few dozen branches, where library k-means is dominated by call overhead)."""
    rng = np.random.default_rng(seed)
    n = len(points)
    best, best_inertia = np.arange(n) % d, np.inf
    for _ in range(n_init):
        centres = [points[rng.integers(n)]]
        d2 = ((points - centres[0]) ** 2).sum(1)
        for _ in range(1, d):
            total = d2.sum()
            pick = rng.choice(n, p=d2 / total) if total > 0 else rng.integers(n)
            centres.append(points[pick])
            d2 = np.minimum(d2, ((points - points[pick]) ** 2).sum(1))
        c = np.array(centres)
        for _ in range(max_iter):
            dist = ((points[:, None, :] - c[None]) ** 2).sum(-1)
            labels = dist.argmin(1)
            counts = np.bincount(labels, minlength=d)
            sums = np.zeros_like(c)
            np.add.at(sums, labels, points)
            new = np.where(counts[:, None] > 0, sums / np.maximum(counts, 1)[:, None], c)
            if np.allclose(new, c):
                break
            c = new
        inertia = float(dist.min(1).sum())
        if len(np.unique(labels)) == d and inertia < best_inertia:
            best, best_inertia = labels, inertia
    return best


def spectral_groups(ab: np.ndarray, d: int, restarts: int = DEFAULT_RESTARTS, seed: int = 0,
                    embedding: np.ndarray | None = None) -> list[int]:
    """The lowest-separation-loss grouping into d groups among `restarts` spectral clusterings
    (spectral embedding of the precomputed affinity, then k-means with 10 inits, as
    `sklearn.cluster.SpectralClustering` does; `embedding` may be computed once for several d)."""
    n = ab.shape[0]
    if d == 1:
        return [0] * n
    if d >= n:
        return list(range(n))
    maps = (spectral_embedding(ab, d, seed) if embedding is None else embedding)[:, :d]
    best, best_loss = None, np.inf
    for r in range(max(1, restarts)):
        labels = kmeans(maps, d, seed + r)
        loss = separation_loss(ab, labels)
        if loss < best_loss - 1e-12:
            best, best_loss = labels, loss
    return canonical(best.tolist())


def choose_partition(ab: np.ndarray, cost: float, alpha: float = DEFAULT_ALPHA, max_groups: int | None = None,
                     restarts: int = DEFAULT_RESTARTS, seed: int = 0) -> Partition:
    """Group the units of branch affinity `ab` minimising (d-1)·cost + α·L_s over d = 1..max_groups.

    Ties go to the smaller d.
    """
    ab = np.asarray(ab, dtype=np.float64)
    if ab.ndim != 2 or ab.shape[0] != ab.shape[1] or ab.shape[0] == 0:
        raise ValueError(f"branch affinity must be a non-empty square matrix, got shape {ab.shape}")
    n = ab.shape[0]
    top = n if max_groups is None else max(1, min(n, int(max_groups)))
    part = Partition(labels=[0] * n)
    best = np.inf
    embedding = spectral_embedding(ab, min(top, n - 1), seed) if top >= 2 and n > 2 else None
    for d in range(1, top + 1):
        labels = spectral_groups(ab, d, restarts, seed, embedding)
        sep = separation_loss(ab, labels)
        loss = (d - 1) * cost + alpha * sep
        part.losses[d], part.separation[d] = loss, sep
        if loss < best - 1e-12:
            best, part.labels = loss, labels
    return part
