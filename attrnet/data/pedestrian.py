"""Market-1501 and DukeMTMC-reID with their attribute annotations (Lin et al.).

    DIR/bounding_box_train/0002_c1s1_000451_03.jpg ...   (Duke: 0001_c2_f0046182.jpg)
    DIR/bounding_box_test/...
    DIR/market_attribute.mat   (or duke_attribute.mat; also accepted in DIR/attribute/)

The .mat holds a struct (``market_attribute`` / ``duke_attribute``) with
fields ``train`` and ``test``; each is a struct with one 1xN field per
annotated attribute plus ``image_index`` (cell of 4-digit identity strings).
Labels are per identity and coded 1/2 (2 = positive, see `attrnet.core.schema`);
Duke uses 0 for "unlabelled", which becomes missing. Fields are read by
name, so their order (which differs between train and test) does not matter.
Images of identities -1 and 0000 (junk, distractors) and of identities
without annotations are left out. Neither benchmark has a validation split.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from attrnet.data.index import Index
from attrnet.data.tables import check_inside
from attrnet.core.errors import InputError
from attrnet.core.schema import Schema, duke_schema, market_schema

__all__ = ["find_mat", "identity_labels", "JUNK_IDS", "load", "mat_name", "read_mat", "schema_for",
           "SPLIT_DIRS"]

JUNK_IDS = ("-1", "0000")
SPLIT_DIRS = {"train": "bounding_box_train", "test": "bounding_box_test"}


def mat_name(fmt: str) -> str:
    return f"{fmt}_attribute.mat"


def schema_for(fmt: str) -> Schema:
    return market_schema() if fmt == "market" else duke_schema()


def find_mat(fmt: str, root: Path) -> Path:
    for candidate in (root / mat_name(fmt), root / "attribute" / mat_name(fmt)):
        if candidate.is_file():
            return candidate
    raise InputError(f"missing {mat_name(fmt)} (expected in the folder or its attribute/ subfolder)", root)


def read_mat(fmt: str, path: Path) -> dict[str, Any]:
    """The ``train`` and ``test`` structs of an attribute .mat file."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(str(path), struct_as_record=False, squeeze_me=True)
    except NotImplementedError:
        raise InputError("MATLAB v7.3 (HDF5) files are not supported; save it with -v7", path) from None
    except Exception as exc:  # noqa: BLE001 - scipy raises many types for corrupt files
        raise InputError(f"not a readable .mat file: {exc}", path) from None
    top = mat.get(f"{fmt}_attribute")
    if top is None:
        top = next((v for k, v in mat.items() if not k.startswith("__") and _fields(v) >= {"train", "test"}), None)
    if top is None or not _fields(top) >= {"train", "test"}:
        raise InputError(f"expected a struct {fmt}_attribute with fields train and test", path)
    return {"train": top.train, "test": top.test}


def _fields(obj: Any) -> set[str]:
    return set(getattr(obj, "_fieldnames", None) or ())


def _identity_ids(struct: Any, split: str, path: Path) -> list[str]:
    if "image_index" not in _fields(struct):
        raise InputError(f"{split} struct has no image_index field", path)
    ids = []
    for v in np.atleast_1d(struct.image_index).ravel():
        text = str(v).strip()
        ids.append(text.zfill(4) if text.isdigit() else text)
    return ids


def _field(struct: Any, name: str, n: int, split: str, path: Path) -> np.ndarray:
    if name not in _fields(struct):
        raise InputError(f"{split} struct has no field {name!r}", path)
    values = np.atleast_1d(np.asarray(getattr(struct, name), dtype=np.float64)).ravel()
    if values.shape[0] != n:
        raise InputError(f"{split}.{name} has {values.shape[0]} values for {n} identities", path)
    return values


def _check_codes(values: np.ndarray, allowed: range, name: str, split: str, path: Path) -> None:
    bad = ~np.isin(values, np.asarray(list(allowed), dtype=np.float64))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"{split}.{name}: value {values[i]:g} at identity {i + 1} (expected {allowed.start}..{allowed.stop - 1}, 0 = unlabelled)", path
        )


def identity_labels(fmt: str, struct: Any, split: str, path: Path) -> tuple[list[str], np.ndarray]:
    """Identity ids and their label rows over the schema's output columns."""
    schema = schema_for(fmt)
    ids = _identity_ids(struct, split, path)
    n = len(ids)
    labels = np.full((n, schema.num_columns), np.nan, np.float32)
    for attr, sl in zip(schema.attributes, schema.slices):
        if attr.kind == "binary":
            v = _field(struct, attr.name, n, split, path)
            _check_codes(v, range(0, 3), attr.name, split, path)
            labels[:, sl.start] = np.where(v == 0, np.nan, v - 1)
        elif attr.name == "age":
            v = _field(struct, "age", n, split, path)
            _check_codes(v, range(0, len(attr.classes) + 1), "age", split, path)
            known = v > 0
            labels[known, sl] = np.eye(len(attr.classes), dtype=np.float32)[v[known].astype(int) - 1]
        else:
            prefix = "up" if attr.name == "upcolor" else "down"
            yes = []
            for c in attr.classes:
                v = _field(struct, prefix + c, n, split, path)
                _check_codes(v, range(0, 3), prefix + c, split, path)
                yes.append(v == 2)
            yes_m = np.stack(yes, axis=1)
            one = yes_m.sum(axis=1) == 1
            labels[one, sl] = yes_m[one].astype(np.float32)
    return ids, labels


def load(fmt: str, root: Path, allow_outside: bool = False) -> Index:
    """Read Market/Duke; image files symlinked from outside the folder are refused unless `allow_outside`."""
    mat_path = find_mat(fmt, root)
    structs = read_mat(fmt, mat_path)
    paths: list[Path] = []
    splits: list[str] = []
    rows: list[np.ndarray] = []
    for split, dirname in SPLIT_DIRS.items():
        ids, labels = identity_labels(fmt, structs[split], split, mat_path)
        row_of = {pid: k for k, pid in enumerate(ids)}
        folder = root / dirname
        if not folder.is_dir():
            raise InputError(f"missing image folder {dirname}/", root)
        names = sorted(n for n in os.listdir(folder) if n.lower().endswith((".jpg", ".jpeg", ".png")))
        matched = 0
        for name in names:
            pid = name.split("_", 1)[0]
            if pid in JUNK_IDS or pid not in row_of:
                continue
            paths.append(folder / name)
            splits.append(split)
            rows.append(labels[row_of[pid]])
            matched += 1
        if names and ids and not matched:
            raise InputError(f"no image in {dirname}/ belongs to an identity of {split} in {mat_path.name}", folder)
    check_inside(root, paths, [None] * len(paths), root, allow_outside)
    schema = schema_for(fmt)
    matrix = np.stack(rows).astype(np.float32) if rows else np.zeros((0, schema.num_columns), np.float32)
    return Index(schema, fmt, root, paths, np.array(splits, dtype=str), matrix)
