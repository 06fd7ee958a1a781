"""Branch-batched layers.

Every stage runs all of its B sibling branches as one op: activations are
``[N, B*C, H, W]`` (or ``[N, B*F]`` for fully connected stages), branch-major
along dim 1, and each layer here is a grouped op with B groups.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

__all__ = ["gather_branches", "GroupedBasicBlock", "GroupedBottleneck", "GroupedConvBlock", "GroupedFCBlock",
           "GroupedLinear", "GroupedStem"]


class GroupedConvBlock(nn.Module):
    """conv(k) -> BatchNorm -> ReLU [-> 2x2 max pool], B branches as one grouped conv.

    With `shared_input` (stage 0: every branch reads the image) the conv is dense
    over one copy of the input: the same weights as the grouped form (weight
    ``[B*cout, cin, k, k]``), without replicating the image B times.
    """

    def __init__(self, branches: int, cin: int, cout: int, kernel: int = 3, stride: int = 1, pool: bool = False,
                 shared_input: bool = False):
        super().__init__()
        self.branches = branches
        self.conv = _gconv(branches, cin, cout, kernel, stride, bias=True, shared_input=shared_input)
        self.bn = nn.BatchNorm2d(branches * cout)
        self.pool = nn.MaxPool2d(2, 2) if pool else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.conv(x)), inplace=True)
        return self.pool(x) if self.pool is not None else x


class GroupedLinear(nn.Module):
    """B independent linear layers as one batched matmul: ``[N, B*I] -> [N, B*O]``."""

    def __init__(self, branches: int, fin: int, fout: int):
        super().__init__()
        self.branches, self.fin, self.fout = branches, fin, fout
        self.weight = nn.Parameter(torch.empty(branches, fout, fin))
        self.bias = nn.Parameter(torch.zeros(branches, fout))
        bound = 1.0 / fin ** 0.5
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        x = x.reshape(n, self.branches, self.fin)
        y = torch.einsum("nbi,boi->nbo", x, self.weight) + self.bias
        return y.reshape(n, self.branches * self.fout)


class GroupedFCBlock(nn.Module):
    """VGG fully connected stage: [adaptive pool + per-branch flatten] -> linear -> ReLU."""

    def __init__(self, branches: int, fin: int, fout: int, pool_to: int | None = None):
        super().__init__()
        self.branches = branches
        self.pool_to = pool_to
        flat = fin * (pool_to * pool_to if pool_to else 1)
        self.fc = GroupedLinear(branches, flat, fout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4:
            if self.pool_to:
                x = F.adaptive_avg_pool2d(x, self.pool_to)
            n = x.shape[0]
            x = x.reshape(n, self.branches, -1)  # branch-major channels, then HxW
        return F.relu(self.fc(x), inplace=True)


def _gconv(b: int, cin: int, cout: int, k: int, stride: int = 1, *, bias: bool = False,
           shared_input: bool = False) -> nn.Conv2d:
    """B convs ``cin -> cout`` as one grouped conv; dense over one shared input when `shared_input`."""
    if shared_input:
        return nn.Conv2d(cin, b * cout, k, stride, k // 2, bias=bias)
    return nn.Conv2d(b * cin, b * cout, k, stride, k // 2, groups=b, bias=bias)


class GroupedStem(nn.Module):
    """ResNet stem: 7x7/2 conv -> BN -> ReLU -> 3x3/2 max pool."""

    def __init__(self, branches: int, cin: int, cout: int, shared_input: bool = False):
        super().__init__()
        self.conv1 = _gconv(branches, cin, cout, 7, 2, shared_input=shared_input)
        self.bn1 = nn.BatchNorm2d(branches * cout)
        self.pool = nn.MaxPool2d(3, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pool(F.relu(self.bn1(self.conv1(x)), inplace=True))


def _shortcut(branches: int, cin: int, cout: int, stride: int) -> nn.Module | None:
    """The projection shortcut (1x1 conv + BN) of a residual block, or None for the identity."""
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(_gconv(branches, cin, cout, 1, stride), nn.BatchNorm2d(branches * cout))


class _GroupedResidual(nn.Module):
    """A ResNet block over B branches: conv-BN pairs ``conv1/bn1 ...`` (ReLU between) plus a shortcut."""

    def _init_convs(self, branches: int, cin: int, cout: int, stride: int,
                    convs: list[tuple[int, int, int, int]]) -> None:
        """`convs`: (in, out, kernel, stride) per conv-BN pair, named conv1/bn1, conv2/bn2, ..."""
        self.depth = len(convs)
        for i, (ci, co, k, s) in enumerate(convs, start=1):
            setattr(self, f"conv{i}", _gconv(branches, ci, co, k, s))
            setattr(self, f"bn{i}", nn.BatchNorm2d(branches * co))
        self.downsample = _shortcut(branches, cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idt = x if self.downsample is None else self.downsample(x)
        out = x
        for i in range(1, self.depth + 1):
            out = getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(out))
            if i < self.depth:
                out = F.relu(out, inplace=True)
        return F.relu(out + idt, inplace=True)


class GroupedBasicBlock(_GroupedResidual):
    """ResNet basic block (two 3x3 convs + identity/projection shortcut), B branches."""

    def __init__(self, branches: int, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self._init_convs(branches, cin, cout, stride, [(cin, cout, 3, stride), (cout, cout, 3, 1)])


class GroupedBottleneck(_GroupedResidual):
    """ResNet bottleneck block (1x1, 3x3, 1x1; expansion 4), B branches."""

    def __init__(self, branches: int, cin: int, cout: int, stride: int = 1):
        super().__init__()
        mid = cout // 4
        self._init_convs(branches, cin, cout, stride, [(cin, mid, 1, 1), (mid, mid, 3, stride), (mid, cout, 1, 1)])


def gather_branches(x: torch.Tensor, branches: int, index: torch.Tensor) -> torch.Tensor:
    """Select parent branches along dim 1: ``[N, B*C, ...] -> [N, len(index)*C, ...]``."""
    n = x.shape[0]
    rest = x.shape[2:]
    xb = x.reshape(n, branches, -1, *rest)
    return xb.index_select(1, index).reshape(n, -1, *rest)
