"""CelebA loader on small fixtures in torchvision's layout, with the awkward cases of the real files."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from attrnet.data import dataset_splits, open_dataset
from attrnet.core.errors import InputError
from attrnet.core.schema import CELEBA_ATTRIBUTES

N = 6


def write_celeba(root, values=None, *, eol="\r\n", bom=True, names_order=None, n=N, partition=None):
    """A CelebA folder: images, attribute file (irregular spacing, trailing spaces), partition file."""
    rng = np.random.default_rng(1)
    values = rng.choice([-1, 1], (n, 40)) if values is None else values
    names = [f"{i + 1:06d}.jpg" for i in range(n)]
    (root / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    for k, name in enumerate(names):
        cv2.imwrite(str(root / "img_align_celeba" / name), np.full((24, 20, 3), 10 * k, np.uint8))
    order = names_order or list(CELEBA_ATTRIBUTES)
    cols = [CELEBA_ATTRIBUTES.index(a) for a in order]
    rows = [f"{n}", " ".join(order) + " "]
    rows += [name + "".join(f"{v:>3d}" for v in values[i, cols]) + "  " for i, name in enumerate(names)]
    (root / "list_attr_celeba.txt").write_bytes((("\ufeff" if bom else "") + eol.join(rows) + eol).encode())
    parts = partition or [0, 0, 0, 1, 2, 2][:n]
    (root / "list_eval_partition.txt").write_text("".join(f"{nm} {p}\n" for nm, p in zip(names, parts)))
    return values


def test_reads_labels_splits_and_images(tmp_path):
    values = write_celeba(tmp_path)
    assert dataset_splits(f"celeba:{tmp_path}") == {"train": 3, "val": 1, "test": 2}
    train = open_dataset(f"celeba:{tmp_path}", "train")
    assert train.schema.names == list(CELEBA_ATTRIBUTES) and train.format == "celeba"
    np.testing.assert_array_equal(train.labels, (values[:3] > 0).astype(np.float32))
    image, labels = train[1]
    assert image.dtype == torch.uint8 and image.shape == (3, 24, 20) and int(image[0, 0, 0]) == 10
    assert labels.dtype == torch.float32 and labels.shape == (40,)
    assert train.paths[0].name == "000001.jpg" and train.paths[0].is_absolute()
    test = open_dataset(f"celeba:{tmp_path}", "test", transform=lambda img: img.shape)
    assert test[0][0] == (24, 20, 3)


def test_lf_without_bom_and_torchvision_subfolder(tmp_path):
    values = write_celeba(tmp_path / "celeba", eol="\n", bom=False)
    ds = open_dataset(f"celeba:{tmp_path}", "test")
    np.testing.assert_array_equal(ds.labels, (values[4:] > 0).astype(np.float32))


def test_columns_follow_the_preset_whatever_the_file_order(tmp_path):
    order = list(reversed(CELEBA_ATTRIBUTES))
    values = write_celeba(tmp_path, names_order=order)
    ds = open_dataset(f"celeba:{tmp_path}", "train")
    np.testing.assert_array_equal(ds.labels, (values[:3] > 0).astype(np.float32))


def test_positive_rate(tmp_path):
    values = write_celeba(tmp_path)
    ds = open_dataset(f"celeba:{tmp_path}", "train")
    np.testing.assert_allclose(ds.positive_rate(), (values[:3] > 0).mean(axis=0))


def _corrupt(root, line_no, new_line):
    path = root / "list_attr_celeba.txt"
    lines = path.read_bytes().decode("utf-8-sig").split("\r\n")
    lines[line_no - 1] = new_line
    path.write_text("\r\n".join(lines))


def test_wrong_column_count_names_file_and_line(tmp_path):
    write_celeba(tmp_path)
    _corrupt(tmp_path, 5, "000003.jpg " + " 1" * 39)
    with pytest.raises(InputError) as exc:
        open_dataset(f"celeba:{tmp_path}")
    assert exc.value.line == 5 and exc.value.path.endswith("list_attr_celeba.txt")
    assert "expected 40 values, found 39" in str(exc.value)


@pytest.mark.parametrize("bad", ["0", "2", "x", "11", "1-"])
def test_unknown_value_names_file_and_line(tmp_path, bad):
    write_celeba(tmp_path)
    _corrupt(tmp_path, 7, "000005.jpg " + " 1" * 20 + f" {bad}" + " -1" * 19)
    with pytest.raises(InputError, match="unknown value") as exc:
        open_dataset(f"celeba:{tmp_path}")
    assert exc.value.line == 7 and repr(bad) in str(exc.value)


def test_missing_image_names_its_line(tmp_path):
    write_celeba(tmp_path)
    (tmp_path / "img_align_celeba" / "000004.jpg").unlink()
    with pytest.raises(InputError, match="image not found") as exc:
        open_dataset(f"celeba:{tmp_path}")
    assert exc.value.line == 6


def test_header_problems(tmp_path):
    write_celeba(tmp_path)
    _corrupt(tmp_path, 1, "7")
    with pytest.raises(InputError, match="says 7 images but the file has 6 rows"):
        open_dataset(f"celeba:{tmp_path}")
    write_celeba(tmp_path)
    _corrupt(tmp_path, 2, " ".join(CELEBA_ATTRIBUTES[:-1] + ["Old"]))
    with pytest.raises(InputError, match="unknown attribute 'Old'") as exc:
        open_dataset(f"celeba:{tmp_path}")
    assert exc.value.line == 2


def test_partition_problems(tmp_path):
    write_celeba(tmp_path, partition=[0, 0, 0, 1, 2, 5])
    with pytest.raises(InputError, match="list_eval_partition.txt:6:"):
        open_dataset(f"celeba:{tmp_path}")
    write_celeba(tmp_path)
    (tmp_path / "list_eval_partition.txt").write_text("000001.jpg 0\n")
    with pytest.raises(InputError, match="000002.jpg is not listed"):
        open_dataset(f"celeba:{tmp_path}")


def test_bad_specs(tmp_path):
    with pytest.raises(InputError, match="data folder not found"):
        open_dataset(f"celeba:{tmp_path / 'nope'}")
    with pytest.raises(InputError, match="unknown data format"):
        open_dataset(f"imagenet:{tmp_path}")
    with pytest.raises(InputError, match="FORMAT:PATH"):
        open_dataset(str(tmp_path))
    with pytest.raises(InputError, match="file not found"):
        open_dataset(f"celeba:{tmp_path}")
    write_celeba(tmp_path)
    with pytest.raises(InputError, match="unknown split"):
        open_dataset(f"celeba:{tmp_path}", "validation")


def test_blank_lines(tmp_path):
    write_celeba(tmp_path)
    path = tmp_path / "list_attr_celeba.txt"
    path.write_bytes(path.read_bytes() + b"\r\n  \r\n")  # trailing blank lines are fine
    assert len(open_dataset(f"celeba:{tmp_path}", "train")) == 3
    _corrupt(tmp_path, 5, "")
    with pytest.raises(InputError, match="blank line inside the table") as exc:
        open_dataset(f"celeba:{tmp_path}")
    assert exc.value.line == 5


def test_chunked_parsing_keeps_rows_and_line_numbers(tmp_path, monkeypatch):
    from attrnet.data import tables

    monkeypatch.setattr(tables, "_CHUNK_BYTES", 150)  # about one row per chunk
    values = write_celeba(tmp_path)
    np.testing.assert_array_equal(open_dataset(f"celeba:{tmp_path}", "test").labels, (values[4:] > 0).astype(np.float32))
    _corrupt(tmp_path, 7, "000005.jpg " + " 1" * 39 + " 3")
    with pytest.raises(InputError, match="unknown value '3'") as exc:
        open_dataset(f"celeba:{tmp_path}")
    assert exc.value.line == 7


def test_invalid_utf8_names_the_line(tmp_path):
    write_celeba(tmp_path)
    path = tmp_path / "list_attr_celeba.txt"
    lines = path.read_bytes().split(b"\r\n")
    lines[3] = b"\xff" + lines[3]
    path.write_bytes(b"\r\n".join(lines))
    with pytest.raises(InputError, match="not valid UTF-8") as exc:
        open_dataset(f"celeba:{tmp_path}")
    assert exc.value.line == 4


def test_reduce_to_decodes_large_jpegs_smaller(tmp_path):
    write_celeba(tmp_path)
    big = np.random.default_rng(0).integers(0, 255, (240, 200, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "img_align_celeba" / "000001.jpg"), big)
    assert open_dataset(f"celeba:{tmp_path}")[0][0].shape == (3, 240, 200)
    assert open_dataset(f"celeba:{tmp_path}", reduce_to=(60, 50))[0][0].shape == (3, 60, 50)
