"""What the folded forms cost: FLOPs counted from the ops, and candidates timed on real shapes.

`attrnet.export.fold` uses these to pick a form for each branched stage and
to decide whether a cross-stitch unit is folded or kept
(docs/architecture.md, Folding); the export summary reports `count_flops`
before and after folding.
"""
from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from attrnet.export.runtime import BranchConv, MixConv, MixMatmul
from attrnet.models import layers
from attrnet.models.cross_stitch import CrossStitch
from attrnet.models.net import MultiHead, MultiTaskNet

__all__ = ["count_flops", "fastest", "fold_extra_flops", "spatial_size", "time_candidates"]

_COUNTED = (nn.Conv2d, BranchConv, MixConv, nn.Linear, layers.GroupedLinear, MultiHead, CrossStitch, MixMatmul)


def spatial_size(shape: tuple[int, ...]) -> int:
    """Positions per channel of a feature shape without batch: H*W for ``(C, H, W)``, 1 for ``(F,)``."""
    return shape[1] * shape[2] if len(shape) == 3 else 1


def _op_flops(mod: nn.Module, out: torch.Tensor) -> int:
    """Multiply-adds x2 of one counted op that produced `out`."""
    hw = out.shape[2] * out.shape[3] if out.dim() == 4 else 1
    if isinstance(mod, (nn.Conv2d, BranchConv, MixConv)):
        return 2 * mod.weight.numel() * hw
    if isinstance(mod, (nn.Linear, layers.GroupedLinear, MultiHead)):
        return 2 * mod.weight.numel()
    if isinstance(mod, CrossStitch):
        return 2 * mod.k * mod.k * mod.channels * hw
    return 2 * mod.weight.numel() * mod.hw  # MixMatmul


def count_flops(module: nn.Module, x: torch.Tensor) -> int:
    """Multiply-adds x2 of the convs, matmuls and cross-stitch units `module` runs on `x`.

    Counted from each op's weight and output size (forward hooks), for the
    trained and the folded model alike; elementwise ops are not counted.
    """
    total = 0

    def hook(mod: nn.Module, _inp: Any, out: Any) -> None:
        nonlocal total
        total += _op_flops(mod, out)

    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, _COUNTED)]
    try:
        with torch.no_grad():
            module(x)
    finally:
        for h in handles:
            h.remove()
    return int(total)


def fold_extra_flops(model: MultiTaskNet, s: int, shapes: list[tuple[int, ...]]) -> int:
    """FLOPs folding the cross-stitch unit after stage `s` adds to stage s+1 (it then reads all K columns).

    `shapes` are the stage input shapes without batch (``shapes[s + 1]`` is the unit's).
    """
    k = model.topology.branch_counts()[s]
    nxt = model.stages[s + 1]
    if isinstance(nxt, layers.GroupedConvBlock):
        w = nxt.conv.weight
        return 2 * w.numel() * (k - 1) * (spatial_size(shapes[s + 1]) // nxt.conv.stride[0] ** 2)
    b, o, _ = nxt.fc.weight.shape
    in_features = shapes[s + 1][0] // k * spatial_size(shapes[s + 1])
    return 2 * b * o * in_features * (k - 1)


def time_candidates(ops: dict[str, nn.Module], x: torch.Tensor, rounds: int = 7) -> dict[str, float]:
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


def fastest(ops: dict[str, nn.Module], x: torch.Tensor) -> tuple[str, dict[str, float]]:
    """The name of the fastest op on `x`, and every op's time in ms (`time_candidates`)."""
    times = time_candidates(ops, x)
    return min(times, key=times.__getitem__), times
