"""Synthetic datasets: real formats read back by the real loaders, determinism, planted groups, learnable pixels."""
from __future__ import annotations

import os
import time

import cv2
import numpy as np
import pytest

from attrnet.data import load_index, open_dataset
from attrnet.data.synth import generate
from attrnet.core.errors import InputError
from attrnet.core.imageio import decode_image
from attrnet.core.schema import CELEBA_ATTRIBUTES, read_groups
from attrnet.data.synth.visibility import MODES


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


LABEL_FILE = {"celeba": "list_attr_celeba.txt", "market": "market_attribute.mat", "duke": "duke_attribute.mat",
              "deepfashion": "Anno/list_attr_img.txt"}


@pytest.mark.parametrize("preset", ["celeba", "market", "duke", "deepfashion"])
def test_same_seed_same_dataset_other_seed_differs(tmp_path, monkeypatch, preset):
    for hour, (name, seed) in enumerate((("a", 5), ("b", 5), ("c", 6))):
        # another wall clock per run: nothing written may depend on it (scipy stamps MAT headers)
        monkeypatch.setattr(time, "asctime", lambda *_, h=hour: f"Tue Dec  8 0{h}:00:00 2026")
        generate(preset, tmp_path / name, num=12, seed=seed)
    first = load_index(f"{preset}:{tmp_path / 'a'}").paths[0].relative_to(tmp_path / "a")
    for rel in (LABEL_FILE[preset], "synth_visibility.csv", first):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes(), rel
    assert (tmp_path / "a" / LABEL_FILE[preset]).read_bytes() != (tmp_path / "c" / LABEL_FILE[preset]).read_bytes()


def _visibility(root) -> tuple[list[str], list[str], np.ndarray]:
    rows = (root / "synth_visibility.csv").read_text().splitlines()
    header = rows[0].split(",")
    cells = [r.split(",") for r in rows[1:]]
    return header, [c[0] for c in cells], np.array([[float(v) for v in c[1:]] for c in cells])


@pytest.mark.parametrize("preset", ["celeba", "market", "duke", "deepfashion"])
def test_visibility_file_has_one_row_per_image_and_a_column_per_degraded_group(tmp_path, preset):
    summary = generate(preset, tmp_path, num=40, seed=0)
    header, images, vis = _visibility(tmp_path)
    groups = read_groups(tmp_path / "synth_groups.json")
    assert header[0] == "image" and set(header[1:]) <= set(groups) and len(header) >= 5
    assert len(images) == summary["images"] and all((tmp_path / name).is_file() for name in images)
    assert ((vis >= 0) & (vis <= 1)).all() and (vis < 1).any() and (vis == 1).any()


def test_difficulty_levels_degrade_more_often_and_more_strongly(tmp_path):
    mean = {}
    for level in ("easy", "default", "hard"):
        generate("celeba", tmp_path / level, num=300, seed=0, difficulty=level)
        vis = _visibility(tmp_path / level)[2]
        mean[level] = ((vis < 1).mean(), vis.mean())
    assert mean["easy"][0] < mean["default"][0] < mean["hard"][0]
    assert mean["easy"][1] > mean["default"][1] > mean["hard"][1]


def _edges(img: np.ndarray, box) -> float:
    """Edge energy (mean gradient magnitude) of a region."""
    x0, y0, x1, y1 = box
    gray = cv2.cvtColor(img[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY).astype(np.float32)
    return float(np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0)).mean() + np.abs(cv2.Sobel(gray, cv2.CV_32F, 0, 1)).mean())


def _edge_ratios(render, group: str, degraded_box, other_box, seeds: int = 6) -> tuple[float, float]:
    """Mean edge-energy ratio (group at visibility 0.1 / clean) in the group's box and in another group's box."""
    inside, outside = [], []
    for seed in range(seeds):
        clean = render({}, np.random.default_rng(seed))
        low = render({group: 0.1}, np.random.default_rng(seed))
        inside.append(_edges(low, degraded_box) / _edges(clean, degraded_box))
        outside.append(_edges(low, other_box) / _edges(clean, other_box))
    return float(np.mean(inside)), float(np.mean(outside))


@pytest.mark.parametrize("mode", MODES)
def test_low_visibility_degrades_the_groups_region_only(mode, monkeypatch):
    from attrnet.data.synth import faces, visibility

    real = visibility.degrade
    monkeypatch.setattr(faces, "degrade", lambda img, boxes, vis, rng: real(img, boxes, vis, rng, mode))
    a = {name: name in ("Wavy_Hair", "Bangs", "Blond_Hair", "Eyeglasses", "Smiling") for name in CELEBA_ATTRIBUTES}
    hair, eyes = _edge_ratios(lambda vis, rng: faces.render(a, vis, rng, 64, 64), "hair", (10, 0, 54, 16), (10, 17, 54, 28))
    assert hair < 0.7 and 0.85 < eyes < 1.15, (hair, eyes)


def test_low_visibility_degrades_a_pedestrians_head_only():
    from attrnet.data.synth import people

    person = people.Identity(female=True, long_hair=True, hat=True, up_color="red", down_color="blue", backpack=True)
    head, legs = _edge_ratios(lambda vis, rng: people.render(person, vis, rng, 128, 64), "person",
                              (20, 12, 44, 34), (20, 80, 44, 120), seeds=8)
    assert head < 0.75 and 0.85 < legs < 1.15, (head, legs)


@pytest.mark.parametrize("preset, group", [("celeba", "mouth"), ("deepfashion", "texture")])
def test_noisy_group_flips_the_requested_share_of_that_group_outside_the_test_split(tmp_path, preset, group):
    num = 600 if preset == "celeba" else 800
    generate(preset, tmp_path / "clean", num=num, seed=0)
    generate(preset, tmp_path / "noisy", num=num, seed=0, noisy_group=group, label_noise=0.3)
    members = set(read_groups(tmp_path / "clean" / "synth_groups.json")[group])
    for split in ("train", "val", "test"):
        clean, noisy = (load_index(f"{preset}:{tmp_path / n}").subset(split) for n in ("clean", "noisy"))
        assert [p.name for p in clean.paths] == [p.name for p in noisy.paths]
        for j, name in enumerate(clean.schema.names):
            flipped = (np.nan_to_num(clean.labels[:, j], nan=-1) != np.nan_to_num(noisy.labels[:, j], nan=-1)).mean()
            if name in members and split != "test":
                assert 0.2 < flipped < 0.4, (split, name, flipped)
            else:  # other groups untouched; the test split keeps the true labels
                assert flipped == 0, (split, name)
    assert clean.paths[0].read_bytes() == noisy.paths[0].read_bytes()  # same images: only the labels differ


def test_noisy_group_on_pedestrians_corrupts_that_group(tmp_path):
    import scipy.io

    generate("market", tmp_path / "clean", num=400, seed=0)
    generate("market", tmp_path / "noisy", num=400, seed=0, noisy_group="lower", label_noise=0.3)
    docs = [scipy.io.loadmat(tmp_path / n / "market_attribute.mat")["market_attribute"][0, 0]
            for n in ("clean", "noisy")]
    train = [d["train"][0, 0] for d in docs]
    share = {k: (train[0][k] != train[1][k]).mean() for k in ("down", "clothes", "downblack", "hat", "upblack")}
    assert 0.2 < share["down"] < 0.4 and 0.2 < share["clothes"] < 0.4 and share["downblack"] > 0.05
    assert share["hat"] == 0 and share["upblack"] == 0
    test = [d["test"][0, 0] for d in docs]
    assert all((test[0][k] == test[1][k]).all() for k in ("down", "clothes", "downblack"))  # test labels stay true


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
    ({"difficulty": "brutal"}, r"unknown --difficulty 'brutal' \(choose from none, easy, default, hard\)"),
    ({"noisy_group": "ears"}, r"unknown --noisy-group 'ears' for celeba \(choose from hair, eyes, .*mouth"),
    ({"label_noise": 0.2}, "--label-noise needs --noisy-group"),
    ({"noisy_group": "mouth", "label_noise": 0.7}, "--label-noise must be between 0 and 0.5"),
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
    assert sorted(os.listdir(tmp_path)) == ["bounding_box_test", "bounding_box_train", "duke_attribute.mat", "synth_groups.json",
                                       "synth_visibility.csv"]
    assert len(load_index(f"duke:{tmp_path}").paths) == 8


def test_refuses_a_foreign_non_empty_folder(tmp_path):
    (tmp_path / "precious.txt").write_text("x")
    with pytest.raises(InputError, match="not empty"):
        generate("celeba", tmp_path, num=2)
    assert (tmp_path / "precious.txt").exists()
