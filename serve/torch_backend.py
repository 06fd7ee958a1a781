"""The torch backend: a checkpoint run in PyTorch, uint8 in, probabilities out.

The checkpoint is folded the way `attrnet export` folds it, so the torch
backend runs the same graph as the exported files.

On CUDA the model runs in fp16, batches are assembled in pinned host memory
and copied on a separate stream, so the copy of one batch overlaps the
compute of the previous one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from attrnet.checkpoint import load_model
from attrnet.errors import NotAvailableError
from attrnet.input_spec import InputSpec
from attrnet.models.net import MultiTaskNet, probabilities
from attrnet.serve.backends import Backend


class UInt8Model(nn.Module):
    """uint8 ``[N, H, W, 3]`` RGB -> normalise -> network -> probabilities ``[N, C]``."""

    def __init__(self, net: MultiTaskNet, mean: list[float], std: list[float]):
        super().__init__()
        self.net = net
        self.register_buffer("scale", (1.0 / (255.0 * torch.tensor(std))).view(1, 3, 1, 1))
        self.register_buffer("shift", (-torch.tensor(mean) / torch.tensor(std)).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.permute(0, 3, 1, 2).to(self.scale.dtype) * self.scale + self.shift
        return probabilities(self.net(x).float(), self.net.schema)


def serving_module(net: MultiTaskNet, spec: InputSpec) -> nn.Module:
    """The folded module `attrnet export` would emit (BatchNorm, branches and heads folded); the model
    itself behind `UInt8Model` where a topology cannot be folded."""
    from attrnet.export.fold import fold_model

    try:
        folded, _ = fold_model(net, spec, mode="flops")
    except ValueError:
        return UInt8Model(net, list(spec.mean), list(spec.std)).eval()
    return folded.eval()


def resolve_device(device: str) -> torch.device:
    """`auto` -> CUDA when available, else CPU; `cuda` without CUDA is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise NotAvailableError(f"device {device!r} asked for, but torch sees no CUDA device")
    return torch.device(device)


class TorchBackend(Backend):
    """A `.safetensors` checkpoint run by PyTorch (fp32 on CPU, fp16 on CUDA)."""

    name = "torch"

    def __init__(self, path: Path, device: str = "auto", *, threads: int | None = None):
        dev = resolve_device(device)
        net, meta = load_model(path, device="cpu")
        super().__init__(path, meta, str(dev))
        model = serving_module(net, self.input_spec)
        if dev.type == "cuda":
            model = model.half()
        self.module = model.to(dev)
        self.torch_device = dev
        if threads and dev.type == "cpu":
            torch.set_num_threads(int(threads))
        self._copy_stream = torch.cuda.Stream(dev) if dev.type == "cuda" else None

    def alloc_batch(self, n: int) -> np.ndarray:
        if self._copy_stream is None:
            return super().alloc_batch(n)
        spec = self.input_spec
        return torch.empty((n, spec.height, spec.width, 3), dtype=torch.uint8, pin_memory=True).numpy()

    def _run(self, images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.module(torch.from_numpy(images)).numpy()

    def submit(self, images: np.ndarray) -> Callable[[], np.ndarray]:
        if self._copy_stream is None:
            return super().submit(images)
        images = self._check(images)
        return self._submit_cuda(images)

    def _submit_cuda(self, images: np.ndarray) -> Callable[[], np.ndarray]:
        host = torch.from_numpy(images)
        if not host.is_pinned():
            host = host.pin_memory()
        compute = torch.cuda.current_stream(self.torch_device)
        with torch.inference_mode():
            with torch.cuda.stream(self._copy_stream):
                batch = host.to(self.torch_device, non_blocking=True)
            compute.wait_stream(self._copy_stream)
            batch.record_stream(compute)
            probs = self.module(batch)
            out = torch.empty(probs.shape, dtype=torch.float32, pin_memory=True)
            out.copy_(probs, non_blocking=True)
            done = torch.cuda.Event()
            done.record(compute)
        keep: list[Any] = [host]  # the pinned source must outlive the asynchronous copy

        def wait() -> np.ndarray:
            done.synchronize()
            keep.clear()
            return out.numpy()

        return wait

    def describe(self) -> str:
        return f"torch on {self.device}" + (" (fp16)" if self._copy_stream is not None else "")
