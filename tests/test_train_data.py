"""Input pipeline pieces: deterministic augmentation, sharded sampling, LR schedule, hold-out."""
import math

import numpy as np
import pytest
import torch

from attrnet.core.input_spec import InputSpec
from attrnet.train.data import EpochSampler, TrainView, augment, normalise
from attrnet.train.optim import lr_factor


class _Images(torch.utils.data.Dataset):
    def __init__(self, n=8):
        rng = np.random.default_rng(0)
        self.images = rng.integers(0, 255, (n, 16, 16, 3), dtype=np.uint8)

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], torch.tensor([float(i)])


def test_augmentation_is_a_function_of_seed_epoch_and_index():
    view = TrainView(_Images(), seed=3)
    a, la = view[2]
    b, _ = view[2]
    assert torch.equal(a, b) and la.item() == 2 and a.shape == (3, 16, 16) and a.dtype == torch.uint8
    view.epoch = 1
    assert any(not torch.equal(view[i][0], TrainView(_Images(), seed=3)[i][0]) for i in range(8))
    off = TrainView(_Images(), seed=3, enabled=False)
    assert torch.equal(off[1][0], torch.from_numpy(_Images().images[1].transpose(2, 0, 1).copy()))


def test_augment_flip_and_crop_keep_the_size():
    img = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    out = augment(img, np.random.default_rng(0), crop_fraction=0.25)
    assert out.shape == img.shape
    flipped = augment(img, np.random.default_rng(1), crop_fraction=0.0)
    assert np.array_equal(flipped, img) or np.array_equal(flipped, img[:, ::-1])


def test_sampler_shards_are_disjoint_and_equal_sized():
    shards = [EpochSampler(10, seed=1, rank=r, world=3) for r in range(3)]
    for s in shards:
        s.epoch = 4
    parts = [list(s) for s in shards]
    assert [len(p) for p in parts] == [4, 4, 4] and len(shards[0]) == 4
    flat = sum(parts, [])
    assert set(flat) == set(range(10))  # 12 slots: two samples repeat to pad
    again = EpochSampler(10, seed=1, rank=0, world=3)
    again.epoch = 4
    assert list(again) == parts[0]
    again.epoch = 5
    assert list(again) != parts[0]
    assert list(EpochSampler(3, seed=0, length=7, shuffle=False)) == [0, 1, 2, 0, 1, 2, 0]


def test_warmup_then_cosine():
    assert lr_factor(0, 100, 10) == pytest.approx(0.1)
    assert lr_factor(9, 100, 10) == pytest.approx(1.0)
    assert lr_factor(10, 100, 10) == pytest.approx(1.0)
    assert lr_factor(55, 100, 10) == pytest.approx(0.5)
    assert lr_factor(100, 100, 10) == pytest.approx(0.0, abs=1e-12)
    assert lr_factor(0, 100, 0) == 1.0 and lr_factor(50, 100, 0) == pytest.approx(0.5 * (1 + math.cos(math.pi / 2)))


def test_normalise_uses_the_spec():
    spec = InputSpec(2, 2, mean=(0.5, 0.5, 0.5), std=(0.5, 0.25, 1.0))
    x = torch.full((1, 3, 2, 2), 255, dtype=torch.uint8)
    assert normalise(x, spec)[0, :, 0, 0].tolist() == pytest.approx([1.0, 2.0, 0.5])


def test_hold_out_is_seeded_and_disjoint(tmp_path):
    from attrnet.data.base import AttributeDataset
    from attrnet.core.schema import Schema, binary
    from attrnet.train.splits import hold_out

    schema = Schema((binary("a"),))
    ds = AttributeDataset(schema, "folder", "train", tmp_path, [tmp_path / f"{i}.png" for i in range(20)],
                          np.arange(20, dtype=np.float32).reshape(20, 1))
    tr, va = hold_out(ds, 0.25, seed=0)
    assert len(tr) == 15 and len(va) == 5 and va.split == "val"
    assert sorted(tr.labels[:, 0].tolist() + va.labels[:, 0].tolist()) == list(range(20))
    assert hold_out(ds, 0.25, seed=0)[1].paths == va.paths
