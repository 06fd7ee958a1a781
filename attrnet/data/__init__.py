"""Dataset loaders: CelebA, Market-1501, DukeMTMC-reID, DeepFashion and image folders.

``open_dataset("celeba:/data/celeba", "train")`` returns an `AttributeDataset`
(a torch Dataset); `load_index` and `dataset_splits` work without importing torch.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from attrnet.data.index import Index
from attrnet.core.errors import InputError

if TYPE_CHECKING:
    from attrnet.data.base import AttributeDataset

__all__ = ["AttributeDataset", "FORMATS", "dataset_splits", "load_index", "open_dataset", "parse_spec"]

FORMATS = ("celeba", "market", "duke", "deepfashion", "folder")
ALLOW_OUTSIDE_ENV = "ATTRNET_ALLOW_OUTSIDE"


def outside_allowed(allow_outside: bool | None) -> bool:
    """`allow_outside`, or when None the environment: ATTRNET_ALLOW_OUTSIDE=1 opts every command in."""
    if allow_outside is not None:
        return allow_outside
    return os.environ.get(ALLOW_OUTSIDE_ENV, "").strip().lower() in ("1", "true", "yes")


def parse_spec(spec: str) -> tuple[str, Path]:
    """Split ``format:path``; the folder must exist."""
    fmt, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise InputError(f"data spec must be FORMAT:PATH with FORMAT one of {', '.join(FORMATS)}, got {spec!r}")
    if fmt not in FORMATS:
        raise InputError(f"unknown data format {fmt!r} (choose from {', '.join(FORMATS)})")
    root = Path(rest).expanduser()
    if not root.is_dir():
        raise InputError("data folder not found", root)
    return fmt, root


def load_index(spec: str, *, allow_outside: bool | None = None) -> Index:
    """Read a whole dataset (every split) from ``format:path``.

    Image paths that leave the dataset folder (``..``, absolute, symlinks out of
    it) are refused unless `allow_outside` (None: the ATTRNET_ALLOW_OUTSIDE
    environment variable decides).
    """
    fmt, root = parse_spec(spec)
    allow_outside = outside_allowed(allow_outside)
    if fmt == "celeba":
        from attrnet.data import celeba

        return celeba.load(root, allow_outside=allow_outside)
    if fmt in ("market", "duke"):
        from attrnet.data import pedestrian

        return pedestrian.load(fmt, root, allow_outside=allow_outside)
    if fmt == "deepfashion":
        from attrnet.data import deepfashion

        return deepfashion.load(root, allow_outside=allow_outside)
    from attrnet.data import folder

    return folder.load(root, allow_outside=allow_outside)


def open_dataset(
    spec: str,
    split: str = "train",
    transform: Callable[[Any], Any] | None = None,
    *,
    allow_outside: bool | None = None,
    reduce_to: tuple[int, int] | None = None,
) -> AttributeDataset:
    """One split ("train", "val" or "test") of the dataset ``format:path``; it may be empty.

    `reduce_to` (the model input size) allows reduced-size JPEG decoding, see `AttributeDataset`.
    """
    return load_index(spec, allow_outside=allow_outside).subset(split, transform, reduce_to)


def dataset_splits(spec: str, *, allow_outside: bool | None = None) -> dict[str, int]:
    """Number of images in each split of ``format:path``."""
    return load_index(spec, allow_outside=allow_outside).counts()


def __getattr__(name: str) -> Any:
    if name == "AttributeDataset":
        from attrnet.data.base import AttributeDataset

        return AttributeDataset
    raise AttributeError(f"module 'attrnet.data' has no attribute {name!r}")
