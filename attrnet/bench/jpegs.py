"""Generated JPEG folders for end-to-end benchmarks (numpy + OpenCV, no torch)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from attrnet.core.errors import AttrnetError

__all__ = ["synthetic_image", "write_jpegs"]


def synthetic_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A BGR uint8 image with smooth gradients, shapes and mild noise, so it compresses like a photo."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([
        128 + 100 * np.sin(xx / rng.uniform(20, 80) + rng.uniform(0, 6)),
        128 + 100 * np.cos(yy / rng.uniform(20, 80) + rng.uniform(0, 6)),
        128 + 100 * np.sin((xx + yy) / rng.uniform(30, 120)),
    ], axis=-1)
    img = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
    for _ in range(6):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(width // 20 + 1, width // 4 + 2)), int(rng.integers(height // 20 + 1, height // 4 + 2)))
        cv2.ellipse(img, center, axes, float(rng.uniform(0, 180)), 0, 360, color, -1)
    return img


def write_jpegs(folder: str | Path, count: int, height: int = 480, width: int = 640,
                quality: int = 90, seed: int = 0, distinct: int = 16) -> list[Path]:
    """Write `count` JPEGs of ``height x width`` into `folder`; returns their paths.

    Only `distinct` different images are generated (the rest are byte copies
    under other names), so large folders are quick to make; decode cost per
    file is the same.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    blobs = []
    for _ in range(max(1, min(distinct, count))):
        ok, buf = cv2.imencode(".jpg", synthetic_image(rng, height, width), [cv2.IMWRITE_JPEG_QUALITY, quality])
        if not ok:
            raise AttrnetError("OpenCV could not encode a JPEG")
        blobs.append(buf.tobytes())
    paths = []
    for i in range(count):
        p = folder / f"img_{i:06d}.jpg"
        p.write_bytes(blobs[i % len(blobs)])
        paths.append(p)
    return paths
