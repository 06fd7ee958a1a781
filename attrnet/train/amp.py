"""Mixed precision on CUDA, and the forward pass every training, AWMT and validation batch takes.

With ``--amp`` on a CUDA device the model runs under autocast in bfloat16
where the GPU supports it, else float16 with a gradient scaler; elsewhere in
float32. Losses are always computed in float32.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from attrnet.core.input_spec import InputSpec
from attrnet.train.data import normalise
from attrnet.train.losses import AttributeLoss

__all__ = ["Amp", "LossForward"]


@dataclass
class Amp:
    """The autocast setting of a run and its gradient scaler (a no-op unless float16 autocast is on)."""

    enabled: bool
    dtype: torch.dtype
    scaler: torch.amp.GradScaler

    @classmethod
    def for_device(cls, device: torch.device, requested: bool) -> "Amp":
        """Autocast only on CUDA when `requested`; bfloat16 where supported, else float16 + scaler."""
        cuda = device.type == "cuda"
        dtype = torch.bfloat16 if (cuda and torch.cuda.is_bf16_supported()) else torch.float16
        enabled = cuda and requested
        return cls(enabled, dtype, torch.amp.GradScaler("cuda", enabled=enabled and dtype == torch.float16))

    def autocast(self) -> contextlib.AbstractContextManager:
        return torch.autocast("cuda", dtype=self.dtype) if self.enabled else contextlib.nullcontext()


@dataclass
class LossForward:
    """uint8 images -> normalised -> model under autocast -> per-sample losses in float32."""

    spec: InputSpec
    loss_fn: AttributeLoss
    amp: Amp

    def __call__(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Logits, ``[N, A]`` losses and their label mask."""
        with self.amp.autocast():
            logits = model(normalise(x, self.spec))
        losses, mask = self.loss_fn(logits.float(), y)
        return logits, losses, mask
