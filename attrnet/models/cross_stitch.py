"""Cross-stitch unit (Misra et al., CVPR 2016): x̃_b = Σ_a α_ba x_a.

All K columns are mixed by one op over the branch-major activation
``[N, K*C, ...]`` (a matmul for scalar alphas, a grouped 1x1 conv for channel
alphas). Alphas are ``[K, K]`` (scalar) or ``[K, K, C]`` (per channel),
initialised to α_same on the diagonal and α_diff = (1-α_same)/(K-1) elsewhere,
so every row is convex for any K.

Model-level helpers (re-initialising every unit, loading a trained network
into each column, the learned alphas as numbers) are in `attrnet.models.columns`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["CrossStitch", "init_alphas"]


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
