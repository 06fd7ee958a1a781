"""DeepFashion (Category and Attribute Prediction) loader on a small fixture in the published layout."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from attrnet.data import dataset_splits, open_dataset
from attrnet.core.errors import InputError

NAMES = ["a-line", "floral print", "long sleeve", "v-neck", "boho"]
IMAGES = ["img/Sheer_Pleated-Front_Blouse/img_00000001.jpg", "img/Sheer_Pleated-Front_Blouse/img_00000002.jpg",
          "img/Abstract_Print_Dress/img_00000001.jpg", "img/Abstract_Print_Dress/img_00000002.jpg"]
VALUES = np.array([[1, -1, 0, -1, 1], [-1, -1, 1, -1, -1], [1, 1, -1, 0, -1], [-1, 1, -1, 1, -1]])


def write_deepfashion(root, *, names=NAMES, values=VALUES, splits=("train", "train", "val", "test")):
    (root / "Anno").mkdir(parents=True, exist_ok=True)
    (root / "Eval").mkdir(parents=True, exist_ok=True)
    cloth = [f"{len(names)}", "attribute_name  attribute_type"] + [f"{n:<29}{1 + k % 5}  " for k, n in enumerate(names)]
    (root / "Anno/list_attr_cloth.txt").write_bytes(("\ufeff" + "\r\n".join(cloth) + "\r\n").encode())
    rows = [f"{len(IMAGES)}", "image_name  attribute_labels"]
    rows += [f"{img:<60}" + " ".join(f"{v:>2d}" for v in values[i]) + " " for i, img in enumerate(IMAGES)]
    (root / "Anno/list_attr_img.txt").write_text("\r\n".join(rows) + "\r\n")
    part = [f"{len(IMAGES)}", "image_name  evaluation_status"] + [f"{img}    {s}" for img, s in zip(IMAGES, splits)]
    (root / "Eval/list_eval_partition.txt").write_text("\n".join(part) + "\n")
    for img in IMAGES:
        (root / img).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / img), np.zeros((30, 20, 3), np.uint8))


def test_names_with_spaces_values_and_splits(tmp_path):
    write_deepfashion(tmp_path)
    assert dataset_splits(f"deepfashion:{tmp_path}") == {"train": 2, "val": 1, "test": 1}
    ds = open_dataset(f"deepfashion:{tmp_path}", "train")
    assert ds.schema.names == NAMES and ds.schema.name == "deepfashion"
    expected = np.where(VALUES[:2] == 0, np.nan, (VALUES[:2] > 0).astype(np.float32))
    np.testing.assert_array_equal(ds.labels, expected)
    assert ds.paths[1] == tmp_path / IMAGES[1]
    assert ds[0][0].shape == (3, 30, 20)
    np.testing.assert_allclose(ds.positive_rate(), [0.5, 0.0, 1.0, 0.0, 0.5])


def test_repeated_attribute_names_are_kept_apart(tmp_path):
    write_deepfashion(tmp_path, names=["print", "print", "knit", "lace", "print"])
    ds = open_dataset(f"deepfashion:{tmp_path}", "val")
    assert ds.schema.names == ["print", "print (2)", "knit", "lace", "print (3)"]


def test_malformed_files_name_file_and_line(tmp_path):
    bad = VALUES.copy()
    bad[2, 1] = 2
    write_deepfashion(tmp_path, values=bad)
    with pytest.raises(InputError, match="unknown value '2'") as exc:
        open_dataset(f"deepfashion:{tmp_path}")
    assert exc.value.path.endswith("list_attr_img.txt") and exc.value.line == 5
    write_deepfashion(tmp_path, splits=("train", "train", "dev", "test"))
    with pytest.raises(InputError, match="list_eval_partition.txt:5:"):
        open_dataset(f"deepfashion:{tmp_path}")
    write_deepfashion(tmp_path)
    path = tmp_path / "Anno/list_attr_cloth.txt"
    path.write_text(path.read_text().replace("v-neck                       4", "v-neck 9"))
    with pytest.raises(InputError, match="type 1-5") as exc:
        open_dataset(f"deepfashion:{tmp_path}")
    assert exc.value.line == 6


def test_value_count_must_match_attribute_count(tmp_path):
    write_deepfashion(tmp_path, names=NAMES[:4])
    with pytest.raises(InputError, match="expected 4 values, found 5") as exc:
        open_dataset(f"deepfashion:{tmp_path}")
    assert exc.value.line == 3


def test_missing_image(tmp_path):
    write_deepfashion(tmp_path)
    (tmp_path / IMAGES[3]).unlink()
    with pytest.raises(InputError, match="image not found") as exc:
        open_dataset(f"deepfashion:{tmp_path}")
    assert exc.value.line == 6
