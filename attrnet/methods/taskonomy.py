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
from typing import Any, Callable, Sequence

import numpy as np

from attrnet.errors import AttrnetError
from attrnet.models.topology import Topology, split

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


# ---------------------------------------------------------------- the whole analysis

@dataclass
class Settings:
    """What `attrnet taskonomy` runs with."""

    data: str
    sources: str = "all"
    budget: float = 4
    epochs: int = 2
    split_stage: int = 2
    arch: str = "tiny"
    encoder_arch: str = "tiny"
    img_size: tuple[int, int] = (64, 64)
    max_images: int | None = None
    source_cost: str = "unit"
    max_order: int = 2
    batch_size: int = 32
    lr: float = 2e-3
    seed: int = 0


def measure_transfers(f_tr, y_tr, f_te, y_te, schema, max_order: int = 2,
                      chunk: int = 8) -> tuple[np.ndarray, list[Transfer]]:
    """First-order affinities ``[S, T]`` and every candidate transfer with its final affinity.

    `f_*`: frozen features ``[N, S, D]`` of the S sources; `y_*`: labels over
    the schema's columns. Per target: readouts for each source, then (order 2)
    for each pair among its top five sources; one tournament over all of them.
    """
    import torch

    from attrnet.methods import taskonomy_transfer as tt

    s_count = f_tr.shape[1]
    attrs = list(schema.attributes)
    binary = [t for t, a in enumerate(attrs) if a.kind == "binary"]
    bcols = [schema.slices[t].start for t in binary]
    losses: dict[int, np.ndarray] = {}
    if binary:
        lb = tt.binary_readout_losses(f_tr, y_tr[:, bcols], f_te, y_te[:, bcols])
        losses.update({t: lb[i] for i, t in enumerate(binary)})
    for t, a in enumerate(attrs):
        if a.kind != "binary":
            sl = schema.slices[t]
            losses[t] = tt.softmax_readout_losses(f_tr, y_tr[:, sl], f_te, y_te[:, sl])
    first = np.zeros((s_count, len(attrs)))
    for t in range(len(attrs)):
        first[:, t] = ahp_affinity(tournament(losses[t]))
    candidates = {t: [(s,) for s in range(s_count)] for t in range(len(attrs))}
    if max_order >= 2 and s_count >= 2:
        pairs = {t: top_pairs(first, t) for t in range(len(attrs))}

        def gather(f: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:  # idx [..., 2] -> [N, ..., 2D]
            return torch.cat([f[:, idx[..., 0]], f[:, idx[..., 1]]], dim=-1)

        for i in range(0, len(binary), chunk):
            part = binary[i:i + chunk]
            idx = torch.tensor([pairs[t] for t in part])  # [g, P, 2]
            cols = bcols[i:i + chunk]
            lp = tt.binary_readout_losses(gather(f_tr, idx), y_tr[:, cols], gather(f_te, idx), y_te[:, cols])
            for j, t in enumerate(part):
                losses[t] = np.concatenate([losses[t], lp[j]])
        for t, a in enumerate(attrs):
            if a.kind != "binary":
                idx, sl = torch.tensor(pairs[t]), schema.slices[t]
                lp = tt.softmax_readout_losses(gather(f_tr, idx), y_tr[:, sl], gather(f_te, idx), y_te[:, sl])
                losses[t] = np.concatenate([losses[t], lp])
        for t in range(len(attrs)):
            candidates[t] += pairs[t]
    transfers = []
    for t in range(len(attrs)):
        aff = ahp_affinity(tournament(losses[t]))
        transfers += [Transfer(tuple(c), t, float(v)) for c, v in zip(candidates[t], aff)]
    return first, transfers


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


def analyse(cfg: Settings, progress: Callable[[str], None] | None = None) -> tuple[dict[str, Any], Topology]:
    """Train source encoders, measure transfers, solve the BIP per budget; the report and the plan."""
    import torch

    from attrnet.data import load_index
    from attrnet.errors import InputError
    from attrnet.input_spec import InputSpec
    from attrnet.methods import taskonomy_transfer as tt
    from attrnet.models.backbones import backbone

    say = progress or (lambda _msg: None)
    torch.manual_seed(cfg.seed)
    widths = backbone(cfg.arch).widths
    if not 0 <= cfg.split_stage < len(widths):
        raise InputError(f"--split-stage must lie in 0..{len(widths) - 1} for {cfg.arch}, got {cfg.split_stage}")
    if cfg.max_order not in (1, 2):
        raise InputError(f"--max-order takes 1 or 2, got {cfg.max_order}")
    index = load_index(cfg.data)
    schema = index.schema
    sources = tt.make_sources(cfg.sources, schema, cfg.source_cost)
    if cfg.budget < min(s.cost for s in sources):
        raise InputError(f"--budget {cfg.budget:g} buys no source (the cheapest costs {min(s.cost for s in sources):g})")
    h, w = cfg.img_size
    spec = InputSpec(h, w)
    counts = index.counts()
    if counts["train"] < 4:
        raise InputError(f"taskonomy needs training images; {cfg.data} has {counts['train']}")
    x_tr, y_tr = tt.load_images(index, "train", spec, cfg.max_images, cfg.seed)
    if counts["val"] >= 2:
        held = cfg.max_images if cfg.max_images is None else max(2, cfg.max_images // 2)
        x_te, y_te = tt.load_images(index, "val", spec, held, cfg.seed)
    else:  # no validation split: hold out a third of the training images
        cut = max(2, len(x_tr) // 3)
        x_te, y_te, x_tr, y_tr = x_tr[:cut], y_tr[:cut], x_tr[cut:], y_tr[cut:]
    device = "cuda" if torch.cuda.is_available() else "cpu"

    model = tt.encoder_model(cfg.encoder_arch, sources, schema)
    say(f"training {len(sources)} source encoders ({cfg.encoder_arch}, {model.num_parameters():,} parameters) "
        f"on {len(x_tr)} images for {cfg.epochs} epoch(s)")
    tt.train_encoders(model, x_tr, tt.column_labels(y_tr, schema, model.schema), spec, cfg.epochs,
                      cfg.batch_size, cfg.lr, cfg.seed, device, say)
    f_tr = tt.features(model, x_tr, spec, device=device)
    f_te = tt.features(model, x_te, spec, device=device)
    say(f"fitting readouts for {len(schema.names)} targets on {len(x_tr)} images, tournament on {len(x_te)}")

    targets = schema.names
    first, transfers = measure_transfers(f_tr, y_tr, f_te, y_te, schema, cfg.max_order)

    names = [s.name for s in sources]
    plans = solve_budgets(transfers, names, targets, [s.cost for s in sources], cfg.budget)
    chosen = [p for p in plans if "groups" in p]
    if not chosen:
        raise AttrnetError(f"no transfer plan fits budget {cfg.budget:g}")
    chosen_plan = (chosen[-1]["budget"], chosen[-1]["groups"])
    topology = plan_topology(cfg.arch, widths, chosen_plan[1], cfg.split_stage)
    report = {
        "format": "attrnet.taskonomy",
        "version": 1,
        "data": cfg.data,
        "sources": [{"name": s.name, "attributes": list(s.attributes), "cost": s.cost} for s in sources],
        "targets": targets,
        "affinity": {"rows": "sources", "columns": "targets", "order": 1, "matrix": first.round(6).tolist()},
        "transfers": {
            targets[t]: sorted(({"sources": [names[s] for s in tr.sources], "affinity": round(tr.affinity, 6),
                                 "self": tr.sources == (names.index(targets[t]),) if targets[t] in names else False}
                                for tr in transfers if tr.target == t), key=lambda d: -d["affinity"])
            for t in range(len(targets))
        },
        "plans": plans,
        "plan": {"budget": chosen_plan[0], "groups": chosen_plan[1], "split_stage": cfg.split_stage,
                 "arch": cfg.arch},
        "encoders": {"arch": cfg.encoder_arch, "epochs": cfg.epochs, "train_images": len(x_tr),
                     "held_out_images": len(x_te), "img_size": [h, w], "max_order": cfg.max_order},
    }
    return report, topology

