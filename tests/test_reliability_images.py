"""Odd and broken images through decode_image, the training dataset and `attrnet predict`."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

from attrnet.core.errors import InputError
from attrnet.core.imageio import decode_image
from reliability_helpers import (DEFAULT_ONNX, bad_image_files, encode, good_image_files, jpeg_bomb, png_bomb,
                                 rgb, run_cli, write_files)

GOOD = good_image_files()
BAD = bad_image_files()


@pytest.mark.parametrize("name", sorted(GOOD))
def test_odd_valid_image_decodes_to_rgb_uint8(name: str, tmp_path: Path) -> None:
    path = write_files(tmp_path, {name: GOOD[name]})[name]
    for src in (path, GOOD[name]):
        img = decode_image(src)
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3
        assert img.flags["C_CONTIGUOUS"]


def test_sixteen_bit_and_grey_keep_their_values() -> None:
    arr = rgb(24, 20)
    grey = decode_image(GOOD["gray16.png"])
    assert np.array_equal(grey[:, :, 0], arr[:, :, 0]) and np.array_equal(grey[:, :, 2], arr[:, :, 0])
    assert np.array_equal(decode_image(GOOD["rgb16.png"]), arr)
    assert np.array_equal(decode_image(GOOD["gray.png"])[:, :, 1], arr[:, :, 0])


def test_exif_rotation_applied() -> None:
    assert decode_image(GOOD["exif6.jpg"]).shape == (30, 20, 3)  # stored 20x30, orientation 6 = rotate 90


@pytest.mark.parametrize("name", sorted(BAD))
def test_broken_image_is_one_input_error_naming_the_file(name: str, tmp_path: Path) -> None:
    path = write_files(tmp_path, {name: BAD[name]})[name]
    with pytest.raises(InputError) as exc:
        decode_image(path)
    assert str(path) in str(exc.value) and exc.value.reason
    with pytest.raises(InputError):
        decode_image(BAD[name])


@pytest.mark.parametrize("bomb", [png_bomb(), jpeg_bomb()], ids=["png", "jpeg"])
def test_decompression_bomb_refused_before_decoding(bomb: bytes) -> None:
    with pytest.raises(InputError, match="too large"):
        decode_image(bomb)


def test_pixel_limit_is_configurable() -> None:
    data = encode(rgb(100, 100), "PNG")
    assert decode_image(data, max_pixels=10_000).shape == (100, 100, 3)
    with pytest.raises(InputError, match="too large"):
        decode_image(data, max_pixels=9_999)


def test_missing_directory_and_unicode_paths(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        decode_image(tmp_path / "nope.jpg")
    with pytest.raises(InputError, match="directory"):
        decode_image(tmp_path)
    odd = tmp_path / "dír with spaces" / "ünï cödé 画像.JPEG"
    odd.parent.mkdir()
    odd.write_bytes(encode(rgb(8, 8), "JPEG"))
    assert decode_image(odd).shape == (8, 8, 3)
    assert decode_image(str(odd)).shape == (8, 8, 3)


@pytest.mark.skipif(os.geteuid() == 0, reason="running as root: file permissions do not stop reads")
def test_unreadable_file(tmp_path: Path) -> None:
    p = tmp_path / "locked.jpg"
    p.write_bytes(encode(rgb(8, 8), "JPEG"))
    p.chmod(0)
    with pytest.raises(InputError, match="cannot read"):
        decode_image(p)


def _folder_dataset(root: Path, names: list[str]) -> Path:
    lines = ["path,Smiling,split"] + [f"{n},{i % 2},train" for i, n in enumerate(names)]
    (root / "labels.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_training_dataset_items_good_and_bad(tmp_path: Path) -> None:
    from attrnet.data import open_dataset

    write_files(tmp_path / "imgs", {**GOOD, **BAD})
    names = [f"imgs/{n}" for n in sorted(GOOD)] + [f"imgs/{n}" for n in sorted(BAD)]
    ds = open_dataset(f"folder:{_folder_dataset(tmp_path, names)}", "train")
    assert len(ds) == len(names)
    for i, name in enumerate(names):
        if name[5:] in GOOD:
            image, labels = ds[i]
            assert image.shape[0] == 3 and labels.shape == (1,)
        else:
            with pytest.raises(InputError) as exc:
                ds[i]
            assert name[5:] in str(exc.value)


def test_training_skips_bad_images_and_stops_past_the_threshold(tmp_path: Path) -> None:
    """Bad training images are skipped and named; above --max-bad-fraction the run stops with one line."""
    import contextlib
    import io

    import torch

    from attrnet.cli import main

    imgs = {f"g{i:02d}.png": encode(rgb(16, 16, seed=i), "PNG") for i in range(12)}
    imgs.update({"bad_text.jpg": BAD["text.jpg"], "bad_zero.jpg": BAD["zero.jpg"]})
    write_files(tmp_path / "d", imgs)
    lines = ["path,Smiling,split"] + [f"{n},{i % 2},{'val' if n in ('g00.png', 'g01.png') else 'train'}"
                                      for i, n in enumerate(sorted(imgs))]
    (tmp_path / "d" / "labels.csv").write_text("\n".join(lines) + "\n")
    args = ["train", "--data", f"folder:{tmp_path / 'd'}", "--arch", "tiny", "--epochs", "1", "--batch-size", "4",
            "--img-size", "16", "--workers", "0", "--device", "cpu", "--threads", "1"]
    threads = torch.get_num_threads()
    try:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            ok = main(args + ["--out", str(tmp_path / "ok"), "--max-bad-fraction", "0.5"])
        assert ok == 0, err.getvalue()
        assert "bad_text.jpg" in err.getvalue() and "Traceback" not in err.getvalue()
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            stop = main(args + ["--out", str(tmp_path / "stop")])  # default 1%: 2 of 12 is too many
        assert stop in (1, 2) and "Traceback" not in err.getvalue()
        assert err.getvalue().strip().splitlines()[-1].startswith("attrnet: error")
    finally:
        torch.set_num_threads(threads)


def _loop_tree(root: Path) -> Path:
    """Nested folders with unicode/space names, upper-case extensions, a symlink loop, good and bad images."""
    write_files(root / "a" / "b c" / "ü", {"x.JPG": GOOD["UPPER.JPG"], "y.png": GOOD["one.png"]})
    write_files(root, {**GOOD, **BAD})
    (root / "a" / "loop").symlink_to(root, target_is_directory=True)
    (root / "a" / "self").symlink_to(root / "a", target_is_directory=True)
    (root / "a" / "loop.jpg").symlink_to(root / "a" / "loop.jpg")
    (root / "notes.txt").write_text("not an image file type\n")
    return root


def test_predict_cli_turns_every_bad_image_into_an_error_row(tmp_path: Path) -> None:
    root = _loop_tree(tmp_path / "imgs")
    out = tmp_path / "p.csv"
    proc = run_cli(["predict", str(root), "--model", str(DEFAULT_ONNX), "--out", str(out), "--workers", "2",
                    "--threads", "1", "--batch-size", "4"], timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    by_name = {Path(r["path"]).name: r for r in rows}
    assert len(rows) == len(by_name)  # symlink loops not followed, nothing twice
    for name in GOOD:
        assert by_name[name]["error"] == "", (name, by_name[name]["error"])
        assert 0.0 <= float(by_name[name]["Smiling"]) <= 1.0
    for name in BAD:
        assert by_name[name]["error"], name
        assert all(v == "" for k, v in by_name[name].items() if k not in ("path", "error"))
    assert by_name["x.JPG"]["error"] == "" and by_name["y.png"]["error"] == ""
    assert by_name["loop.jpg"]["error"]
    assert "too large" in by_name["bomb.png"]["error"]


def test_predict_single_bad_file_and_empty_folder(tmp_path: Path) -> None:
    bad = write_files(tmp_path, {"t.jpg": BAD["text.jpg"]})["t.jpg"]
    proc = run_cli(["predict", str(bad), "--model", str(DEFAULT_ONNX), "--json", "--threads", "1"])
    assert proc.returncode == 0, proc.stderr
    import json

    doc = json.loads(proc.stdout)
    assert doc["errors"] == 1 and doc["results"][0]["error"]
    (tmp_path / "empty").mkdir()
    proc = run_cli(["predict", str(tmp_path / "empty"), "--model", str(DEFAULT_ONNX)])
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_pixel_limit_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    data = encode(rgb(100, 100), "PNG")
    monkeypatch.setenv("ATTRNET_MAX_PIXELS", "5000")
    with pytest.raises(InputError, match="too large"):
        decode_image(data)
    monkeypatch.setenv("ATTRNET_MAX_PIXELS", "1e4")
    assert decode_image(data).shape == (100, 100, 3)
    monkeypatch.setenv("ATTRNET_MAX_PIXELS", "lots")
    with pytest.raises(InputError, match="ATTRNET_MAX_PIXELS"):
        decode_image(data)
    monkeypatch.setenv("ATTRNET_MAX_PIXELS", "5000")  # predict: an error row, the run goes on
    (tmp_path / "big.png").write_bytes(data)
    (tmp_path / "small.png").write_bytes(encode(rgb(50, 50), "PNG"))
    proc = run_cli(["predict", str(tmp_path), "--model", str(DEFAULT_ONNX), "--out", str(tmp_path / "p.csv"),
                    "--threads", "1"])
    assert proc.returncode == 0, proc.stderr
    rows = {Path(r["path"]).name: r["error"] for r in csv.DictReader((tmp_path / "p.csv").open())}
    assert rows["small.png"] == "" and "too large" in rows["big.png"]


def test_eval_names_a_bad_image_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from attrnet.cli import main
    from attrnet.data.synth import generate

    root = tmp_path / "celeba"
    generate("celeba", root, num=6, seed=0, size=(16, 16))
    attr = (root / "list_attr_celeba.txt").read_text().splitlines()
    part = dict(ln.split() for ln in (root / "list_eval_partition.txt").read_text().splitlines())
    victim = next(ln.split()[0] for ln in attr[2:] if part[ln.split()[0]] == "0")
    (root / "img_align_celeba" / victim).write_bytes(BAD["truncated.jpg"])
    code = main(["eval", str(DEFAULT_ONNX), "--data", f"celeba:{root}", "--split", "train", "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert victim in err and len([ln for ln in err.splitlines() if ln.strip()]) == 1
