"""Synthetic datasets: real formats read back by the real loaders, determinism, planted groups, learnable pixels."""
from __future__ import annotations

import os

import cv2
import numpy as np
import pytest

from attrnet.data import load_index, open_dataset
from attrnet.data.synth import generate
from attrnet.core.errors import InputError
from attrnet.core.imageio import decode_image
from attrnet.core.schema import read_groups


@pytest.fixture(scope="module")
def celeba400(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "celeba"
    generate("celeba", out, num=400, seed=3)
    return load_index(f"celeba:{out}")


@pytest.mark.parametrize("preset,num,train,val,test,columns", [
    ("celeba", 30, 24, 3, 3, 40),
    ("market", 30, 16, 0, 14, 30),
    ("duke", 30, 16, 0, 14, 23),
    ("deepfashion", 30, 21, 4, 5, 33),
])
def test_round_trip_through_the_real_loader(tmp_path, preset, num, train, val, test, columns):
    summary = generate(preset, tmp_path, num=num, seed=1)
    index = load_index(f"{preset}:{tmp_path}")
    assert index.counts() == {"train": train, "val": val, "test": test}
    assert index.schema.num_columns == columns
    groups = read_groups(tmp_path / "synth_groups.json", index.schema)
    assert sorted(a for members in groups.values() for a in members) == sorted(index.schema.names)
    assert len(groups) >= 4
    h, w = (128, 64) if preset in ("market", "duke") else (64, 64)
    assert decode_image(index.paths[0]).shape == (h, w, 3)
    assert summary["images"] >= num and summary["height"] == h


def test_market_writes_junk_and_distractors_that_the_loader_skips(tmp_path):
    summary = generate("market", tmp_path, num=20, seed=0)
    names = os.listdir(tmp_path / "bounding_box_test")
    assert any(n.startswith("-1_") for n in names) and any(n.startswith("0000_") for n in names)
    assert len(load_index(f"market:{tmp_path}").paths) == 20 < summary["images"]


def test_duke_has_unlabelled_entries_as_missing(tmp_path):
    generate("duke", tmp_path, num=80, seed=0)
    ds = open_dataset(f"duke:{tmp_path}", "train")
    binary = ds.labels[:, :8]
    assert np.isnan(binary).any() and not np.isnan(binary).all()


def test_size_option(tmp_path):
    generate("celeba", tmp_path, num=3, seed=0, size=(48, 40))
    assert decode_image(tmp_path / "img_align_celeba" / "000001.jpg").shape == (48, 40, 3)


def test_same_seed_same_dataset_other_seed_differs(tmp_path):
    for name, seed in (("a", 5), ("b", 5), ("c", 6)):
        generate("deepfashion", tmp_path / name, num=12, seed=seed)
    rel = "Anno/list_attr_img.txt"
    img = "img/" + sorted(os.listdir(tmp_path / "a" / "img"))[0]
    img = f"{img}/{sorted(os.listdir(tmp_path / 'a' / img))[0]}"
    a, b, c = ((tmp_path / n / rel).read_bytes() for n in "abc")
    assert a == b and a != c
    assert (tmp_path / "a" / img).read_bytes() == (tmp_path / "b" / img).read_bytes()


def test_positive_rates_are_varied(celeba400):
    rate = np.nanmean(celeba400.labels, axis=0)
    assert rate.min() < 0.12 and rate.max() > 0.6 and rate.std() > 0.15


def test_attributes_correlate_inside_planted_groups(celeba400, tmp_path):
    groups = read_groups(celeba400.root / "synth_groups.json")
    names = celeba400.schema.names
    corr = np.nan_to_num(np.abs(np.corrcoef(celeba400.labels.T)))
    group_of = {a: g for g, members in groups.items() for a in members}
    inside, across = [], []
    for i in range(len(names)):
        for j in range(i + 1, len(names)):
            (inside if group_of[names[i]] == group_of[names[j]] else across).append(corr[i, j])
    assert np.mean(inside) > 2 * np.mean(across)


def _probe(index, names, n_train):
    """Balanced accuracy of a ridge regression on 16x16 pixels: attributes must be visible."""
    x = np.stack([cv2.resize(cv2.imread(str(p)), (16, 16), interpolation=cv2.INTER_AREA).ravel() for p in index.paths])
    x = x.astype(np.float64) / 255
    x = np.hstack([x - x[:n_train].mean(0), np.ones((len(x), 1))])
    y = np.nan_to_num(index.labels.astype(np.float64), nan=0.5)
    w = np.linalg.solve(x[:n_train].T @ x[:n_train] + 3 * np.eye(x.shape[1]), x[:n_train].T @ y[:n_train])
    pred = x[n_train:] @ w > y[:n_train].mean(0)
    out = {}
    for name in names:
        j = index.schema.columns.index(name)
        truth = index.labels[n_train:, j]
        out[name] = 0.5 * (pred[truth == 1, j].mean() + (~pred[truth == 0, j]).mean())
    return out


def test_easy_face_attributes_are_visible_in_the_pixels(celeba400):
    acc = _probe(celeba400, ["Wearing_Necktie", "Wearing_Lipstick", "Blond_Hair", "Mouth_Slightly_Open"], 300)
    assert min(acc.values()) > 0.7, acc


def test_pedestrian_colours_are_visible_in_the_pixels(tmp_path):
    generate("market", tmp_path, num=200, seed=2)
    acc = _probe(load_index(f"market:{tmp_path}"), ["upcolor=black", "upcolor=white", "downcolor=blue"], 100)
    assert min(acc.values()) > 0.7, acc


@pytest.mark.parametrize("kwargs,message", [
    ({"preset": "imagenet"}, "unknown preset"),
    ({"num": 0}, "--num must be at least 1"),
    ({"seed": -1}, "--seed must be non-negative"),
])
def test_bad_arguments(tmp_path, kwargs, message):
    args = {"preset": "celeba", "out": tmp_path, "num": 2, "seed": 0} | kwargs
    with pytest.raises(InputError, match=message):
        generate(**args)


def test_output_must_be_a_folder(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        generate("celeba", tmp_path / "file", num=2)


def test_rerun_replaces_an_earlier_synthetic_dataset(tmp_path):
    generate("market", tmp_path, num=40, seed=0)
    generate("duke", tmp_path, num=8, seed=1)
    assert sorted(os.listdir(tmp_path)) == ["bounding_box_test", "bounding_box_train", "duke_attribute.mat", "synth_groups.json"]
    assert len(load_index(f"duke:{tmp_path}").paths) == 8


def test_refuses_a_foreign_non_empty_folder(tmp_path):
    (tmp_path / "precious.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        generate("celeba", tmp_path, num=2)
    assert (tmp_path / "precious.txt").exists()
