"""The inference modules a folded model is built from (docs/architecture.md, Folding).

`FoldedNet` takes uint8 ``[N, H, W, 3]`` RGB, normalises inside, runs its
body of `ConvStage` / `StemStage` / `ResidualStage` (each one `BranchConv`
over all branches of a stage) and kept cross-stitch units (`MixConv`,
`MixMatmul`), then one head matmul and the output activations. `UnfoldedNet`
wraps the trained model with the same input and output, for comparisons.
`attrnet.export.fold` builds these; they hold no folding logic themselves.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

from attrnet.core.input_spec import InputSpec
from attrnet.core.model_card import output_runs, probabilities
from attrnet.models.net import MultiTaskNet

__all__ = ["BranchConv", "ConvStage", "FoldedNet", "MixConv", "MixMatmul", "ResidualStage", "StemStage",
           "UnfoldedNet"]


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
