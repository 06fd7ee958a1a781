"""nvjpeg decoding for the torch backend on CUDA.

Decode threads only read plain JPEG files (baseline RGB or grayscale, no EXIF
rotation) into bytes; the batch is decoded and resized on the GPU
(`torchvision.io.decode_jpeg(device="cuda")`, via `attrnet.serve.gpu`) and
runs there without a round trip through host memory. Everything else (PNGs,
CMYK or rotated JPEGs) takes the CPU decoder in the same batch. If nvjpeg
rejects a batch, its files are decoded on the CPU one by one, so a corrupt
file is still just an error row.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from attrnet.core.errors import NotAvailableError

from attrnet.core.imageio import JPEG_SUFFIXES
from attrnet.serve.batch import Batch

if TYPE_CHECKING:
    from attrnet.serve.torch_backend import TorchBackend

__all__ = ["GpuJpegDecoder", "plain_jpeg"]

_EXIF_ORIENTATION = 0x0112


def plain_jpeg(data: bytes, max_pixels: int = 64_000_000) -> bool:
    """True for a JPEG nvjpeg decodes exactly as the CPU path does: RGB or grayscale, orientation 1."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.format != "JPEG" or im.mode not in ("RGB", "L"):
                return False
            w, h = im.size
            return 0 < w * h <= max_pixels and int(im.getexif().get(_EXIF_ORIENTATION, 1) or 1) == 1
    except Exception:  # noqa: BLE001 - unreadable: let the CPU decoder produce the error row
        return False


class GpuJpegDecoder:
    """Reads JPEG files for the GPU and runs batches that mix GPU- and CPU-decoded images."""

    def __init__(self, backend: "TorchBackend"):
        dev = getattr(backend, "torch_device", None)
        if backend.name != "torch" or dev is None or dev.type != "cuda":
            raise NotAvailableError("nvjpeg decoding needs the torch backend on a CUDA device")
        from attrnet.serve.gpu import nvjpeg_problem

        why = nvjpeg_problem(dev)
        if why is not None:
            raise NotAvailableError(f"nvjpeg cannot decode JPEGs on {dev} here: {why}")
        self.backend = backend

    def read(self, path: Path) -> bytes | None:
        """The file's bytes if it should be decoded on the GPU, else None (decode it on the CPU)."""
        if path.suffix.lower() not in JPEG_SUFFIXES:
            return None
        data = path.read_bytes()
        return data if plain_jpeg(data) else None

    def submit(self, batch: Batch) -> Callable[[], np.ndarray]:
        """Decode the batch's blobs on the GPU, merge them with its CPU images in row order, run the model."""
        import torch

        from attrnet.core.errors import InputError
        from attrnet.serve.gpu import decode_jpegs_cuda

        backend, spec = self.backend, self.backend.input_spec
        dev = backend.torch_device
        try:
            gpu = decode_jpegs_cuda(batch.blobs, spec, dev)
        except InputError:
            batch.decode_blobs_on_cpu(spec)
            return backend.submit(batch.images)
        full = torch.empty((len(batch.rows), spec.height, spec.width, 3), dtype=torch.uint8, device=dev)
        position = {row: k for k, row in enumerate(batch.rows)}
        if len(batch.cpu_rows):
            idx = torch.tensor([position[r] for r in batch.cpu_rows], device=dev)
            full[idx] = torch.from_numpy(batch.images).to(dev, non_blocking=True)
        idx = torch.tensor([position[r] for r in batch.blob_rows], device=dev)
        full[idx] = gpu
        probs = backend.run_on_device(full)
        return lambda: probs
