"""Whole-model helpers for branched and column models.

`reset_alphas` re-initialises every cross-stitch unit, `replicate_into_columns`
loads a trained network into every column (or branch) of a model of the same
arch and widths, and `alpha_summary` gives the learned alphas as plain numbers.
"""
from __future__ import annotations

from typing import Any

import torch

from attrnet.core.topology import Topology
from attrnet.models.net import MultiTaskNet

__all__ = ["alpha_summary", "replicate_into_columns", "reset_alphas"]


def reset_alphas(model: MultiTaskNet, same: float) -> None:
    """Re-initialise every cross-stitch unit of `model` (same=1.0 is the identity)."""
    for unit in model.mixes.values():
        unit.reset(same)


def replicate_into_columns(model: MultiTaskNet, tensors: dict[str, torch.Tensor],
                           source: Topology) -> list[str]:
    """Load a trained network into every column of `model`.

    `source` is the topology the `tensors` were trained with, of the same arch
    and widths. Per stage, a source stage with one branch is copied into each
    of the model's branches (branch-major, so it is a repeat along dim 0); a
    stage with as many branches as the model's is copied as is. Heads are
    copied when their shape matches (same schema). Cross-stitch alphas keep
    their initialisation. Returns the parameter names left untouched.
    """
    target = model.topology
    if source.arch != target.arch or source.widths() != target.widths():
        raise ValueError(f"checkpoint is {source.arch} {source.widths()}, "
                         f"the model is {target.arch} {target.widths()}")
    src_counts, dst_counts = source.branch_counts(), target.branch_counts()
    state = model.state_dict()
    untouched = []
    with torch.no_grad():
        for key, dst in state.items():
            src = tensors.get(key)
            if src is None or key.startswith("mixes."):
                untouched.append(key)
                continue
            if key.startswith("stages."):
                s = int(key.split(".")[1])
                if src_counts[s] == dst_counts[s] or dst.dim() == 0:
                    value = src
                elif src_counts[s] == 1:
                    value = src.repeat(dst_counts[s], *[1] * (src.dim() - 1))
                else:
                    raise ValueError(f"stage {s}: cannot map {src_counts[s]} branches onto {dst_counts[s]}")
            else:
                value = src
            if tuple(value.shape) != tuple(dst.shape):
                if key.startswith("head."):
                    untouched.append(key)
                    continue
                raise ValueError(f"{key}: checkpoint shape {tuple(src.shape)} does not fit {tuple(dst.shape)}")
            dst.copy_(value)
    return untouched


def alpha_summary(model: MultiTaskNet, column_names: list[str]) -> dict[str, Any]:
    """The learned alphas as plain numbers, one entry per unit.

    `matrix[b][a]` is α_ba (how much column b reads column a) averaged over
    channels; `per_channel` is the full ``[K][K][C]`` tensor for channel units.
    """
    units = []
    for stage, unit in sorted(model.mixes.items(), key=lambda kv: int(kv[0])):
        a = unit.alpha.detach().float().cpu()
        mean = a.mean(-1) if a.dim() == 3 else a
        k = unit.k
        eye = torch.eye(k, dtype=torch.bool)
        entry: dict[str, Any] = {
            "after_stage": int(stage),
            "granularity": unit.granularity,
            "k": k,
            "channels": unit.channels,
            "matrix": mean.tolist(),
            "mean_same": float(mean[eye].mean()),
            "mean_diff": float(mean[~eye].mean()),
        }
        if a.dim() == 3:
            entry["per_channel"] = a.tolist()
        units.append(entry)
    return {"columns": list(column_names), "units": units}
