"""The unfolded model as a user would run it in eager PyTorch: uint8 NHWC in, probabilities out (baseline)."""
from __future__ import annotations

import torch
from torch import nn

from attrnet.core.input_spec import InputSpec
from attrnet.core.model_card import probabilities
from attrnet.models.net import MultiTaskNet

__all__ = ["EagerUInt8"]


class EagerUInt8(nn.Module):
    """uint8 ``[N, H, W, 3]`` RGB -> mean/std normalisation -> the unfolded `MultiTaskNet` -> probabilities."""

    def __init__(self, net: MultiTaskNet, spec: InputSpec):
        super().__init__()
        self.net = net
        std, mean = torch.tensor(spec.std), torch.tensor(spec.mean)
        self.register_buffer("scale", (1.0 / (255.0 * std)).view(1, 3, 1, 1))
        self.register_buffer("shift", (-mean / std).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).to(self.scale.dtype) * self.scale + self.shift
        return probabilities(self.net(x).float(), self.net.schema)
