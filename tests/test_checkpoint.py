"""Checkpoints: safetensors + JSON metadata, atomic writes, strict and safe loading."""

import pytest
import torch

from attrnet.train import checkpoint as ckpt
from attrnet.core.errors import InputError
from attrnet.core.input_spec import InputSpec
from attrnet.models.backbones import backbone
from attrnet.models.net import MultiTaskNet
from attrnet.core.topology import split
from attrnet.core.schema import market_schema


def _model():
    s = market_schema()
    topo = split("tiny", backbone("tiny").widths, {"a": s.names[:6], "b": s.names[6:]}, 2)
    return MultiTaskNet(topo, s)


def test_round_trip_restores_weights_and_metadata(tmp_path):
    torch.manual_seed(0)
    m = _model().eval()
    meta = ckpt.model_metadata(m, InputSpec(64, 64).to_dict(), method="shared", metrics={"mA": 0.7})
    path = tmp_path / "best.safetensors"
    ckpt.save_model(path, m, meta)
    assert ckpt.read_metadata(path)["metrics"] == {"mA": 0.7}
    m2, meta2 = ckpt.load_model(path)
    x = torch.randn(2, 3, 64, 64)
    assert torch.equal(m(x), m2(x))
    assert meta2["schema"]["columns"] == m.schema.columns
    assert meta2["thresholds"][0] == 0.5 and meta2["thresholds"][-1] is None
    assert not list(tmp_path.glob("*.tmp"))


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    m = _model()
    path = tmp_path / "m.safetensors"
    ckpt.save_model(path, m, ckpt.model_metadata(m, InputSpec(64, 64).to_dict()))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="m.safetensors: truncated checkpoint"):
        ckpt.load_model(path)


@pytest.mark.parametrize("content", [b"", b"hello", b"\xff" * 64])
def test_non_checkpoint_files_are_rejected(tmp_path, content):
    path = tmp_path / "x.safetensors"
    path.write_bytes(content)
    with pytest.raises(InputError, match="x.safetensors"):
        ckpt.load_model(path)


def test_metadata_that_disagrees_with_tensors_is_rejected(tmp_path):
    m = _model()
    meta = ckpt.model_metadata(m, InputSpec(64, 64).to_dict())
    meta["topology"]["stages"] = [[{"parent": 0, "width": 8}] for _ in range(4)]
    meta["topology"]["tasks"] = {a: 0 for a in meta["topology"]["tasks"]}
    path = _saved_with(tmp_path, m, meta)
    with pytest.raises(InputError, match="its metadata implies"):
        ckpt.load_model(path)


def test_newer_format_version_is_refused(tmp_path):
    m = _model()
    path = _saved_with(tmp_path, m, ckpt.model_metadata(m, InputSpec(64, 64).to_dict(), format_version=99))
    with pytest.raises(InputError, match="format_version 99"):
        ckpt.read_metadata(path)


def _saved_with(tmp_path, model, meta):
    """`model`'s weights saved under `meta` (possibly inconsistent with them) as m.safetensors."""
    path = tmp_path / "m.safetensors"
    ckpt.save_checkpoint(path, model.state_dict(), meta)
    return path


def test_failed_write_leaves_previous_file_intact(tmp_path):
    m = _model()
    path = tmp_path / "m.safetensors"
    meta = ckpt.model_metadata(m, InputSpec(64, 64).to_dict())
    ckpt.save_model(path, m, meta)
    before = path.read_bytes()
    with pytest.raises(Exception):
        ckpt.save_checkpoint(path, {"bad": "not a tensor"}, meta)  # type: ignore[dict-item]
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".*.tmp"))


def test_atomic_writes_get_normal_file_permissions(tmp_path):
    import os

    from attrnet.core.fileio import atomic_write_text

    path = tmp_path / "out.txt"
    atomic_write_text(path, "x")
    mask = os.umask(0)
    os.umask(mask)
    assert (path.stat().st_mode & 0o777) == (0o666 & ~mask)
