"""Cross-stitch unit (Misra et al., CVPR 2016): x̃_b = Σ_a α_ba x_a.

All K columns are mixed by one einsum over the branch-major activation
``[N, K*C, ...]``. Alphas are ``[K, K]`` (scalar) or ``[K, K, C]`` (per channel),
initialised to α_same on the diagonal and α_diff = (1-α_same)/(K-1) elsewhere,
so every row is convex for any K.
"""
from __future__ import annotations

import torch
from torch import nn


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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        rest = x.shape[2:]
        xb = x.reshape(n, self.k, self.channels, -1)
        if self.alpha.dim() == 3:
            y = torch.einsum("bac,nacp->nbcp", self.alpha, xb)
        else:
            y = torch.einsum("ba,nacp->nbcp", self.alpha, xb)
        return y.reshape(n, self.k * self.channels, *rest)
