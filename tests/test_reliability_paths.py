"""Paths from data files that escape their root: refused by every loader and by predict's list files."""
from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import pytest

from attrnet.data import load_index
from attrnet.core.errors import InputError
from reliability_helpers import DEFAULT_ONNX, encode, rgb, run_cli


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from attrnet.data.synth import generate

    base = tmp_path_factory.mktemp("synth")
    for preset in ("celeba", "deepfashion", "market"):
        generate(preset, base / preset, num=8, seed=0, size=(8, 8))
    return base


def _copy(src: Path, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of a dataset under tmp_path/ds and an image file outside it."""
    root = tmp_path / "ds"
    shutil.copytree(src, root)
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(encode(rgb(8, 8), "JPEG"))
    return root, outside


def _rename_first_image(listing: Path, others: list[Path], old: str, new: str) -> None:
    for f in [listing, *others]:
        f.write_text(f.read_text().replace(old, new, 1))


def _refused_then_allowed(spec: str, needle: str = "outside") -> None:
    with pytest.raises(InputError, match=needle) as exc:
        load_index(spec)
    assert exc.value.path is not None
    index = load_index(spec, allow_outside=True)
    assert len(index.paths) > 0


ESCAPES = ["dotdot", "absolute", "symlink_file", "symlink_dir"]


def _escape(kind: str, root: Path, image_dir: Path, first: str, outside: Path, files: list[Path]) -> None:
    """Make the first listed image (`first`, relative to `image_dir`) lead outside `root`."""
    if kind == "dotdot":
        rel = os.path.relpath(outside, image_dir)
        _rename_first_image(files[0], files[1:], first, rel)
    elif kind == "absolute":
        _rename_first_image(files[0], files[1:], first, str(outside))
    elif kind == "symlink_file":
        (image_dir / first).unlink()
        (image_dir / first).symlink_to(outside)
    else:  # the folder holding the first image is a symlink to a folder outside
        folder = (image_dir / first).parent
        moved = root.parent / "moved_images"
        shutil.move(str(folder), moved)
        folder.symlink_to(moved, target_is_directory=True)


@pytest.mark.parametrize("kind", ESCAPES)
def test_celeba_escapes(synth: Path, tmp_path: Path, kind: str) -> None:
    root, outside = _copy(synth / "celeba", tmp_path)
    _escape(kind, root, root / "img_align_celeba", "000001.jpg", outside,
            [root / "list_attr_celeba.txt", root / "list_eval_partition.txt"])
    _refused_then_allowed(f"celeba:{root}")


@pytest.mark.parametrize("kind", ESCAPES)
def test_deepfashion_escapes(synth: Path, tmp_path: Path, kind: str) -> None:
    root, outside = _copy(synth / "deepfashion", tmp_path)
    attr = root / "Anno" / "list_attr_img.txt"
    first = attr.read_text().splitlines()[2].split()[0]
    _escape(kind, root, root, first, outside, [attr, root / "Eval" / "list_eval_partition.txt"])
    _refused_then_allowed(f"deepfashion:{root}")


@pytest.mark.parametrize("kind", ["symlink_file", "symlink_dir"])
def test_market_symlinked_images(synth: Path, tmp_path: Path, kind: str) -> None:
    root, outside = _copy(synth / "market", tmp_path)
    folder = root / "bounding_box_train"
    first = sorted(n for n in os.listdir(folder) if n.endswith(".jpg"))[0]
    _escape(kind, root, folder, first, outside, [])
    _refused_then_allowed(f"market:{root}")


@pytest.mark.parametrize("kind", ESCAPES)
def test_folder_escapes(tmp_path: Path, kind: str) -> None:
    root = tmp_path / "ds"
    (root / "imgs").mkdir(parents=True)
    for i in range(3):
        (root / "imgs" / f"{i}.png").write_bytes(encode(rgb(8, 8, seed=i), "PNG"))
    labels = root / "labels.csv"
    labels.write_text("path,Smiling\n" + "".join(f"imgs/{i}.png,{i % 2}\n" for i in range(3)))
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(encode(rgb(8, 8), "JPEG"))
    _escape(kind, root, root, "imgs/0.png", outside, [labels])
    _refused_then_allowed(f"folder:{root}")


def test_root_given_through_a_symlink_is_fine(synth: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(synth / "celeba", target_is_directory=True)
    assert len(load_index(f"celeba:{link}").paths) == 8


def test_data_info_cli_refuses_and_opts_in(synth: Path, tmp_path: Path) -> None:
    root, outside = _copy(synth / "celeba", tmp_path)
    _escape("dotdot", root, root / "img_align_celeba", "000001.jpg", outside,
            [root / "list_attr_celeba.txt", root / "list_eval_partition.txt"])
    proc = run_cli(["data", "info", f"celeba:{root}"])
    assert proc.returncode == 2 and "outside" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert run_cli(["data", "info", f"celeba:{root}", "--allow-outside"]).returncode == 0


def _predict_list(tmp_path: Path, *extra: str) -> dict[str, dict[str, str]]:
    base = tmp_path / "list"
    base.mkdir()
    (base / "ok.jpg").write_bytes(encode(rgb(16, 16), "JPEG"))
    outside = tmp_path / "outside.jpg"
    outside.write_bytes(encode(rgb(16, 16, seed=1), "JPEG"))
    (base / "link.jpg").symlink_to(outside)
    (base / "sub").mkdir()
    (base / "sub" / "deep.jpg").write_bytes(encode(rgb(16, 16, seed=2), "JPEG"))
    (base / "list.txt").write_text("\n".join(["ok.jpg", "../outside.jpg", str(outside), "link.jpg",
                                              "sub/../sub/deep.jpg", "# comment", ""]) + "\n")
    out = tmp_path / "p.csv"
    proc = run_cli(["predict", str(base / "list.txt"), "--model", str(DEFAULT_ONNX), "--out", str(out),
                    "--threads", "1", "--workers", "1", *extra])
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return {r["path"]: r for r in csv.DictReader(out.open())}


def test_predict_list_file_escapes_are_error_rows(tmp_path: Path) -> None:
    rows = _predict_list(tmp_path)
    assert len(rows) == 5
    errors = {Path(p).name: r["error"] for p, r in rows.items()}
    assert errors["ok.jpg"] == "" and errors["deep.jpg"] == ""
    outside_rows = [r for p, r in rows.items() if "outside" in p or p.endswith("link.jpg")]
    assert len(outside_rows) == 3 and all("outside" in r["error"] for r in outside_rows)


def test_predict_list_file_allow_outside(tmp_path: Path) -> None:
    rows = _predict_list(tmp_path, "--allow-outside")
    assert len(rows) == 5 and all(r["error"] == "" for r in rows.values())


def test_predict_list_with_symlink_loop_entry(tmp_path: Path) -> None:
    """An entry that is a symlink loop gives an error row, not a crash."""
    (tmp_path / "loop.jpg").symlink_to(tmp_path / "loop.jpg")
    (tmp_path / "ok.jpg").write_bytes(encode(rgb(16, 16), "JPEG"))
    (tmp_path / "list.txt").write_text("loop.jpg\nok.jpg\n")
    out = tmp_path / "p.csv"
    proc = run_cli(["predict", str(tmp_path / "list.txt"), "--model", str(DEFAULT_ONNX), "--out", str(out),
                    "--threads", "1"])
    assert proc.returncode == 0, proc.stderr
    rows = {Path(r["path"]).name: r["error"] for r in csv.DictReader(out.open())}
    assert rows["ok.jpg"] == "" and rows["loop.jpg"]


def test_environment_opt_in_for_commands_without_the_flag(synth: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """train, eval and export read datasets with the default: ATTRNET_ALLOW_OUTSIDE=1 opts them in."""
    root, outside = _copy(synth / "celeba", tmp_path)
    _escape("symlink_dir", root, root / "img_align_celeba", "000001.jpg", outside, [])
    monkeypatch.setenv("ATTRNET_ALLOW_OUTSIDE", "1")
    assert len(load_index(f"celeba:{root}").paths) == 8
    with pytest.raises(InputError, match="outside"):
        load_index(f"celeba:{root}", allow_outside=False)
    monkeypatch.setenv("ATTRNET_ALLOW_OUTSIDE", "0")
    with pytest.raises(InputError, match="outside"):
        load_index(f"celeba:{root}")
