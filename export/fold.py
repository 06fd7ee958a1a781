"""Fold a trained `MultiTaskNet` into a plain inference module.

What folding does (DESIGN.md §5):

- BatchNorm is folded into the conv before it.
- Every stage of the branch tree becomes one op over all its branches, in one
  of three equivalent forms: ``grouped`` (a channel gather where a parent has
  several children, then a conv with one group per branch), ``parent`` (a conv
  with one group per parent branch, no gather; only when siblings are
  contiguous and every parent has as many children) or ``dense`` (one conv
  over all parent channels whose weight is block-sparse). All candidates are
  timed on the stage's real input shape and the fastest is kept.
- A first fully connected stage absorbs the adaptive average pool (a fixed
  linear map at the export size) into its weight.
- A cross-stitch unit is linear, so it is folded into the next stage's weights
  (that stage then reads every column: K times its FLOPs) or kept as one 1x1
  conv over the K columns, whichever costs fewer FLOPs.
- All heads become one matmul producing ``[N, C]``; sigmoid for binary columns
  and softmax per categorical group follow inside the module.
- Input is uint8 ``[N, H, W, 3]`` RGB: cast, layout change and mean/std
  normalisation happen inside the module.

`fold_model(model, spec)` returns the module and a `FoldReport` of the choices.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from torch import nn
import torch.nn.functional as F

from attrnet.core.errors import InputError
from attrnet.core.input_spec import InputSpec
from attrnet.core.model_card import output_runs, probabilities
from attrnet.models import layers
from attrnet.models.net import MultiTaskNet

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


# ---------------------------------------------------------------- folded ops

def _gather_channels(x: torch.Tensor, gather: torch.Tensor | None) -> torch.Tensor:
    """The input channels a stage reads (parents feeding several children are repeated)."""
    return x if gather is None else x.index_select(1, gather)


class BranchConv(nn.Module):
    """One conv over all branches of a stage (optionally after a channel gather)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, stride: int, padding: int,
                 groups: int, gather: torch.Tensor | None):
        super().__init__()
        self.stride, self.padding, self.groups = stride, padding, groups
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.bias = None if bias is None else nn.Parameter(bias, requires_grad=False)
        self.register_buffer("gather", gather)  # None: no channel gather

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _gather_channels(x, self.gather)
        if x.dim() == 2:  # fc features: one Gemm, or a grouped 1x1 conv when the branches stay apart
            if self.groups == 1:
                return F.linear(x, self.weight[:, :, 0, 0], self.bias)
            return F.conv2d(x[:, :, None, None], self.weight, self.bias, 1, 0, 1, self.groups).flatten(1)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, 1, self.groups)


class ConvStage(nn.Module):
    """VGG/tiny conv stage or fc stage: op -> ReLU [-> 2x2 max pool] [-> flatten]."""

    def __init__(self, op: BranchConv, pool: bool, flatten_input: bool):
        super().__init__()
        self.op, self.pool, self.flatten_input = op, pool, flatten_input

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.flatten_input:
            x = x.flatten(1)
        x = F.relu(self.op(x))
        return F.max_pool2d(x, 2, 2) if self.pool else x


class StemStage(nn.Module):
    def __init__(self, op: BranchConv):
        super().__init__()
        self.op = op

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.max_pool2d(F.relu(self.op(x)), 3, 2, 1)


class ResidualStage(nn.Module):
    """Basic or bottleneck block: entry convs read the parents, the rest are grouped per branch."""

    def __init__(self, entry: BranchConv, inner: list[BranchConv], shortcut: BranchConv | None,
                 gather: torch.Tensor | None):
        super().__init__()
        self.entry, self.inner, self.shortcut = entry, nn.ModuleList(inner), shortcut
        self.register_buffer("gather", gather)  # None: no channel gather

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _gather_channels(x, self.gather)
        idt = x if self.shortcut is None else self.shortcut(x)
        out = F.relu(self.entry(x))
        for i, conv in enumerate(self.inner):
            out = conv(out)
            if i < len(self.inner) - 1:
                out = F.relu(out)
        return F.relu(out + idt)


class MixConv(nn.Module):
    """A cross-stitch unit kept as one 1x1 conv (a matmul on fc features) over the K columns."""

    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.weight = nn.Parameter(weight, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return F.linear(x, self.weight[:, :, 0, 0])
        return F.conv2d(x, self.weight)


class MixMatmul(nn.Module):
    """A cross-stitch unit kept as a per-channel K x K matmul (2*K*K*C FLOPs per position)."""

    def __init__(self, alpha: torch.Tensor, shape: tuple[int, ...]):
        super().__init__()
        k, _, c = alpha.shape
        self.k, self.c, self.shape = k, c, tuple(shape)
        self.hw = shape[1] * shape[2] if len(shape) == 3 else 1
        self.weight = nn.Parameter(alpha.permute(2, 0, 1).contiguous(), requires_grad=False)  # [C, K, K]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xb = x.reshape(-1, self.k, self.c, self.hw).transpose(1, 2)  # [N, C, K, HW]
        y = torch.matmul(self.weight, xb).transpose(1, 2)
        return y.reshape((-1,) + self.shape)


class FoldedNet(nn.Module):
    """uint8 ``[N, H, W, 3]`` RGB -> probabilities ``[N, C]`` (and logits with `with_logits`)."""

    def __init__(self, spec: InputSpec, body: list[nn.Module], head_w: torch.Tensor, head_b: torch.Tensor,
                 kinds: list[tuple[str, int, int]], with_logits: bool = False):
        super().__init__()
        mean = torch.tensor(spec.mean, dtype=torch.float32)
        std = torch.tensor(spec.std, dtype=torch.float32)
        self.register_buffer("scale", (1.0 / (255.0 * std)).reshape(1, 3, 1, 1))
        self.register_buffer("shift", (-mean / std).reshape(1, 3, 1, 1))
        self.body = nn.ModuleList(body)
        self.head = nn.Linear(head_w.shape[1], head_w.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(head_w)
            self.head.bias.copy_(head_b)
        self.head.requires_grad_(False)
        self.kinds = kinds  # runs of (kind, start, stop) over the output columns
        self.with_logits = with_logits

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        # cast before the layout change: TensorRT takes uint8 only at inputs and in Cast layers
        x = images.to(self.scale.dtype).permute(0, 3, 1, 2) * self.scale + self.shift
        for op in self.body:
            x = op(x)
        if x.dim() == 4:
            x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.head(x).float()

    def forward(self, images: torch.Tensor):
        logits = self.logits(images)
        probs = probabilities(logits, self.kinds)
        return (probs, logits) if self.with_logits else probs


class UnfoldedNet(nn.Module):
    """The trained model with the same uint8 input and probability output as FoldedNet (for comparisons)."""

    def __init__(self, model: MultiTaskNet, spec: InputSpec):
        super().__init__()
        self.model = model.eval()
        mean = torch.tensor(spec.mean, dtype=torch.float32).reshape(1, 3, 1, 1)
        std = torch.tensor(spec.std, dtype=torch.float32).reshape(1, 3, 1, 1)
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.kinds = output_runs(model.schema)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = (images.permute(0, 3, 1, 2).float() / 255.0 - self.mean) / self.std
        return probabilities(self.model(x), self.kinds)


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


def _time_candidates(ops: dict[str, nn.Module], x: torch.Tensor, rounds: int = 7) -> dict[str, float]:
    """Best time in ms of each op on `x`, timed round-robin (so load from other jobs hits all alike)."""
    best = {m: float("inf") for m in ops}
    with torch.no_grad():
        for op in ops.values():
            op(x)
        for _ in range(rounds):
            for m, op in ops.items():
                t = time.perf_counter()
                op(x)
                best[m] = min(best[m], time.perf_counter() - t)
    return {m: round(v * 1e3, 4) for m, v in best.items()}


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
    times = _time_candidates(ops, torch.randn(batch, *in_shape))
    m = min(times, key=times.__getitem__)
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
    times = _time_candidates(ops, torch.randn(batch, *shape))
    m = min(times, key=times.__getitem__)
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
    topo, bspec = model.topology, model.spec
    counts, widths = topo.branch_counts(), topo.widths()
    shapes = _stage_inputs(model, spec)
    mixes = {int(k): v for k, v in model.mixes.items()}
    body: list[nn.Module] = []
    stage_choices: list[StageChoice] = []
    mix_choices: list[MixChoice] = []
    pending: torch.Tensor | None = None  # alphas [K, K, C] to fold into this stage
    with torch.no_grad():
        for s, stage in enumerate(model.stages):
            kind = bspec.stages[s].kind
            n_in = 1 if s == 0 else counts[s - 1]
            cin = 3 if s == 0 else widths[s - 1]
            parents = [0] * counts[s] if s == 0 else topo.parents(s)
            in_shape = shapes[s]
            out_shape = shapes[s + 1]
            if kind in ("conv", "fc"):
                op, flatten, pool, rec = _fold_plain(stage, kind, parents, n_in, cin, in_shape, out_shape,
                                                     pending, mode, batch)
                body.append(ConvStage(op, pool, flatten))
            else:
                op, rec = _fold_residual(stage, kind, parents, n_in, cin, in_shape, out_shape, mode, batch)
                body.append(op)
            pending = None
            flops = count_flops(body[-1], torch.zeros(1, *in_shape))
            stage_choices.append(StageChoice(s, kind, counts[s], rec[0], rec[1], flops))
            unit = mixes.get(s)
            if unit is None:
                continue
            alpha = _mix_matrix(unit.alpha.detach().float(), unit.k, unit.channels)
            keep, keep_mode, keep_times = _keep_mix(alpha, out_shape, mode, batch)
            keep_flops = count_flops(keep, torch.zeros(1, *out_shape))
            nxt = bspec.stages[s + 1].kind if s + 1 < len(bspec.stages) else "heads"
            foldable = nxt in ("conv", "fc", "heads")
            # the heads' matmul already reads every leaf: folding a unit after the last stage is free
            extra = (0 if nxt == "heads" else _fold_extra_flops(model, s, shapes)) if foldable else -1
            use_fold = foldable and (mix == "fold" or (mix == "flops" and extra <= keep_flops))
            if mix == "fold" and not foldable:
                raise InputError(f"--mix fold: the cross-stitch unit after stage {s} cannot be folded "
                                 f"(next: a {nxt} block); use --mix flops or keep")
            if use_fold:
                pending = alpha
            else:
                body.append(keep)
            mix_choices.append(MixChoice(s, "fold" if use_fold else keep_mode, int(extra), int(keep_flops),
                                         {} if use_fold else keep_times))
        head_w, head_b = _fold_head(model, pending)
    folded = FoldedNet(spec, body, head_w, head_b, output_runs(model.schema), with_logits).eval()
    return folded, FoldReport(stage_choices, mix_choices)


def _hw(shape: tuple[int, ...]) -> int:
    return shape[1] * shape[2] if len(shape) == 3 else 1


def _fold_extra_flops(model: MultiTaskNet, s: int, shapes: list[tuple[int, ...]]) -> int:
    """FLOPs folding the unit after stage `s` adds to stage s+1 (it then reads all K columns)."""
    k = model.topology.branch_counts()[s]
    nxt = model.stages[s + 1]
    if isinstance(nxt, layers.GroupedConvBlock):
        w = nxt.conv.weight
        return 2 * w.numel() * (k - 1) * (_hw(shapes[s + 1]) // nxt.conv.stride[0] ** 2)
    b, o, _ = nxt.fc.weight.shape
    in_features = shapes[s + 1][0] // k * _hw(shapes[s + 1])
    return 2 * b * o * in_features * (k - 1)


def count_flops(module: nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds x2 of the convs, matmuls and cross-stitch units `module` runs on `x`.

    Counted from each op's weight and output size (forward hooks), for the
    trained and the folded model alike; elementwise ops are not counted.
    """
    from attrnet.models.cross_stitch import CrossStitch
    from attrnet.models.net import MultiHead

    total = 0

    def hook(mod: nn.Module, _inp: Any, out: Any) -> None:
        nonlocal total
        hw = out.shape[2] * out.shape[3] if out.dim() == 4 else 1
        if isinstance(mod, (nn.Conv2d, BranchConv, MixConv)):
            total += 2 * mod.weight.numel() * hw
        elif isinstance(mod, (nn.Linear, layers.GroupedLinear, MultiHead)):
            total += 2 * mod.weight.numel()
        elif isinstance(mod, CrossStitch):
            total += 2 * mod.k * mod.k * mod.channels * hw
        elif isinstance(mod, MixMatmul):
            total += 2 * mod.weight.numel() * mod.hw

    kinds = (nn.Conv2d, BranchConv, MixConv, nn.Linear, layers.GroupedLinear, MultiHead, CrossStitch, MixMatmul)
    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, kinds)]
    try:
        with torch.no_grad():
            module(x)
    finally:
        for h in handles:
            h.remove()
    return int(total)


def _fold_plain(stage: nn.Module, kind: str, parents: list[int], n_in: int, cin: int,
                in_shape: tuple[int, ...], out_shape: tuple[int, ...], pending: torch.Tensor | None,
                rule: ModeRule, batch: int) -> tuple[BranchConv, bool, bool, tuple[str, dict[str, float]]]:
    nb = len(parents)
    if kind == "conv":
        conv = stage.conv
        w, b = fold_bn(conv.weight, conv.bias, stage.bn)
        cout = w.shape[0] // nb
        blocks = [{parents[i]: w[i * cout:(i + 1) * cout]} for i in range(nb)]
        stride, padding, pool, flatten, repeat = conv.stride[0], conv.padding[0], stage.pool is not None, False, 1
        op_in = in_shape
    else:
        fc = stage.fc
        wt, b = fc.weight, fc.bias.reshape(-1)
        flatten = len(in_shape) == 3
        repeat = 1
        if flatten:
            h, wd = in_shape[1], in_shape[2]
            fout = wt.shape[1]
            if stage.pool_to:
                m = _pool_matrix(h, wd, stage.pool_to)  # [P, hw]
                wt = (wt.reshape(nb, fout, cin, -1) @ m).reshape(nb, fout, cin * h * wd)
            repeat = h * wd
        blocks = [{parents[i]: wt[i][:, :, None, None]} for i in range(nb)]
        stride, padding, pool = 1, 0, False
        cin = blocks[0][parents[0]].shape[1]
        op_in = (in_shape[0] * _hw(in_shape),)
    forced: ConvMode | None = None
    if pending is not None:
        blocks = _apply_mix(blocks, pending, repeat)
        forced = "dense"
    op, mode, times = _choose(rule, blocks, b, n_in, cin, stride, padding, op_in, batch, forced)
    return op, flatten, pool, (mode, times)


def _fold_residual(stage: nn.Module, kind: str, parents: list[int], n_in: int, cin: int,
                   in_shape: tuple[int, ...], out_shape: tuple[int, ...], rule: ModeRule,
                   batch: int) -> tuple[nn.Module, tuple[str, dict[str, float]]]:
    """A residual stage; the choice reported is that of its entry conv (the one reading the parents)."""
    nb = len(parents)
    identity = parents == list(range(n_in))
    convs = [("conv1", "bn1")]
    if kind != "stem":
        convs += [("conv2", "bn2")] + ([("conv3", "bn3")] if kind == "bottleneck" else [])
    folded = [fold_bn(getattr(stage, c).weight, None, getattr(stage, n)) for c, n in convs]
    gather = None
    needs_gather = not identity and (kind != "stem" and getattr(stage, "downsample", None) is None)
    entry_parents = parents
    if needs_gather:  # the identity shortcut needs the gathered input anyway
        gather = _channel_index(parents, cin)
        entry_parents, n_in = list(range(nb)), nb

    def branch_conv(w: torch.Tensor, b: torch.Tensor, conv: nn.Conv2d, ps: list[int],
                    n: int) -> tuple[BranchConv, str, dict[str, float]]:
        cout = w.shape[0] // nb
        blocks = [{ps[i]: w[i * cout:(i + 1) * cout]} for i in range(nb)]
        x_shape = (n * w.shape[1],) + tuple(in_shape[1:])
        return _choose(rule, blocks, b, n, w.shape[1], conv.stride[0], conv.padding[0], x_shape, batch)

    entry, mode, times = branch_conv(*folded[0], getattr(stage, convs[0][0]), entry_parents, n_in)
    if kind == "stem":
        return StemStage(entry), (mode, times)
    inner = [BranchConv(w, b, getattr(stage, c).stride[0], getattr(stage, c).padding[0], nb, None)
             for (w, b), (c, _) in zip(folded[1:], convs[1:])]
    shortcut = None
    if stage.downsample is not None:
        w, b = fold_bn(stage.downsample[0].weight, None, stage.downsample[1])
        shortcut = branch_conv(w, b, stage.downsample[0], entry_parents, n_in)[0]
    return ResidualStage(entry, inner, shortcut, gather), (mode, times)


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
