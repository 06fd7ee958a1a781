"""Training skips unreadable images, counts them, and stops only past --max-bad-fraction."""
import csv

import numpy as np
from PIL import Image

from attrnet.train.checkpoint import load_model
from attrnet.cli import main


def _folder(root, n=40, bad=0):
    root.mkdir()
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        name = f"{i:03d}.png"
        if i < bad:
            (root / name).write_bytes(b"not an image at all")
        else:
            Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / name)
        rows.append({"path": name, "split": "train", "a": i % 2, "b": (i // 2) % 2})
    with (root / "labels.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "split", "a", "b"])
        w.writeheader()
        w.writerows(rows)


def _train(data, out, *extra):
    return main(["train", "--data", f"folder:{data}", "--out", str(out), "--arch", "tiny", "--epochs", "1",
                 "--batch-size", "8", "--img-size", "16", "--workers", "0", "--threads", "1",
                 "--val-fraction", "0", *extra])


def test_a_few_bad_images_are_skipped_and_counted(tmp_path, capsys):
    _folder(tmp_path / "d", bad=2)
    assert _train(tmp_path / "d", tmp_path / "run", "--max-bad-fraction", "0.1") == 0
    err = capsys.readouterr().err
    assert "skipping unreadable image" in err and "000.png" in err
    assert "skipped 2 of" in err
    load_model(tmp_path / "run" / "best.safetensors")


def test_too_many_bad_images_stop_the_run_with_one_line(tmp_path, capsys):
    _folder(tmp_path / "d", bad=10)
    assert _train(tmp_path / "d", tmp_path / "run") == 1
    err = capsys.readouterr().err
    assert "could not be used in epoch 1, more than --max-bad-fraction 0.01" in err
    assert "Traceback" not in err


def test_max_bad_fraction_is_validated(tmp_path, capsys):
    _folder(tmp_path / "d")
    assert _train(tmp_path / "d", tmp_path / "run", "--max-bad-fraction", "2") == 2


def test_allow_outside_opts_in_to_paths_outside_the_dataset(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("ATTRNET_ALLOW_OUTSIDE", "0")  # --allow-outside sets it; removed again after the test
    _folder(tmp_path / "d")
    outside = tmp_path / "elsewhere.png"
    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save(outside)
    with (tmp_path / "d" / "labels.csv").open("a") as f:
        f.write("../elsewhere.png,train,1,0\n")
    assert _train(tmp_path / "d", tmp_path / "run") == 2
    assert "points outside the folder (allow it with --allow-outside" in capsys.readouterr().err
    assert _train(tmp_path / "d", tmp_path / "run", "--allow-outside") == 0
