"""Fold a trained `MultiTaskNet` into a `FoldedNet`: the maths of folding, and the choices it reports.

What folding does (docs/architecture.md, Folding; docs/export.md, What folding does):

- BatchNorm is folded into the conv before it.
- Every stage of the branch tree becomes one op over all its branches, in one
  of three equivalent forms: ``grouped`` (channel gather, one conv group per
  branch), ``parent`` (one group per parent, no gather; siblings contiguous,
  equal fan-out) or ``dense`` (one conv with a block-sparse weight); the
  fastest on the stage's real input shape is kept.
- A first fully connected stage absorbs the adaptive average pool (a fixed
  linear map at the export size) into its weight.
- A cross-stitch unit is linear: it is folded into the next stage's weights
  (which then read every column) or kept, whichever costs fewer FLOPs.
- All heads become one matmul producing ``[N, C]``, then the output activations.
- Input is uint8 ``[N, H, W, 3]`` RGB, normalised inside the module.

`fold_model(model, spec)` returns the module and a `FoldReport` of the choices.
The modules are in `attrnet.export.runtime`, FLOP counts and timing in
`attrnet.export.cost`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import nn
import torch.nn.functional as F

from attrnet.core.errors import InputError
from attrnet.core.input_spec import InputSpec
from attrnet.core.model_card import output_runs
from attrnet.export.cost import count_flops, fastest, fold_extra_flops, spatial_size
from attrnet.export.runtime import BranchConv, ConvStage, FoldedNet, MixConv, MixMatmul, ResidualStage, StemStage
from attrnet.models import layers
from attrnet.models.net import MultiTaskNet

__all__ = ["FoldReport", "MixChoice", "MixRule", "ModeRule", "StageChoice", "fold_bn", "fold_model"]

ConvMode = Literal["grouped", "parent", "dense"]
ModeRule = Literal["measure", "flops", "grouped", "dense"]
MixRule = Literal["flops", "fold", "keep"]


# ---------------------------------------------------------------- report

@dataclass
class StageChoice:
    stage: int
    kind: str
    branches: int
    mode: str
    candidates_ms: dict[str, float] = field(default_factory=dict)
    flops: int = 0


@dataclass
class MixChoice:
    after_stage: int
    mode: str  # "fold" (into the next stage) | "conv1x1" | "matmul"
    fold_extra_flops: int  # -1: nothing to fold into (a residual block follows)
    keep_flops: int  # FLOPs of the kept unit in its chosen form
    candidates_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class FoldReport:
    stages: list[StageChoice]
    mixes: list[MixChoice]

    def to_dict(self) -> dict[str, Any]:
        return {"stages": [asdict(s) for s in self.stages], "mixes": [asdict(m) for m in self.mixes]}

    def summary(self) -> str:
        """One line per stage and mix unit, for people."""
        lines = []
        for s in self.stages:
            cand = ", ".join(f"{k} {v:.3f} ms" for k, v in s.candidates_ms.items())
            lines.append(f"stage {s.stage:2d} {s.kind:10s} {s.branches} branch(es): {s.mode}"
                         + (f" ({cand})" if cand else ""))
        for m in self.mixes:
            cand = "".join(f", {k} {v:.3f} ms" for k, v in m.candidates_ms.items())
            fold = "cannot fold" if m.fold_extra_flops < 0 else f"folding adds {m.fold_extra_flops} FLOPs"
            lines.append(f"cross-stitch after stage {m.after_stage}: {m.mode} "
                         f"({fold}, keeping costs {m.keep_flops}{cand})")
        return "\n".join(lines)


# ---------------------------------------------------------------- helpers

def fold_bn(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Conv weight/bias with the BatchNorm after it folded in (eval statistics)."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    b = bias if bias is not None else torch.zeros_like(bn.running_mean)
    return weight * scale.reshape(-1, 1, 1, 1), (b - bn.running_mean) * scale + bn.bias


def _stage_inputs(model: MultiTaskNet, spec: InputSpec) -> list[tuple[int, ...]]:
    """Shape (without batch) of each stage's input before its gather, and of the features."""
    counts = model.topology.branch_counts()
    x = torch.zeros(1, 3, spec.height, spec.width)
    shapes = [tuple(x.shape[1:])]
    with torch.no_grad():
        for s, stage in enumerate(model.stages):
            if s > 0:
                idx = getattr(model, f"gather{s}", None)
                if idx is not None:
                    x = layers.gather_branches(x, counts[s - 1], idx)
            x = stage(x)
            shapes.append(tuple(x.shape[1:]))
    return shapes


def _pool_matrix(h: int, w: int, out: int) -> torch.Tensor:
    """The adaptive average pool ``h x w -> out x out`` as a matrix ``[out*out, h*w]``."""
    eye = torch.eye(h * w).reshape(h * w, 1, h, w)
    return F.adaptive_avg_pool2d(eye, out).reshape(h * w, out * out).t()


Blocks = dict[int, torch.Tensor]  # input branch -> weight block [cout, cin, k, k]


def _channel_index(branches: list[int], width: int) -> torch.Tensor:
    return torch.tensor([b * width + c for b in branches for c in range(width)], dtype=torch.long)


def _candidates(blocks: list[Blocks], n_in: int) -> list[ConvMode]:
    single = all(len(bl) == 1 for bl in blocks)
    out: list[ConvMode] = []
    if single:
        out.append("grouped")
        parents = [next(iter(bl)) for bl in blocks]
        counts = [parents.count(p) for p in range(n_in)]
        if n_in > 1 and parents == sorted(parents) and len(set(counts)) == 1 and counts[0] > 0 \
                and parents != list(range(n_in)):
            out.append("parent")
    if len(blocks) > 1 or n_in > 1:
        out.append("dense")
    return out or ["grouped"]


def _build_conv(mode: ConvMode, blocks: list[Blocks], bias: torch.Tensor | None, n_in: int, cin: int,
                stride: int, padding: int) -> BranchConv:
    """One BranchConv computing, for every output branch b, sum_a conv(x_a, blocks[b][a])."""
    cout, _, kh, kw = next(iter(blocks[0].values())).shape
    nb = len(blocks)
    if mode == "grouped":
        parents = [next(iter(bl)) for bl in blocks]
        weight = torch.cat([next(iter(bl.values())) for bl in blocks], 0)
        gather = None if parents == list(range(n_in)) else _channel_index(parents, cin)
        return BranchConv(weight, bias, stride, padding, nb, gather)
    if mode == "parent":
        weight = torch.cat([next(iter(bl.values())) for bl in blocks], 0)
        return BranchConv(weight, bias, stride, padding, n_in, None)
    weight = torch.zeros(nb * cout, n_in * cin, kh, kw)
    for b, bl in enumerate(blocks):
        for a, w in bl.items():
            weight[b * cout:(b + 1) * cout, a * cin:(a + 1) * cin] = w
    return BranchConv(weight, bias, stride, padding, 1, None)


def _choose(rule: ModeRule, blocks: list[Blocks], bias: torch.Tensor | None, n_in: int, cin: int,
            stride: int, padding: int, in_shape: tuple[int, ...], batch: int,
            forced: ConvMode | None = None) -> tuple[BranchConv, str, dict[str, float]]:
    cands = [forced] if forced else _candidates(blocks, n_in)
    if rule in ("grouped", "dense"):
        cands = [rule] if rule in cands else cands[:1]
    elif rule == "flops":  # parent and grouped cost the same FLOPs (dense more); parent needs no gather
        cands = ["parent"] if "parent" in cands else cands[:1]
    ops = {m: _build_conv(m, blocks, bias, n_in, cin, stride, padding) for m in cands}
    if len(ops) == 1:
        m = next(iter(ops))
        return ops[m], m, {}
    m, times = fastest(ops, torch.randn(batch, *in_shape))
    return ops[m], m, times


# ---------------------------------------------------------------- folding

def _mix_matrix(alpha: torch.Tensor, k: int, c: int) -> torch.Tensor:
    """Cross-stitch alphas ``[K, K]`` or ``[K, K, C]`` as ``[K, K, C]``."""
    return alpha if alpha.dim() == 3 else alpha.unsqueeze(-1).expand(k, k, c)


def _mix_conv_weight(alpha: torch.Tensor) -> torch.Tensor:
    k, _, c = alpha.shape
    w = torch.zeros(k * c, k * c, 1, 1)
    idx = torch.arange(c)
    for b in range(k):
        for a in range(k):
            w[b * c + idx, a * c + idx, 0, 0] = alpha[b, a]
    return w


def _keep_mix(alpha: torch.Tensor, shape: tuple[int, ...], rule: ModeRule,
              batch: int) -> tuple[nn.Module, str, dict[str, float]]:
    """A kept cross-stitch unit: per-channel matmul or dense 1x1 conv (timed when measuring)."""
    ops: dict[str, nn.Module] = {"matmul": MixMatmul(alpha, shape), "conv1x1": MixConv(_mix_conv_weight(alpha))}
    if rule != "measure":
        return ops["matmul"], "matmul", {}
    m, times = fastest(ops, torch.randn(batch, *shape))
    return ops[m], m, times


def _apply_mix(blocks: list[Blocks], alpha: torch.Tensor, repeat: int) -> list[Blocks]:
    """Fold y_p = sum_a alpha[p, a] * x_a into weights reading y_p (per input channel)."""
    out = []
    for bl in blocks:
        ((p, w),) = bl.items()
        new = {}
        for a in range(alpha.shape[0]):
            scale = alpha[p, a].repeat_interleave(repeat)
            new[a] = w * scale.reshape(1, -1, 1, 1)
        out.append(new)
    return out


def fold_model(model: MultiTaskNet, spec: InputSpec, *, mode: ModeRule = "measure", mix: MixRule = "flops",
               with_logits: bool = False, batch: int = 8) -> tuple[FoldedNet, FoldReport]:
    """An equivalent FoldedNet for `model` at the input size of `spec`, and the choices made.

    `mode`: "measure" times every form of each branched stage (batch `batch`)
    and keeps the fastest; "flops" takes the cheapest in FLOPs; "grouped" or
    "dense" forces that form where it is possible. `mix`: "flops" folds a
    cross-stitch unit when that adds fewer FLOPs than keeping it costs (kept
    as a per-channel matmul or a 1x1 conv, timed when measuring); "fold" and
    "keep" force one (fold needs a conv or fc stage after the unit).
    """
    model = model.eval()
    shapes = _stage_inputs(model, spec)
    units = {int(k): v for k, v in model.mixes.items()}
    body: list[nn.Module] = []
    report = FoldReport([], [])
    pending: torch.Tensor | None = None  # alphas [K, K, C] of a unit to fold into the next stage
    with torch.no_grad():
        for s in range(len(model.stages)):
            op, choice = _fold_stage(model, s, _stage_io(model, s, shapes), pending, mode, batch)
            body.append(op)
            report.stages.append(choice)
            pending = None
            if s in units:
                kept, alpha, mix_choice = _fold_mix(model, s, units[s], shapes, mode, mix, batch)
                report.mixes.append(mix_choice)
                if kept is None:
                    pending = alpha
                else:
                    body.append(kept)
        head_w, head_b = _fold_head(model, pending)
    folded = FoldedNet(spec, body, head_w, head_b, output_runs(model.schema), with_logits).eval()
    return folded, report


@dataclass(frozen=True)
class _StageIO:
    """What a stage reads: the parent branch of each of its branches, the parents' count and width,
    and its input shape without batch (before any channel gather)."""
    parents: list[int]
    n_in: int
    cin: int
    in_shape: tuple[int, ...]


def _stage_io(model: MultiTaskNet, s: int, shapes: list[tuple[int, ...]]) -> _StageIO:
    topo = model.topology
    counts = topo.branch_counts()
    if s == 0:
        return _StageIO([0] * counts[0], 1, 3, shapes[0])
    return _StageIO(topo.parents(s), counts[s - 1], topo.widths()[s - 1], shapes[s])


def _fold_stage(model: MultiTaskNet, s: int, io: _StageIO, pending: torch.Tensor | None, rule: ModeRule,
                batch: int) -> tuple[nn.Module, StageChoice]:
    """Stage `s` as one folded module (with the alphas of a `pending` cross-stitch unit folded in)."""
    kind = model.spec.stages[s].kind
    stage = model.stages[s]
    if kind in ("conv", "fc"):
        op, mode, times = _fold_plain(stage, kind, io, pending, rule, batch)
    else:
        op, mode, times = _fold_residual(stage, kind, io, rule, batch)
    flops = count_flops(op, torch.zeros(1, *io.in_shape))
    return op, StageChoice(s, kind, len(io.parents), mode, times, flops)


def _fold_mix(model: MultiTaskNet, s: int, unit: nn.Module, shapes: list[tuple[int, ...]], rule: ModeRule,
              mix: MixRule, batch: int) -> tuple[nn.Module | None, torch.Tensor, MixChoice]:
    """The cross-stitch unit after stage `s`: (None, alphas, choice) when its alphas are folded into
    what follows, else (the kept module, alphas, choice)."""
    out_shape = shapes[s + 1]
    alpha = _mix_matrix(unit.alpha.detach().float(), unit.k, unit.channels)
    keep, keep_mode, keep_times = _keep_mix(alpha, out_shape, rule, batch)
    keep_flops = count_flops(keep, torch.zeros(1, *out_shape))
    stages = model.spec.stages
    nxt = stages[s + 1].kind if s + 1 < len(stages) else "heads"
    foldable = nxt in ("conv", "fc", "heads")
    if mix == "fold" and not foldable:
        raise InputError(f"--mix fold: the cross-stitch unit after stage {s} cannot be folded "
                         f"(next: a {nxt} block); use --mix flops or keep")
    # the heads' matmul already reads every leaf: folding a unit after the last stage is free
    extra = (0 if nxt == "heads" else fold_extra_flops(model, s, shapes)) if foldable else -1
    use_fold = foldable and (mix == "fold" or (mix == "flops" and extra <= keep_flops))
    choice = MixChoice(s, "fold" if use_fold else keep_mode, int(extra), int(keep_flops),
                       {} if use_fold else keep_times)
    return (None if use_fold else keep), alpha, choice


def _split_blocks(weight: torch.Tensor, parents: list[int]) -> list[Blocks]:
    """A stage weight ``[B*cout, cin, k, k]`` as one block per branch, keyed by the parent it reads."""
    cout = weight.shape[0] // len(parents)
    return [{p: weight[i * cout:(i + 1) * cout]} for i, p in enumerate(parents)]


def _fc_weight(stage: nn.Module, cin: int, in_shape: tuple[int, ...]) -> torch.Tensor:
    """An fc stage's weight ``[B, out, features]``, with the adaptive pool before it absorbed."""
    wt = stage.fc.weight
    if len(in_shape) == 3 and stage.pool_to:
        nb, fout = wt.shape[:2]
        h, w = in_shape[1], in_shape[2]
        pool = _pool_matrix(h, w, stage.pool_to)  # [P, hw]
        wt = (wt.reshape(nb, fout, cin, -1) @ pool).reshape(nb, fout, cin * h * w)
    return wt


def _fold_plain(stage: nn.Module, kind: str, io: _StageIO, pending: torch.Tensor | None, rule: ModeRule,
                batch: int) -> tuple[ConvStage, str, dict[str, float]]:
    """A VGG/tiny conv stage or an fc stage as one ConvStage (alphas of a `pending` unit folded in)."""
    if kind == "conv":
        weight, bias = fold_bn(stage.conv.weight, stage.conv.bias, stage.bn)
        blocks = _split_blocks(weight, io.parents)
        stride, padding, repeat, op_in = stage.conv.stride[0], stage.conv.padding[0], 1, io.in_shape
    else:
        weight = _fc_weight(stage, io.cin, io.in_shape)
        blocks = [{p: weight[i][:, :, None, None]} for i, p in enumerate(io.parents)]
        bias = stage.fc.bias.reshape(-1)
        stride, padding, repeat = 1, 0, spatial_size(io.in_shape)
        op_in = (io.in_shape[0] * repeat,)
    forced: ConvMode | None = None
    if pending is not None:
        blocks, forced = _apply_mix(blocks, pending, repeat), "dense"
    cin = next(iter(blocks[0].values())).shape[1]
    op, mode, times = _choose(rule, blocks, bias, io.n_in, cin, stride, padding, op_in, batch, forced)
    flatten = kind == "fc" and len(io.in_shape) == 3
    pool = kind == "conv" and stage.pool is not None
    return ConvStage(op, pool, flatten), mode, times


def _fold_residual(stage: nn.Module, kind: str, io: _StageIO, rule: ModeRule,
                   batch: int) -> tuple[nn.Module, str, dict[str, float]]:
    """A residual stage; the choice reported is that of its entry conv (the one reading the parents)."""
    nb = len(io.parents)
    convs = [("conv1", "bn1")]
    if kind != "stem":
        convs += [("conv2", "bn2")] + ([("conv3", "bn3")] if kind == "bottleneck" else [])
    folded = [fold_bn(getattr(stage, c).weight, None, getattr(stage, n)) for c, n in convs]
    gather, entry_parents, n_in = None, io.parents, io.n_in
    identity = io.parents == list(range(io.n_in))
    if not identity and kind != "stem" and stage.downsample is None:  # the identity shortcut needs the gather
        gather = _channel_index(io.parents, io.cin)
        entry_parents, n_in = list(range(nb)), nb

    def branch_conv(w: torch.Tensor, b: torch.Tensor, conv: nn.Conv2d) -> tuple[BranchConv, str, dict[str, float]]:
        x_shape = (n_in * w.shape[1],) + tuple(io.in_shape[1:])
        return _choose(rule, _split_blocks(w, entry_parents), b, n_in, w.shape[1], conv.stride[0],
                       conv.padding[0], x_shape, batch)

    entry, mode, times = branch_conv(*folded[0], getattr(stage, convs[0][0]))
    if kind == "stem":
        return StemStage(entry), mode, times
    inner = [BranchConv(w, b, getattr(stage, c).stride[0], getattr(stage, c).padding[0], nb, None)
             for (w, b), (c, _) in zip(folded[1:], convs[1:])]
    shortcut = None
    if stage.downsample is not None:
        w, b = fold_bn(stage.downsample[0].weight, None, stage.downsample[1])
        shortcut = branch_conv(w, b, stage.downsample[0])[0]
    return ResidualStage(entry, inner, shortcut, gather), mode, times


def _fold_head(model: MultiTaskNet, alpha: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """MultiHead as one ``[C, L*F]`` matrix over the flattened leaf features.

    With `alpha` (``[L, L, F]``, a cross-stitch unit after the last stage) the
    mixing is folded in: leaf l's features are sum_a alpha[l, a] * x_a, and
    global average pooling commutes with that per-channel mixing.
    """
    head = model.head
    c, f = head.weight.shape
    leaves = model.topology.num_leaves
    w = torch.zeros(c, leaves * f)
    for col, leaf in enumerate(head.column_leaf.tolist()):
        if alpha is None:
            w[col, leaf * f:(leaf + 1) * f] = head.weight[col]
        else:
            for a in range(leaves):
                w[col, a * f:(a + 1) * f] = head.weight[col] * alpha[leaf, a]
    return w, head.bias.detach().clone()
