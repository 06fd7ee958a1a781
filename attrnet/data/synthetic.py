"""`attrnet data synth`: procedural attribute datasets written in the real benchmark formats.

Faces (celeba), pedestrians (market, duke) and garments (deepfashion), with
visible attributes in planted, internally correlated groups of different
difficulty. The grouping is saved as ``synth_groups.json`` (groups-file
format). Output is deterministic for a given seed: labels come from one
generator seeded with `seed`, image i from one seeded with ``(seed, i)``.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np

from attrnet.errors import InputError
from attrnet.fileio import atomic_write_bytes, atomic_write_text
from attrnet.schema import CELEBA_ATTRIBUTES, write_groups

PRESETS = ("celeba", "market", "duke", "deepfashion")
DEFAULT_SIZE = {"celeba": (64, 64), "market": (128, 64), "duke": (128, 64), "deepfashion": (64, 64)}
GROUPS_FILE = "synth_groups.json"
Progress = Callable[[int, int], None]


def generate(
    preset: str,
    out: str | Path,
    num: int = 2000,
    seed: int = 0,
    size: tuple[int, int] | None = None,
    progress: Progress | None = None,
) -> dict:
    """Write a synthetic dataset of about `num` images to `out`; returns a summary dict."""
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    if num < 1:
        raise InputError(f"--num must be at least 1, got {num}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError("output exists and is not a folder", out)
    height, width = size or DEFAULT_SIZE[preset]
    start = time.perf_counter()
    writer = _WRITERS[preset]
    groups, images = writer(preset, out, num, seed, height, width, progress or (lambda done, total: None))
    write_groups(out / GROUPS_FILE, groups)
    seconds = time.perf_counter() - start
    return {"preset": preset, "out": str(out), "images": images, "height": height, "width": width,
            "seed": seed, "seconds": round(seconds, 3), "images_per_second": round(images / max(seconds, 1e-9), 1)}


def _image_rng(seed: int, i: int) -> np.random.Generator:
    return np.random.default_rng((seed, i))


def _write_celeba(preset, out: Path, num, seed, height, width, progress) -> tuple[dict, int]:
    from attrnet.data import celeba, synth_faces
    from attrnet.data.synth_common import encode_jpeg, groups_of

    rng = np.random.default_rng(seed)
    truth, labels = synth_faces.sample_labels(rng, num)
    names = [f"{i + 1:06d}.jpg" for i in range(num)]
    image_dir = out / celeba.IMAGE_DIR
    image_dir.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        a = {k: bool(v[i]) for k, v in truth.items()}
        atomic_write_bytes(image_dir / name, encode_jpeg(synth_faces.render(a, _image_rng(seed, i), height, width)))
        progress(i + 1, num)
    matrix = np.stack([np.where(labels[a], 1, -1) for a in CELEBA_ATTRIBUTES], axis=1)
    rows = [f"{num}", " ".join(CELEBA_ATTRIBUTES) + " "]
    rows += [name + "".join(f"{v:>3d}" for v in matrix[i]) for i, name in enumerate(names)]
    atomic_write_text(out / celeba.ATTR_FILE, "\n".join(rows) + "\n")
    parts = _split_codes(num, (0.8, 0.1, 0.1))
    atomic_write_text(out / celeba.PARTITION_FILE, "".join(f"{n} {p}\n" for n, p in zip(names, parts)))
    return groups_of(synth_faces.SPECS), num


def _split_codes(n: int, fractions: tuple[float, float, float]) -> list[int]:
    """Contiguous train/val/test ranges (0/1/2), like CelebA's partition."""
    n_train = int(round(n * fractions[0]))
    n_val = int(round(n * fractions[1]))
    if n >= 3:
        n_train, n_val = max(1, min(n_train, n - 2)), max(1, n_val)
    return [0 if i < n_train else 1 if i < n_train + n_val else 2 for i in range(n)]


_WRITERS = {"celeba": _write_celeba}
