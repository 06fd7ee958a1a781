"""CelebA in torchvision's layout.

    DIR/img_align_celeba/000001.jpg ...
    DIR/list_attr_celeba.txt       count line, 40 names, rows "000001.jpg -1  1 ..."
    DIR/list_eval_partition.txt    rows "000001.jpg 0" (0 train, 1 val, 2 test)

``DIR/celeba/`` (where torchvision downloads to) is accepted as well. The
bbox, landmark and identity files may be present; they are not needed.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from attrnet.data.index import Index
from attrnet.data.tables import assign_splits, check_files_exist, check_inside, check_unique, read_table
from attrnet.core.errors import InputError
from attrnet.core.fileio import read_text_lines
from attrnet.core.schema import CELEBA_ATTRIBUTES, celeba_schema

__all__ = ["ATTR_FILE", "find_root", "IMAGE_DIR", "load", "PARTITION_FILE", "PARTITIONS", "read_attributes",
           "read_partition"]

ATTR_FILE = "list_attr_celeba.txt"
PARTITION_FILE = "list_eval_partition.txt"
IMAGE_DIR = "img_align_celeba"
PARTITIONS = {"0": "train", "1": "val", "2": "test"}


def find_root(root: Path) -> Path:
    if not (root / ATTR_FILE).exists() and (root / "celeba" / ATTR_FILE).exists():
        return root / "celeba"
    return root


def read_attributes(path: Path) -> tuple[list[str], np.ndarray]:
    """Image names and a {0, 1} uint8 matrix in the preset's column order."""
    header_line, names, values = read_table(path, len(CELEBA_ATTRIBUTES), (1, -1))
    header = header_line.split()
    unknown = [h for h in header if h not in CELEBA_ATTRIBUTES]
    if unknown or len(header) != len(CELEBA_ATTRIBUTES) or len(set(header)) != len(header):
        detail = f"unknown attribute {unknown[0]!r}" if unknown else f"{len(header)} names"
        raise InputError(f"expected CelebA's 40 attribute names, got {detail}", path, 2)
    order = [header.index(a) for a in CELEBA_ATTRIBUTES]
    return names, (values[:, order] > 0).astype(np.uint8)


def read_partition(path: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, line in enumerate(read_text_lines(path), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or parts[1] not in PARTITIONS:
            raise InputError("expected '<image> <0|1|2>'", path, k)
        if parts[0] in out:
            raise InputError(f"image {parts[0]!r} listed twice", path, k)
        out[parts[0]] = PARTITIONS[parts[1]]
    return out


def load(root: Path, allow_outside: bool = False) -> Index:
    """Read CelebA; image names that leave the folder are refused unless `allow_outside`."""
    root = find_root(root)
    attr_path = root / ATTR_FILE
    names, values = read_attributes(attr_path)
    check_unique(names, range(3, 3 + len(names)), attr_path)
    part_path = root / PARTITION_FILE
    partition = read_partition(part_path)
    splits = assign_splits(names, partition, 3, attr_path, PARTITION_FILE)
    image_dir = root / IMAGE_DIR
    if not image_dir.is_dir():
        raise InputError(f"missing image folder {IMAGE_DIR}/", root)
    paths = [image_dir / n for n in names]
    check_inside(root, paths, range(3, 3 + len(paths)), attr_path, allow_outside)
    check_files_exist(paths, range(3, 3 + len(paths)), attr_path)
    return Index(celeba_schema(), "celeba", root, paths, splits, values.astype(np.float32))
