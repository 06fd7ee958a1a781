"""Taskonomy (Zamir et al., CVPR 2018) adapted to attributes: affinities, the BIP, the plan.

Sources are attributes or attribute groups, targets are attributes. Given
held-out per-sample losses of every transfer (a frozen source encoder, or a
pair of them, with a small readout for the target):

- `tournament`: W[i, j] = fraction of held-out images where transfer i's loss
  is lower than transfer j's (ties count half, so W + Wᵀ = 1);
- `ahp_affinity`: W' = W / Wᵀ with W clipped to [0.001, 0.999], affinity =
  principal eigenvector of W', normalised to sum 1 per target;
- `solve_plan`: the binary integer program (scipy.optimize.milp): (1) a chosen
  transfer requires its sources (and its target) in the subgraph; (2) every
  target gets exactly one transfer (from scratch = the self-transfer from the
  source that is the target itself); (3) the supervision cost of the chosen
  sources is within the budget; maximise the summed affinity;
- `plan_topology`: targets with the same chosen source set form one group;
  a shared trunk up to the split stage, then one branch per group.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from attrnet.core.errors import AttrnetError
from attrnet.core.topology import Topology, split

__all__ = ["ahp_affinity", "brute_force_plan", "budgets_up_to", "CLIP", "Plan", "plan_groups", "plan_topology",
           "solve_budgets", "solve_plan", "TOP_K", "top_pairs", "tournament", "Transfer"]

CLIP = (0.001, 0.999)
TOP_K = 5
# A tiny price per unit of supervision: among plans of equal affinity, pick the one
# that uses fewer sources (so "chosen sources" are exactly the ones transferred from).
_SOURCE_EPS = 1e-6


@dataclass(frozen=True)
class Transfer:
    """Sources (indices) -> target (index), with its affinity."""

    sources: tuple[int, ...]
    target: int
    affinity: float


@dataclass
class Plan:
    budget: float
    objective: float
    chosen_sources: list[int]
    assignment: dict[int, tuple[int, ...]] = field(default_factory=dict)  # target -> sources


def tournament(losses: np.ndarray) -> np.ndarray:
    """``[M, N]`` per-sample losses of M transfers -> ``[M, M]`` W, W[i, j] = P(L_i < L_j) + P(tie)/2.

    Samples where any transfer's loss is NaN (missing label) are ignored.
    """
    losses = np.asarray(losses, dtype=np.float64)
    keep = ~np.isnan(losses).any(0)
    x = losses[:, keep]
    if x.shape[1] == 0:
        return np.full((losses.shape[0],) * 2, 0.5)
    lt = (x[:, None, :] < x[None, :, :]).mean(-1)
    eq = (x[:, None, :] == x[None, :, :]).mean(-1)
    return lt + 0.5 * eq


def ahp_affinity(w: np.ndarray, clip: tuple[float, float] = CLIP) -> np.ndarray:
    """Principal eigenvector of W' = W / Wᵀ (W clipped), non-negative and summing to 1."""
    w = np.clip(np.asarray(w, dtype=np.float64), *clip)
    ratio = w / w.T
    np.fill_diagonal(ratio, 1.0)
    vals, vecs = np.linalg.eig(ratio)
    v = np.abs(np.real(vecs[:, int(np.argmax(np.real(vals)))]))
    total = v.sum()
    return v / total if total > 0 else np.full(len(v), 1.0 / len(v))


def top_pairs(first_order: np.ndarray, target: int, k: int = TOP_K) -> list[tuple[int, int]]:
    """Pairs among the target's top-k first-order sources (`first_order` is ``[S, T]``)."""
    best = np.argsort(-first_order[:, target], kind="stable")[:k]
    return [tuple(sorted((int(a), int(b)))) for a, b in itertools.combinations(best, 2)]  # type: ignore[misc]


def solve_plan(num_sources: int, num_targets: int, transfers: Sequence[Transfer],
               budget: float, costs: Sequence[float] | None = None) -> Plan:
    """The BIP over sources x_s and transfers y_e, solved with scipy.optimize.milp."""
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import coo_matrix

    costs = np.ones(num_sources) if costs is None else np.asarray(costs, dtype=np.float64)
    s, e = num_sources, len(transfers)
    c = np.concatenate([_SOURCE_EPS * costs, -np.array([t.affinity for t in transfers], dtype=np.float64)])
    rows, cols, vals = [], [], []
    r = 0
    for j, t in enumerate(transfers):  # (1) y_e - x_s <= 0 for each source of e
        for src in t.sources:
            rows += [r, r]
            cols += [s + j, src]
            vals += [1.0, -1.0]
            r += 1
    n_req = r
    for tgt in range(num_targets):  # (2) sum of y_e into the target == 1
        for j, t in enumerate(transfers):
            if t.target == tgt:
                rows.append(r)
                cols.append(s + j)
                vals.append(1.0)
        r += 1
    rows += [r] * s  # (3) supervision cost within budget
    cols += list(range(s))
    vals += list(costs)
    r += 1
    a = coo_matrix((vals, (rows, cols)), shape=(r, s + e)).tocsr()
    lower = np.concatenate([np.full(n_req, -np.inf), np.ones(num_targets), [-np.inf]])
    upper = np.concatenate([np.zeros(n_req), np.ones(num_targets), [float(budget)]])
    res = milp(c, constraints=LinearConstraint(a, lower, upper), integrality=np.ones(s + e),
               bounds=Bounds(0, 1))
    if res.status != 0 or res.x is None:
        raise AttrnetError(f"no transfer plan fits budget {budget:g} ({res.message})")
    z = np.round(res.x).astype(int)
    chosen = [int(i) for i in np.flatnonzero(z[:s])]
    assignment = {t.target: t.sources for j, t in enumerate(transfers) if z[s + j]}
    objective = float(sum(t.affinity for j, t in enumerate(transfers) if z[s + j]))
    return Plan(float(budget), objective, chosen, dict(sorted(assignment.items())))


def brute_force_plan(num_sources: int, num_targets: int, transfers: Sequence[Transfer],
                     budget: float, costs: Sequence[float] | None = None) -> float:
    """Best summed affinity by enumerating every source subset within budget (-inf if none fits)."""
    costs = np.ones(num_sources) if costs is None else np.asarray(costs, dtype=np.float64)
    best = -np.inf
    for n in range(num_sources + 1):
        for subset in itertools.combinations(range(num_sources), n):
            if costs[list(subset)].sum() > budget + 1e-9:
                continue
            have = set(subset)
            total = 0.0
            for tgt in range(num_targets):
                options = [t.affinity for t in transfers if t.target == tgt and set(t.sources) <= have]
                if not options:
                    total = -np.inf
                    break
                total += max(options)
            best = max(best, total)
    return best


def plan_groups(plan: Plan, source_names: Sequence[str], target_names: Sequence[str]) -> dict[str, list[str]]:
    """Targets with the same chosen source set form one group (named after the sources), in target order."""
    groups: dict[str, list[str]] = {}
    for tgt in range(len(target_names)):
        key = "+".join(source_names[s] for s in plan.assignment[tgt])
        groups.setdefault(key, []).append(target_names[tgt])
    return groups


def plan_topology(arch: str, widths: Sequence[int], groups: dict[str, list[str]], split_stage: int) -> Topology:
    """Shared trunk for stages < `split_stage`, then one branch per group."""
    return split(arch, widths, groups, split_stage)


def budgets_up_to(budget: float, costs: Sequence[float]) -> list[float]:
    """Every integer budget from the cheapest source's cost up to `budget` (and `budget` itself)."""
    lo = int(np.ceil(min(costs)))
    return sorted({float(b) for b in range(max(lo, 1), int(np.floor(budget)) + 1)} | {float(budget)})


def solve_budgets(transfers: Sequence[Transfer], names: Sequence[str], targets: Sequence[str],
                  costs: Sequence[float], budget: float) -> list[dict[str, Any]]:
    """The BIP for every budget up to `budget`: chosen sources, assignments and groups (or the error)."""
    plans: list[dict[str, Any]] = []
    for b in budgets_up_to(budget, costs):
        try:
            plan = solve_plan(len(names), len(targets), transfers, b, costs)
        except AttrnetError as exc:
            plans.append({"budget": b, "error": str(exc)})
            continue
        plans.append({
            "budget": b,
            "objective": plan.objective,
            "chosen_sources": [names[s] for s in plan.chosen_sources],
            "cost": float(sum(costs[s] for s in plan.chosen_sources)),
            "assignments": {targets[t]: [names[s] for s in srcs] for t, srcs in plan.assignment.items()},
            "groups": plan_groups(plan, names, targets),
        })
    return plans
