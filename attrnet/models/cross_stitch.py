"""Cross-stitch unit (Misra et al., CVPR 2016): x̃_b = Σ_a α_ba x_a.

All K columns are mixed by one op over the branch-major activation
``[N, K*C, ...]`` (a matmul for scalar alphas, a grouped 1x1 conv for channel
alphas). Alphas are ``[K, K]`` (scalar) or ``[K, K, C]`` (per channel),
initialised to α_same on the diagonal and α_diff = (1-α_same)/(K-1) elsewhere,
so every row is convex for any K.

Also here: re-initialising every unit of a model (`reset_alphas`), copying a
trained network into each column (`replicate_into_columns`), and the learned
alphas as plain numbers (`alpha_summary`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from attrnet.models.net import MultiTaskNet
    from attrnet.models.topology import Topology


def init_alphas(k: int, channels: int | None, same: float = 0.9) -> torch.Tensor:
    """Initial alpha tensor: rows sum to 1 (diagonal `same`, the rest shared equally)."""
    if k < 2:
        raise ValueError("cross-stitch needs at least 2 columns")
    diff = (1.0 - same) / (k - 1)
    a = torch.full((k, k), diff)
    a.fill_diagonal_(same)
    if channels is not None:
        a = a.unsqueeze(-1).repeat(1, 1, channels)
    return a


class CrossStitch(nn.Module):
    """Mixes K equal-shaped columns; `granularity` is "channel" or "scalar"."""

    def __init__(self, k: int, channels: int, granularity: str = "channel", same: float = 0.9):
        super().__init__()
        self.k, self.channels, self.granularity = k, channels, granularity
        per_channel = channels if granularity == "channel" else None
        self.alpha = nn.Parameter(init_alphas(k, per_channel, same))

    def matrix(self) -> torch.Tensor:
        """Alphas as ``[K, K, C]`` whatever the granularity."""
        a = self.alpha
        return a if a.dim() == 3 else a.unsqueeze(-1).expand(self.k, self.k, self.channels)

    def reset(self, same: float) -> None:
        """Re-initialise to α_same on the diagonal, (1-α_same)/(K-1) elsewhere."""
        per_channel = self.channels if self.alpha.dim() == 3 else None
        with torch.no_grad():
            self.alpha.copy_(init_alphas(self.k, per_channel, same))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, k, c = x.shape[0], self.k, self.channels
        if self.alpha.dim() == 2:  # scalar: one matmul over the column axis
            return torch.matmul(self.alpha, x.reshape(n, k, -1)).reshape(x.shape)
        if x.dim() == 4:
            # channel-major, then a 1x1 conv with one K->K group per channel: on CPU this
            # runs several times faster than the equivalent einsum (forward and backward)
            h, w = x.shape[2], x.shape[3]
            xc = x.reshape(n, k, c, h, w).transpose(1, 2).reshape(n, c * k, h, w)
            weight = self.alpha.permute(2, 0, 1).reshape(c * k, k, 1, 1)
            y = F.conv2d(xc, weight, groups=c)
            return y.reshape(n, c, k, h, w).transpose(1, 2).reshape(x.shape)
        y = torch.einsum("bac,nacp->nbcp", self.alpha, x.reshape(n, k, c, -1))
        return y.reshape(x.shape)


def reset_alphas(model: "MultiTaskNet", same: float) -> None:
    """Re-initialise every cross-stitch unit of `model` (same=1.0 is the identity)."""
    for unit in model.mixes.values():
        unit.reset(same)


def replicate_into_columns(model: "MultiTaskNet", tensors: dict[str, torch.Tensor],
                           source: "Topology") -> list[str]:
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


def alpha_summary(model: "MultiTaskNet", column_names: list[str]) -> dict[str, Any]:
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
