"""GPU fast path for the torch backend: reduced precision, channels-last, CUDA graphs, pinned staging, nvjpeg.

Pieces (all need CUDA; constructing them without it raises NotAvailableError):

- `prepare_module(module, device, dtype, channels_last, compile)`: a module
  mapping uint8 ``[N, H, W, 3]`` RGB to probabilities, moved to the GPU in
  fp32/fp16/bf16, channels-last, optionally `torch.compile`d.
- `CudaGraphRunner(module, batch_sizes, dtype)`: one captured CUDA graph per
  batch size with static input/output buffers; ``runner(x)`` takes a uint8
  NHWC tensor on the GPU and returns float32 probabilities ``[N, C]``. A batch
  runs on the smallest size that holds it (padding rows are ignored); batches
  larger than the largest size are split. With ``lazy=True`` a size's graph is
  captured the first time a batch needs it (the torch backend's default:
  powers of two up to 256, so a fixed batch size and its last, shorter batch
  cost two captures).
- `PinnedStager`: pinned host buffers and a copy stream, so the host-to-device
  copy of batch k+1 overlaps the compute of batch k; `submit(np.ndarray)`
  returns a waiter giving the numpy probabilities.
- `decode_jpegs_cuda(blobs, spec)`: nvjpeg decode via
  ``torchvision.io.decode_jpeg(device="cuda")`` plus a resize on the GPU;
  `nvjpeg_problem(device)` says why it cannot be used there (probed once per
  device by decoding a tiny JPEG), or None.

Everything runs on the device it was given: ``"cuda"`` means the device that
is current when the piece is made, and graphs are captured and replayed with
that device current, whichever device the caller has selected.
"""
from __future__ import annotations

import bisect
import io
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from attrnet.core.errors import InputError, NotAvailableError
from attrnet.core.input_spec import InputSpec

__all__ = ["CudaGraphRunner", "decode_jpegs_cuda", "DTYPES", "nvjpeg_available", "nvjpeg_problem",
           "PinnedStager", "prepare_module", "require_cuda", "resize_gpu", "resolve_dtype"]

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def require_cuda(device: str | torch.device = "cuda") -> torch.device:
    """The CUDA device with its ordinal (``cuda`` is the current device), or NotAvailableError saying why not."""
    if not torch.cuda.is_available():
        raise NotAvailableError("CUDA is not available to torch here (no GPU or a CPU-only torch build)")
    dev = torch.device(device)
    if dev.type != "cuda":
        raise NotAvailableError(f"the GPU fast path needs a CUDA device, got {dev}")
    return dev if dev.index is not None else torch.device("cuda", torch.cuda.current_device())


def resolve_dtype(precision: str | torch.dtype) -> torch.dtype:
    """fp32 | fp16 | bf16 (or a torch dtype) -> torch dtype; bf16 needs a GPU that supports it."""
    if isinstance(precision, torch.dtype):
        dtype = precision
    else:
        try:
            dtype = DTYPES[precision]
        except KeyError:
            raise InputError(f"unknown precision {precision!r} for torch (fp32, fp16 or bf16)") from None
    if dtype == torch.bfloat16 and torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
        raise NotAvailableError("this GPU does not support bf16")
    return dtype


class _Cast(nn.Module):
    """Runs `module` under autocast to `dtype` and returns float32 (covers fp32 casts inside the module)."""

    def __init__(self, module: nn.Module, dtype: torch.dtype):
        super().__init__()
        self.module, self.dtype = module, dtype

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.dtype == torch.float32:
            return self.module(images).float()
        # no autocast weight cache: cached casts made while a CUDA graph is captured would be freed after it
        with torch.autocast("cuda", dtype=self.dtype, cache_enabled=False):
            return self.module(images).float()


def prepare_module(module: nn.Module, device: str | torch.device = "cuda", dtype: torch.dtype = torch.float16,
                   channels_last: bool = True, compile: bool = False) -> nn.Module:
    """`module` (uint8 NHWC -> probs) on the GPU in `dtype`, channels-last, optionally compiled.

    Floating parameters and buffers are converted to `dtype`; autocast covers
    activations the module itself casts to float32 (e.g. its input
    normalisation). The result returns float32 probabilities.
    """
    dev = require_cuda(device)
    module = module.eval().to(dev)
    if dtype != torch.float32:
        module = module.to(dtype)
    if channels_last:
        module = module.to(memory_format=torch.channels_last)
    wrapped: nn.Module = _Cast(module, dtype)
    if compile:
        wrapped = torch.compile(wrapped, mode="max-autotune-no-cudagraphs", dynamic=False)
    return wrapped


class CudaGraphRunner:
    """CUDA graphs for fixed batch sizes over a uint8 NHWC -> probs module.

    ``CudaGraphRunner(module, batch_sizes=(1, 8, 32), dtype=torch.float16)``;
    ``runner(x)`` with `x` a uint8 ``[N, H, W, 3]`` CUDA tensor returns float32
    ``[N, C]`` on the GPU (a fresh tensor: later calls do not overwrite it).
    `module` is prepared with `prepare_module` unless `prepared=True`.
    Graphs are captured for every size when the image shape is known, or,
    with `lazy`, for each size the first time a batch runs on it. Warm-up,
    capture and replay run with the runner's device current, on one side
    stream made on that device (left to itself, torch captures on a stream of
    the current device: nothing is recorded, and every replay returns the
    output computed for the blank capture input).
    """

    def __init__(self, module: nn.Module, batch_sizes: Sequence[int], dtype: torch.dtype | str = torch.float16, *,
                 image_shape: tuple[int, int] | None = None, device: str | torch.device = "cuda",
                 channels_last: bool = True, compile: bool = False, prepared: bool = False, warmup: int = 3,
                 lazy: bool = False):
        self.device = require_cuda(device)
        self.dtype = resolve_dtype(dtype)
        sizes = sorted({int(b) for b in batch_sizes})
        if not sizes or sizes[0] < 1:
            raise InputError("CUDA graph batch sizes must be positive integers")
        self.batch_sizes = sizes
        self.module = module if prepared else prepare_module(module, self.device, self.dtype, channels_last, compile)
        self.image_shape = image_shape
        self.warmup = warmup
        self.lazy = lazy
        self._graphs: dict[int, tuple[Any, torch.Tensor, torch.Tensor]] = {}
        self._pool: Any = None
        self._stream = torch.cuda.Stream(self.device)  # every warm-up and capture: one stream, so the pool is shared
        if image_shape is not None:
            self.capture(image_shape)

    def capture(self, image_shape: tuple[int, int]) -> None:
        """Forget the graphs and, unless lazy, capture one per batch size for ``(H, W)`` images (largest first)."""
        self.image_shape = (int(image_shape[0]), int(image_shape[1]))
        self._graphs.clear()
        if not self.lazy:
            for b in sorted(self.batch_sizes, reverse=True):
                self._capture_size(b)

    def _capture_size(self, batch: int) -> None:
        """Warm the module up on the side stream, then capture its graph for `batch` images (sharing one pool).

        Sharing the pool is safe because every replay's output is cloned
        before the next replay on the same stream.
        """
        h, w = self.image_shape
        side = self._stream
        with torch.cuda.device(self.device), torch.inference_mode():
            static_in = torch.zeros((batch, h, w, 3), dtype=torch.uint8, device=self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):  # warm-up (cudnn autotune, lazy init) before the capture
                for _ in range(self.warmup):
                    self.module(static_in)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool, stream=side):
                static_out = self.module(static_in)
            if self._pool is None:
                self._pool = graph.pool()
            self._graphs[batch] = (graph, static_in, static_out)
            torch.cuda.synchronize(self.device)

    def _size_for(self, n: int) -> int:
        i = bisect.bisect_left(self.batch_sizes, n)
        return self.batch_sizes[min(i, len(self.batch_sizes) - 1)]

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[-1] != 3:
            raise InputError(f"expected uint8 [N, H, W, 3] images, got {images.dtype} {list(images.shape)}")
        shape = (int(images.shape[1]), int(images.shape[2]))
        if shape != self.image_shape:
            self.capture(shape)
        outs = []
        # replay() launches on the current device's current stream: make it this runner's device
        with torch.cuda.device(self.device), torch.inference_mode():  # the static buffers are inference tensors
            images = images.to(self.device, non_blocking=True)
            start, n = 0, int(images.shape[0])
            while start < n:
                b = self._size_for(n - start)
                take = min(b, n - start)
                if b not in self._graphs:
                    self._capture_size(b)
                graph, static_in, static_out = self._graphs[b]
                static_in[:take].copy_(images[start:start + take])
                graph.replay()
                outs.append(static_out[:take].clone())
                start += take
        if not outs:
            return torch.empty((0, 0), dtype=torch.float32, device=self.device)
        return outs[0] if len(outs) == 1 else torch.cat(outs)


class PinnedStager:
    """Pinned host staging and a copy stream around a GPU function of uint8 NHWC batches.

    ``submit(images)`` copies the numpy batch into a pinned buffer, starts the
    host-to-device copy on the copy stream, queues `fn` on the compute stream
    behind it and the device-to-host copy of the result, and returns a waiter.
    With `depth` buffers, up to `depth` batches are in flight.
    """

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], device: str | torch.device = "cuda", depth: int = 2):
        self.device = require_cuda(device)
        self.fn = fn
        self.depth = max(1, depth)
        self.copy_stream = torch.cuda.Stream(self.device)
        self._host: list[torch.Tensor | None] = [None] * self.depth
        self._free: list[torch.cuda.Event | None] = [None] * self.depth
        self._slot = 0

    def _host_buffer(self, slot: int, shape: tuple[int, ...]) -> torch.Tensor:
        buf = self._host[slot]
        if buf is None or buf.numel() < int(np.prod(shape)):
            buf = torch.empty(int(np.prod(shape)), dtype=torch.uint8, pin_memory=True)
            self._host[slot] = buf
        return buf[: int(np.prod(shape))].view(shape)

    def submit(self, images: np.ndarray) -> Callable[[], np.ndarray]:
        slot = self._slot
        self._slot = (slot + 1) % self.depth
        if self._free[slot] is not None:
            self._free[slot].synchronize()  # the slot's previous host-to-device copy has finished
        host = self._host_buffer(slot, tuple(images.shape))
        host.numpy()[...] = images
        compute = torch.cuda.current_stream(self.device)
        with torch.inference_mode():
            with torch.cuda.stream(self.copy_stream):
                batch = host.to(self.device, non_blocking=True)
                copied = torch.cuda.Event()
                copied.record(self.copy_stream)
            self._free[slot] = copied
            compute.wait_event(copied)
            batch.record_stream(compute)
            probs = self.fn(batch)
            out = torch.empty(tuple(probs.shape), dtype=torch.float32, pin_memory=True)
            out.copy_(probs, non_blocking=True)
            done = torch.cuda.Event()
            done.record(compute)

        def wait() -> np.ndarray:
            done.synchronize()
            return out.numpy().copy()

        return wait

    def run(self, images: np.ndarray) -> np.ndarray:
        return self.submit(images)()


_NVJPEG_PROBES: dict[int, str | None] = {}  # CUDA ordinal -> why nvjpeg failed there (None: it works)
_PROBE_RGB = (200, 120, 40)  # a flat colour: JPEG keeps it within a few levels


def nvjpeg_problem(device: str | torch.device = "cuda") -> str | None:
    """None when nvjpeg decodes on `device`, else why not.

    The first call for a device decodes a tiny JPEG there (through
    `decode_jpegs_cuda`) and checks its pixels; later calls reuse the answer.
    An import that works is not enough: a driver, library or architecture
    mismatch only shows when a decode runs.
    """
    try:
        dev = require_cuda(device)
    except NotAvailableError as exc:
        return str(exc)
    if dev.index not in _NVJPEG_PROBES:
        _NVJPEG_PROBES[dev.index] = _probe_nvjpeg(dev)
    return _NVJPEG_PROBES[dev.index]


def nvjpeg_available(device: str | torch.device = "cuda") -> bool:
    """True when a probe decode with nvjpeg worked on `device` (see `nvjpeg_problem`)."""
    return nvjpeg_problem(device) is None


def _probe_nvjpeg(dev: torch.device) -> str | None:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), _PROBE_RGB).save(buf, "JPEG", quality=95)
    try:
        got = decode_jpegs_cuda([buf.getvalue()], InputSpec(16, 16), dev).cpu()
    except Exception as exc:  # noqa: BLE001 - no torchvision, a driver or library error: decode on the CPU
        return f"a test decode failed: {type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"
    if tuple(got.shape) != (1, 16, 16, 3) or \
            (got.float().mean(dim=(0, 1, 2)) - torch.tensor(_PROBE_RGB, dtype=torch.float32)).abs().max() > 8:
        return "a test decode gave the wrong pixels"
    return None


def resize_gpu(image: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """uint8 CHW on the GPU -> uint8 HWC at the spec's size (stretch or letterbox, antialiased when shrinking)."""
    from attrnet.core.imageio import LETTERBOX_FILL, letterbox_geometry

    _, h, w = image.shape
    th, tw = spec.height, spec.width
    nh, nw, top, left = letterbox_geometry(h, w, th, tw) if spec.resize == "letterbox" else (th, tw, 0, 0)
    x = image.unsqueeze(0).float()
    if (nh, nw) != (h, w):
        shrink = nh < h or nw < w
        x = F.interpolate(x, size=(nh, nw), mode="bilinear", align_corners=False, antialias=shrink)
    inner = x.round_().clamp_(0, 255).to(torch.uint8)[0].permute(1, 2, 0)
    if (nh, nw) == (th, tw):
        return inner.contiguous()
    out = torch.full((th, tw, 3), LETTERBOX_FILL, dtype=torch.uint8, device=image.device)
    out[top:top + nh, left:left + nw] = inner
    return out


def decode_jpegs_cuda(blobs: Sequence[bytes], spec: InputSpec, device: str | torch.device = "cuda") -> torch.Tensor:
    """nvjpeg-decode JPEG bytes and resize them on the GPU: uint8 ``[N, H, W, 3]`` RGB on `device`.

    EXIF orientation is not applied (nvjpeg ignores it): route images whose
    orientation tag is not 1 through the CPU decoder. The device's current
    stream is synchronised first: torchvision's decoder allocates its outputs
    on that stream but writes them from a private stream that does not wait
    for it (pytorch/vision PR #9606), so memory just freed by work still
    queued there (e.g. a previous batch's probabilities, copy pending) could
    be overwritten.
    """
    from torchvision.io import ImageReadMode, decode_jpeg

    dev = require_cuda(device)
    if not blobs:
        return torch.empty((0, spec.height, spec.width, 3), dtype=torch.uint8, device=dev)
    datas = [torch.frombuffer(bytearray(b), dtype=torch.uint8) for b in blobs]
    torch.cuda.current_stream(dev).synchronize()
    try:
        decoded = decode_jpeg(datas, mode=ImageReadMode.RGB, device=dev)
    except RuntimeError as exc:
        raise InputError(f"nvjpeg could not decode a batch: {str(exc).splitlines()[0]}") from None
    return torch.stack([resize_gpu(img, spec) for img in decoded])
