"""Market-1501 and DukeMTMC-reID loaders on .mat fixtures in the published struct shape."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import scipy.io

from attrnet.data import dataset_splits, open_dataset
from attrnet.core.errors import InputError
from attrnet.core.schema import DUKE_DOWN_COLORS, DUKE_UP_COLORS, MARKET_DOWN_COLORS, MARKET_UP_COLORS

MARKET_BIN = ["backpack", "bag", "handbag", "clothes", "down", "up", "hair", "hat", "gender"]
DUKE_BIN = ["backpack", "bag", "handbag", "boots", "gender", "hat", "shoes", "top"]


def _struct(ids, fields, order):
    d = {k: np.asarray(fields[k], np.float64).reshape(1, -1) for k in order}
    d["image_index"] = np.array(ids, dtype=object).reshape(1, -1)
    return d


def _image(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.zeros((16, 8, 3), np.uint8))


def market_fields(n, up, down, age):
    f = {k: np.ones(n) for k in MARKET_BIN}
    f["age"] = np.asarray(age, float)
    f.update({"up" + c: np.where(np.asarray(up) == k, 2.0, 1.0) for k, c in enumerate(MARKET_UP_COLORS)})
    f.update({"down" + c: np.where(np.asarray(down) == k, 2.0, 1.0) for k, c in enumerate(MARKET_DOWN_COLORS)})
    return f


def write_market(root, train_fields=None):
    train = train_fields or market_fields(2, up=[0, 6], down=[8, 1], age=[1, 3])
    train["backpack"] = np.array([2.0, 1.0])
    train["gender"] = np.array([1.0, 2.0])
    test = market_fields(1, up=[2], down=[0], age=[4])
    test["hat"] = np.array([2.0])
    keys = list(test)
    # the published file stores train and test fields in different orders
    doc = {"test": _struct(["0003"], test, keys),
           "train": _struct(["0002", "0007"], train, [k for k in reversed(keys) if k in train])}
    scipy.io.savemat(str(root / "market_attribute.mat"), {"market_attribute": doc})
    for name in ["0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg", "0007_c1s1_001051_02.jpg"]:
        _image(root / "bounding_box_train" / name)
    (root / "bounding_box_train" / "Thumbs.db").write_bytes(b"\0")  # shipped in the real archive
    for name in ["0003_c1s1_000551_01.jpg", "-1_c1s1_000401_03.jpg", "0000_c3s1_000151_01.jpg"]:
        _image(root / "bounding_box_test" / name)


def test_market_labels_by_identity_and_junk_skipped(tmp_path):
    write_market(tmp_path)
    assert dataset_splits(f"market:{tmp_path}") == {"train": 3, "val": 0, "test": 1}
    ds = open_dataset(f"market:{tmp_path}", "train")
    cols = ds.schema.columns
    assert len(cols) == 30 and ds.schema.names[-3:] == ["age", "upcolor", "downcolor"]
    assert [p.name for p in ds.paths] == ["0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg", "0007_c1s1_001051_02.jpg"]
    row = dict(zip(cols, ds.labels[0]))
    assert row["backpack"] == 1 and row["gender"] == 0 and row["hat"] == 0
    assert row["age=young"] == 1 and row["age=adult"] == 0
    assert row["upcolor=black"] == 1 and row["downcolor=brown"] == 1 and row["downcolor=black"] == 0
    row7 = dict(zip(cols, ds.labels[2]))
    assert row7["backpack"] == 0 and row7["gender"] == 1 and row7["age=adult"] == 1
    assert row7["upcolor=blue"] == 1 and row7["downcolor=white"] == 1
    np.testing.assert_array_equal(ds.labels[0], ds.labels[1])  # same identity, same labels
    test = open_dataset(f"market:{tmp_path}", "test")
    assert [p.name for p in test.paths] == ["0003_c1s1_000551_01.jpg"]
    trow = dict(zip(cols, test.labels[0]))
    assert trow["hat"] == 1 and trow["age=old"] == 1 and trow["upcolor=red"] == 1
    assert len(open_dataset(f"market:{tmp_path}", "val")) == 0


def test_market_ambiguous_colour_is_missing(tmp_path):
    fields = market_fields(2, up=[0, 6], down=[8, 1], age=[1, 3])
    fields["upwhite"] = np.array([2.0, 1.0])  # identity 0002 now has two upper colours
    write_market(tmp_path, fields)
    ds = open_dataset(f"market:{tmp_path}", "train")
    up = ds.schema.slices[ds.schema.index("upcolor")]
    assert np.isnan(ds.labels[0, up]).all() and not np.isnan(ds.labels[2, up]).any()


def test_market_bad_code_and_missing_field(tmp_path):
    fields = market_fields(2, up=[0, 6], down=[8, 1], age=[1, 3])
    fields["age"] = np.array([1.0, 7.0])
    write_market(tmp_path, fields)
    with pytest.raises(InputError, match=r"train.age: value 7 at identity 2") as exc:
        open_dataset(f"market:{tmp_path}")
    assert exc.value.path.endswith("market_attribute.mat")
    fields = market_fields(2, up=[0, 6], down=[8, 1], age=[1, 3])
    del fields["downbrown"]
    write_market(tmp_path, fields)
    with pytest.raises(InputError, match="no field 'downbrown'"):
        open_dataset(f"market:{tmp_path}")


def test_market_missing_pieces(tmp_path):
    (tmp_path / "bounding_box_train").mkdir()
    with pytest.raises(InputError, match="missing market_attribute.mat"):
        open_dataset(f"market:{tmp_path}")
    (tmp_path / "market_attribute.mat").write_bytes(b"garbage")
    with pytest.raises(InputError, match="not a readable .mat"):
        open_dataset(f"market:{tmp_path}")


def write_duke(root):
    f = {k: np.array([2.0, 1.0, 0.0]) for k in DUKE_BIN}
    f.update({"up" + c: np.where(np.array([0, 7, 2]) == k, 2.0, 1.0) for k, c in enumerate(DUKE_UP_COLORS)})
    f.update({"down" + c: np.where(np.array([4, 4, 6]) == k, 2.0, 1.0) for k, c in enumerate(DUKE_DOWN_COLORS)})
    f["downbrown"][2] = 0.0  # unlabelled colour field: no colour is "yes" -> missing
    f["downblue"][2] = 0.0
    doc = {"train": _struct(["0001", "0005", "0012"], f, list(f)), "test": _struct(["0002"], {k: v[:1] for k, v in f.items()}, list(f))}
    scipy.io.savemat(str(root / "duke_attribute.mat"), {"duke_attribute": doc})
    for name in ["0001_c2_f0046182.jpg", "0005_c1_f0000001.jpg", "0012_c8_f0100000.jpg"]:
        _image(root / "bounding_box_train" / name)
    _image(root / "bounding_box_test" / "0002_c3_f0001234.jpg")


def test_duke_zero_is_missing_not_negative(tmp_path):
    (tmp_path / "attribute").mkdir()
    write_duke(tmp_path)
    (tmp_path / "duke_attribute.mat").rename(tmp_path / "attribute" / "duke_attribute.mat")
    ds = open_dataset(f"duke:{tmp_path}", "train")
    assert ds.schema.num_columns == 23 and len(ds) == 3
    b = [ds.schema.columns.index(k) for k in DUKE_BIN]
    np.testing.assert_array_equal(ds.labels[0, b], np.ones(8))
    np.testing.assert_array_equal(ds.labels[1, b], np.zeros(8))
    assert np.isnan(ds.labels[2, b]).all()
    cols = ds.schema.columns
    assert ds.labels[1, cols.index("upcolor=brown")] == 1 and ds.labels[1, cols.index("downcolor=blue")] == 1
    down = ds.schema.slices[ds.schema.index("downcolor")]
    assert np.isnan(ds.labels[2, down]).all()
    rate = ds.positive_rate()
    assert rate[cols.index("backpack")] == 0.5  # the unlabelled identity is not counted
    assert len(open_dataset(f"duke:{tmp_path}", "test")) == 1


def test_images_without_any_annotated_identity(tmp_path):
    write_duke(tmp_path)
    for p in (tmp_path / "bounding_box_test").iterdir():
        p.rename(p.with_name("0999_c1_f0000001.jpg"))
    with pytest.raises(InputError, match="no image in bounding_box_test/ belongs to an identity"):
        open_dataset(f"duke:{tmp_path}")
