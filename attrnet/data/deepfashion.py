"""DeepFashion, Category and Attribute Prediction benchmark.

    DIR/img/<Item_Folder>/img_00000001.jpg ...
    DIR/Anno/list_attr_cloth.txt     count, header, "<name, may contain spaces>   <type 1-5>"
    DIR/Anno/list_attr_img.txt       count, header, "img/...jpg  <one of 1 -1 0 per attribute>"
    DIR/Eval/list_eval_partition.txt count, header, "img/...jpg  train|val|test"

1 is positive, -1 negative, 0 unknown (missing). Image paths are relative to
DIR. ``list_category_img.txt`` and the bbox/landmark files may be present;
the attribute models do not use them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from attrnet.data.index import SPLITS, Index
from attrnet.data.tables import assign_splits, check_files_exist, check_inside, check_unique, read_count, read_table, table_body
from attrnet.core.errors import InputError
from attrnet.core.fileio import read_text_lines
from attrnet.core.schema import deepfashion_schema

__all__ = ["ATTR_FILE", "ATTRIBUTE_TYPES", "CLOTH_FILE", "load", "PARTITION_FILE", "read_attribute_names",
           "read_partition"]

CLOTH_FILE = "Anno/list_attr_cloth.txt"
ATTR_FILE = "Anno/list_attr_img.txt"
PARTITION_FILE = "Eval/list_eval_partition.txt"
ATTRIBUTE_TYPES = {"1": "texture", "2": "fabric", "3": "shape", "4": "part", "5": "style"}


def read_attribute_names(path: Path) -> list[str]:
    """Attribute names, padding stripped; a repeated name gets a ' (2)' suffix; the type must be 1-5."""
    lines = read_text_lines(path)
    count = read_count(lines, path)
    body = table_body(lines, 2, count, path)
    names: list[str] = []
    for k, line in enumerate(body, 3):
        parts = line.rsplit(None, 1)
        if len(parts) != 2 or parts[1] not in ATTRIBUTE_TYPES:
            raise InputError("expected '<attribute name> <type 1-5>'", path, k)
        name = " ".join(parts[0].split()).replace("=", "-")
        base, n = name, 2
        while name in names:
            name, n = f"{base} ({n})", n + 1
        names.append(name)
    return names


def read_partition(path: Path) -> dict[str, str]:
    lines = read_text_lines(path)
    count = read_count(lines, path)
    out: dict[str, str] = {}
    for k, line in enumerate(table_body(lines, 2, count, path), 3):
        parts = line.split()
        if len(parts) != 2 or parts[1] not in SPLITS:
            raise InputError("expected '<image> train|val|test'", path, k)
        if parts[0] in out:
            raise InputError(f"image {parts[0]!r} listed twice", path, k)
        out[parts[0]] = parts[1]
    return out


def load(root: Path, allow_outside: bool = False) -> Index:
    """Read DeepFashion; image names that leave the folder are refused unless `allow_outside`."""
    names = read_attribute_names(root / CLOTH_FILE)
    schema = deepfashion_schema(names)
    attr_path = root / ATTR_FILE
    _header, images, values = read_table(attr_path, len(names), (1, -1, 0))
    check_unique(images, range(3, 3 + len(images)), attr_path)
    labels = (values > 0).astype(np.float32)
    labels[values == 0] = np.nan
    partition = read_partition(root / PARTITION_FILE)
    splits = assign_splits(images, partition, 3, attr_path, PARTITION_FILE)
    paths = [root / img for img in images]
    check_inside(root, paths, range(3, 3 + len(paths)), attr_path, allow_outside)
    check_files_exist(paths, range(3, 3 + len(paths)), attr_path)
    return Index(schema, "deepfashion", root, paths, splits, labels)
