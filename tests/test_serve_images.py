"""Odd image files through the pipeline: converted to RGB, oriented by EXIF, or an error row (never a crash)."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from attrnet.core.input_spec import InputSpec
from attrnet.serve.pipeline import load_item
from attrnet.serve.predictor import Predictor
from attrnet.serve.sources import Item


@pytest.fixture(scope="module")
def predictor():
    return Predictor(batch_size=4, workers=2, threads=1)  # the shipped default model (ONNX)


def _gradient(h: int = 48, w: int = 32) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([y * 255 // h, x * 255 // w, (y + x) * 255 // (h + w)], axis=2).astype(np.uint8)


def _write_odd_images(folder):
    rgb = _gradient()
    files = {
        "gray.png": Image.fromarray(rgb[:, :, 0], "L"),
        "rgba.png": Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 128, np.uint8)]), "RGBA"),
        "palette.png": Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=16),
        "sixteen.png": Image.fromarray(rgb[:, :, 0].astype(np.uint16) * 257),
        "cmyk.jpg": Image.fromarray(rgb).convert("CMYK"),
        "plain.jpg": Image.fromarray(rgb),
    }
    for name, im in files.items():
        im.save(folder / name)
    good = (folder / "plain.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 3])
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "text.png").write_text("this is not an image\n")
    return sorted(files)


def test_odd_images_are_converted_and_bad_files_become_error_rows(tmp_path, predictor):
    good = _write_odd_images(tmp_path)
    results = {r.source.rsplit("/", 1)[-1]: r for r in predictor.predict(tmp_path)}
    assert len(results) == 9
    for name in good:
        r = results[name]
        assert r.ok, (name, r.error)
        assert len(r.probs) == 40 and all(0.0 <= p <= 1.0 for p in r.probs.values())
        assert set(r.labels) == set(predictor.attributes)
    for name in ("truncated.jpg", "zero.jpg", "text.png"):
        assert results[name].error and not results[name].probs, name
    assert results["zero.jpg"].error == "empty image file"
    assert predictor.stats.errors == 3


def test_converted_pixels_match_the_rgb_original(tmp_path):
    _write_odd_images(tmp_path)
    spec = InputSpec(48, 32)
    ref = _gradient().astype(int)

    def load(name):
        return load_item(Item(name, path=tmp_path / name), spec).astype(int)

    assert np.abs(load("gray.png") - ref[:, :, :1]).max() == 0
    assert np.abs(load("rgba.png") - ref).max() == 0
    assert np.abs(load("sixteen.png") - ref[:, :, :1]).max() <= 1
    assert np.abs(load("cmyk.jpg") - ref).mean() < 6
    palette_rgb = np.asarray(Image.open(tmp_path / "palette.png").convert("RGB")).astype(int)
    assert np.abs(load("palette.png") - palette_rgb).max() == 0


def test_exif_orientation_is_applied(tmp_path):
    upright = _gradient(48, 32)
    stored = np.rot90(upright, k=1)  # what a camera held sideways writes: 32 x 48
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.fromarray(np.ascontiguousarray(stored)).save(tmp_path / "rot.jpg", exif=exif, quality=95)
    img = load_item(Item("rot.jpg", path=tmp_path / "rot.jpg"), InputSpec(48, 32)).astype(int)
    assert np.abs(img - upright.astype(int)).mean() < 4
    assert np.abs(img - np.rot90(upright, 2).astype(int)).mean() > 40


def test_reduced_decode_of_large_jpegs_keeps_the_picture(tmp_path):
    big = np.kron(_gradient(48, 32), np.ones((20, 20, 1), np.uint8))  # 960 x 640
    Image.fromarray(big).save(tmp_path / "big.jpg", quality=95)
    spec = InputSpec(48, 32)
    item = Item("big.jpg", path=tmp_path / "big.jpg")
    reduced, full = load_item(item, spec, reduced=True), load_item(item, spec, reduced=False)
    assert reduced.shape == full.shape == (48, 32, 3)
    assert np.abs(reduced.astype(int) - full.astype(int)).mean() < 3
