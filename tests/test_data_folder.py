"""The generic folder format: images + labels.csv (+ optional schema.json)."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from attrnet.data import dataset_splits, open_dataset
from attrnet.core.errors import InputError
from attrnet.core.schema import Schema, binary, categorical


def _images(root, *names):
    for n in names:
        (root / n).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / n), np.full((12, 10, 3), 50, np.uint8))


def _labels(root, text, bom=False, eol="\n"):
    (root / "labels.csv").write_bytes((("\ufeff" if bom else "") + text.replace("\n", eol)).encode())


def test_binary_categorical_missing_and_splits(tmp_path):
    _images(tmp_path, "a/1.jpg", "a/2.png", "b/3.jpg", "b/4.jpg")
    _labels(tmp_path, "path,Smiling,hair,split\n"
                      "a/1.jpg, 1 ,black,train  \n"
                      "a/2.png,0,,val\n"
                      "b/3.jpg,-1,blond,train\n"
                      "b/4.jpg,,black,train\n\n", bom=True, eol="\r\n")
    assert dataset_splits(f"folder:{tmp_path}") == {"train": 3, "val": 1, "test": 0}
    train = open_dataset(f"folder:{tmp_path}", "train")
    assert train.schema.columns == ["Smiling", "hair=black", "hair=blond"]
    expected = np.array([[1, 1, 0], [np.nan, 0, 1], [np.nan, 1, 0]], np.float32)
    np.testing.assert_array_equal(train.labels, expected)
    assert train.paths[0] == tmp_path / "a/1.jpg"
    val = open_dataset(f"folder:{tmp_path}", "val")
    np.testing.assert_array_equal(val.labels, [[0, np.nan, np.nan]])
    np.testing.assert_allclose(train.positive_rate(), [1.0, 2 / 3, 1 / 3])
    assert len(open_dataset(f"folder:{tmp_path}", "test")) == 0


def test_without_split_column_everything_is_train(tmp_path):
    _images(tmp_path, "x.jpg")
    _labels(tmp_path, "Eyeglasses,path\n1,x.jpg\n")
    assert dataset_splits(f"folder:{tmp_path}") == {"train": 1, "val": 0, "test": 0}
    ds = open_dataset(f"folder:{tmp_path}", "val")
    assert len(ds) == 0 and ds.labels.shape == (0, 1)


def test_schema_json_fixes_kinds_and_class_order(tmp_path):
    _images(tmp_path, "x.jpg")
    _labels(tmp_path, "path,age,hat\nx.jpg,old,1\n")
    schema = Schema((categorical("age", ["young", "adult", "old"]), binary("hat")))
    (tmp_path / "schema.json").write_text(json.dumps(schema.to_dict()))
    ds = open_dataset(f"folder:{tmp_path}")
    assert ds.schema.columns == ["age=young", "age=adult", "age=old", "hat"]
    np.testing.assert_array_equal(ds.labels, [[0, 0, 1, 1]])
    _labels(tmp_path, "path,age,hat\nx.jpg,ancient,1\n")
    with pytest.raises(InputError, match="unknown class 'ancient'") as exc:
        open_dataset(f"folder:{tmp_path}")
    assert exc.value.line == 2


@pytest.mark.parametrize("bad_path", ["../outside.jpg", "a/../../outside.jpg", "/etc/passwd"])
def test_paths_escaping_the_folder_are_rejected(tmp_path, bad_path):
    root = tmp_path / "data"
    _images(tmp_path, "outside.jpg")
    _images(root, "in.jpg")
    _labels(root, f"path,Smiling\nin.jpg,1\n{bad_path},0\n")
    with pytest.raises(InputError, match="points outside the folder") as exc:
        open_dataset(f"folder:{root}")
    assert exc.value.line == 3 and exc.value.path.endswith("labels.csv")


def test_allow_outside_opts_in(tmp_path):
    root = tmp_path / "data"
    _images(tmp_path, "outside.jpg", "outside2.jpg")
    root.mkdir()
    _labels(root, f"path,Smiling\n../outside.jpg,1\n{tmp_path / 'outside2.jpg'},0\n")
    ds = open_dataset(f"folder:{root}", allow_outside=True)
    assert ds.paths == [tmp_path / "outside.jpg", tmp_path / "outside2.jpg"]


@pytest.mark.parametrize("text,line,message", [
    ("path,Smiling\nx.jpg,1,0\n", 2, "expected 2 fields, found 3"),
    ("path,Smiling\nx.jpg,yes\n", 2, "unknown value 'yes'"),
    ("path,Smiling,split\nx.jpg,1,dev\n", 2, "unknown split 'dev'"),
    ("file,Smiling\nx.jpg,1\n", 1, "no 'path' column"),
    ("path,Smiling\nx.jpg,1\nmissing.jpg,0\n", 3, "image not found"),
    ("path,Smiling,Smiling\nx.jpg,1,1\n", 1, "duplicate column"),
])
def test_malformed_labels_name_file_and_line(tmp_path, text, line, message):
    _images(tmp_path, "x.jpg")
    _labels(tmp_path, text)
    with pytest.raises(InputError, match=message) as exc:
        open_dataset(f"folder:{tmp_path}")
    assert exc.value.line == line and exc.value.path.endswith("labels.csv")


def test_missing_labels_file(tmp_path):
    with pytest.raises(InputError, match="missing labels.csv"):
        open_dataset(f"folder:{tmp_path}")
