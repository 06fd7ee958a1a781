"""The torch backend: a checkpoint run in PyTorch, uint8 in, probabilities out.

The checkpoint is folded the way `attrnet export` folds it, so the torch
backend runs the same graph as the exported files.

On CUDA the model runs in fp16 and channels-last, replayed from CUDA graphs
(one per power-of-two batch size up to 256, captured the first time a batch
needs it, on the backend's device whichever device is current;
``cuda_graphs=False`` runs it eagerly), and batches are staged in
pinned host memory and copied on a separate stream (`attrnet.serve.gpu`), so
the copy of one batch overlaps the compute of the previous one.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from attrnet.train.checkpoint import load_model
from attrnet.core.device import resolve_device
from attrnet.core.input_spec import InputSpec
from attrnet.models.net import MultiTaskNet
from attrnet.serve.backend import Backend

__all__ = ["GRAPH_BATCH_SIZES", "serving_module", "TorchBackend"]


def serving_module(net: MultiTaskNet, spec: InputSpec) -> nn.Module:
    """The folded module `attrnet export` emits (BatchNorm, branches and heads folded):
    uint8 ``[N, H, W, 3]`` RGB in, probabilities ``[N, C]`` out."""
    from attrnet.export.fold import fold_model

    folded, _ = fold_model(net, spec, mode="flops")
    return folded.eval()


GRAPH_BATCH_SIZES = tuple(2 ** k for k in range(9))  # 1 .. 256; larger batches run as chunks of 256


class TorchBackend(Backend):
    """A `.safetensors` checkpoint run by PyTorch (fp32 on CPU; fp16, channels-last, CUDA graphs and
    pinned staging on CUDA)."""

    name = "torch"

    def __init__(self, path: Path, device: str = "auto", *, threads: int | None = None, cuda_graphs: bool = True):
        dev = resolve_device(device)
        net, meta = load_model(path, device="cpu")
        super().__init__(path, meta, str(dev))
        module: Callable[[torch.Tensor], torch.Tensor] = serving_module(net, self.input_spec)
        self._stager: Any = None
        self.cuda_graphs = False
        if dev.type == "cuda":
            from attrnet.serve.gpu import CudaGraphRunner, PinnedStager, prepare_module, require_cuda

            dev = require_cuda(dev)  # with its ordinal: the model, graphs, staging and nvjpeg stay on one device
            module = prepare_module(module, dev, torch.float16)
            if cuda_graphs:
                spec = self.input_spec
                module = CudaGraphRunner(module, GRAPH_BATCH_SIZES, torch.float16, device=dev, prepared=True,
                                         image_shape=(spec.height, spec.width), lazy=True)
                self.cuda_graphs = True
            self._stager = PinnedStager(module, dev)
        elif threads:
            torch.set_num_threads(int(threads))
        self.module = module
        self.torch_device = dev

    def _run(self, images: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return self.module(torch.from_numpy(images)).numpy()

    def submit(self, images: np.ndarray) -> Callable[[], np.ndarray]:
        """On CUDA the batch is copied on a side stream and the call returns at once; the waiter syncs."""
        if self._stager is None or not len(images):
            return super().submit(images)
        return self._stager.submit(self._check(images))

    def run_on_device(self, images: "torch.Tensor") -> np.ndarray:
        """Probabilities for a uint8 ``[N, H, W, 3]`` tensor already on this backend's device (nvjpeg path)."""
        with torch.inference_mode():
            return self.module(images).float().cpu().numpy()

    def describe(self) -> str:
        if self._stager is None:
            return f"torch on {self.device}"
        return f"torch on {self.device} (fp16" + (", CUDA graphs)" if self.cuda_graphs else ")")
