"""A folder of images with ``labels.csv`` (the generic format).

    path,Smiling,Eyeglasses,hair_color,split
    imgs/a.jpg,1,0,black,train
    imgs/b.jpg,0,-1,,val

`path` is relative to the folder. A binary column holds 1 (positive), 0
(negative), -1 or empty (missing); a categorical column holds the class name
(empty or -1 = missing). The optional `split` column holds train|val|test
(without it everything is train). Kinds are inferred (a column using only
1/0/-1/empty is binary, any other is categorical with its sorted class names)
unless the folder has a ``schema.json`` (`Schema.to_dict` format), which fixes
the attributes, their kinds and class order.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np

from attrnet.data.index import SPLITS, Index
from attrnet.data.tables import check_files_exist, check_inside, check_unique
from attrnet.core.errors import InputError
from attrnet.core.fileio import read_text_lines
from attrnet.core.schema import Attribute, Schema, binary, categorical

__all__ = ["BINARY_VALUES", "LABELS_FILE", "load", "MISSING", "SCHEMA_FILE"]

LABELS_FILE = "labels.csv"
SCHEMA_FILE = "schema.json"
MISSING = ("", "-1")
BINARY_VALUES = {"1": 1.0, "0": 0.0, "": np.nan, "-1": np.nan}


def _read_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    lines = read_text_lines(path)
    reader = csv.reader(lines)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise InputError("empty file (expected a header starting with 'path')", path, 1) from None
    except csv.Error as exc:
        raise InputError(f"bad CSV: {exc}", path, 1) from None
    if "path" not in header:
        raise InputError("header has no 'path' column", path, 1)
    dup = sorted({h for h in header if header.count(h) > 1})
    if dup:
        raise InputError(f"duplicate column {dup[0]!r}", path, 1)
    rows = []
    try:
        for row in reader:
            if not any(c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise InputError(f"expected {len(header)} fields, found {len(row)}", path, reader.line_num)
            rows.append((reader.line_num, [c.strip() for c in row]))
    except csv.Error as exc:
        raise InputError(f"bad CSV: {exc}", path, reader.line_num) from None
    return header, rows


def _infer_schema(attr_cols: list[str], columns: dict[str, list[str]], line_nos: list[int], path: Path) -> Schema:
    attrs: list[Attribute] = []
    for name in attr_cols:
        values = [v for v in columns[name] if v not in MISSING]
        distinct = set(values)
        if distinct <= {"0", "1"}:
            attrs.append(binary(name))
            continue
        if distinct & {"0", "1"} or len(distinct) < 2:
            k = next(k for k, v in enumerate(columns[name]) if v not in BINARY_VALUES)
            raise InputError(f"column {name!r}: unknown value {columns[name][k]!r} (expected 1, 0, -1 or empty; "
                             f"a categorical column needs 2+ class names, or a {SCHEMA_FILE})", path, line_nos[k])
        attrs.append(categorical(name, sorted(distinct)))
    return Schema(tuple(attrs), "custom")


def _read_schema(path: Path) -> Schema:
    try:
        return Schema.from_dict(json.loads(path.read_text(encoding="utf-8-sig")))
    except json.JSONDecodeError as exc:
        raise InputError(f"invalid JSON: {exc.msg}", path, exc.lineno) from None
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"not a schema: {exc}", path) from None


def _resolve(root: Path, value: str, allow_outside: bool, path: Path, line: int) -> Path:
    if not value:
        raise InputError("empty path", path, line)
    joined = Path(os.path.normpath(os.path.join(root, value)))
    inside = str(joined).startswith(str(root) + os.sep)
    if not allow_outside and (os.path.isabs(value) or not inside):
        raise InputError(f"path {value!r} points outside the folder (allow it with --allow-outside / allow_outside=True)", path, line)
    return joined


def _label_matrix(schema: Schema, columns: dict[str, list[str]], line_nos: list[int], path: Path) -> np.ndarray:
    """float32 ``[rows, num_columns]``: 1/0/NaN, categorical one-hot (all NaN when missing)."""
    labels = np.full((len(line_nos), schema.num_columns), np.nan, np.float32)
    for attr, sl in zip(schema.attributes, schema.slices):
        for k, v in enumerate(columns[attr.name]):
            if attr.kind == "binary":
                if v not in BINARY_VALUES:
                    raise InputError(f"column {attr.name!r}: unknown value {v!r} (expected 1, 0, -1 or empty)", path, line_nos[k])
                labels[k, sl.start] = BINARY_VALUES[v]
            elif v not in MISSING:
                if v not in attr.classes:
                    raise InputError(f"column {attr.name!r}: unknown class {v!r}", path, line_nos[k])
                labels[k, sl] = 0.0
                labels[k, sl.start + attr.classes.index(v)] = 1.0
    return labels


def load(root: Path, allow_outside: bool = False) -> Index:
    root = Path(os.path.abspath(root))
    path = root / LABELS_FILE
    if not path.exists():
        raise InputError(f"missing {LABELS_FILE}", root)
    header, rows = _read_rows(path)
    attr_cols = [h for h in header if h not in ("path", "split")]
    if not attr_cols:
        raise InputError("no attribute columns besides path/split", path, 1)
    columns = {h: [r[header.index(h)] for _, r in rows] for h in header}
    line_nos = [ln for ln, _ in rows]
    schema_path = root / SCHEMA_FILE
    if schema_path.exists():
        schema = _read_schema(schema_path)
        if sorted(schema.names) != sorted(attr_cols):
            raise InputError(f"columns do not match the attributes of {SCHEMA_FILE}", path, 1)
    else:
        schema = _infer_schema(attr_cols, columns, line_nos, path)
    labels = _label_matrix(schema, columns, line_nos, path)
    if "split" in columns:
        for k, s in enumerate(columns["split"]):
            if s not in SPLITS:
                raise InputError(f"unknown split {s!r} (expected train, val or test)", path, line_nos[k])
        splits = np.array(columns["split"], dtype=str)
    else:
        splits = np.full(len(rows), "train")
    paths = [_resolve(root, v, allow_outside, path, line_nos[k]) for k, v in enumerate(columns["path"])]
    check_unique([str(p) for p in paths], line_nos, path)
    check_inside(root, paths, line_nos, path, allow_outside)
    check_files_exist(paths, line_nos, path)
    return Index(schema, "folder", root, paths, splits.astype(str), labels)
