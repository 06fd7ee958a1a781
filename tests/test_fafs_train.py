"""`attrnet train --method fafs` end to end on small synthetic CelebA data."""
from __future__ import annotations

import json

import pytest
import torch

from attrnet.train.checkpoint import load_model, model_metadata, read_metadata, save_model
from attrnet.cli import main
from attrnet.data.synth import generate
from attrnet.models.backbones import backbone
from attrnet.models.net import MultiTaskNet
from attrnet.core.topology import Topology, shared
from attrnet.core.schema import Schema, binary


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("fafs") / "celeba"
    generate("celeba", root, num=48, seed=0, size=(32, 32))
    return root


def train(synth, out, *extra: str) -> int:
    return main(["train", "--data", f"celeba:{synth}", "--out", str(out), "--arch", "tiny", "--method", "fafs",
                 "--epochs", "2", "--img-size", "32", "--batch-size", "16", "--workers", "0", "--lr", "0.05",
                 "--val-every", "1", "--val-batches", "1", "--max-stall", "1", "--branch-cost", "0.0005", "--max-branches", "6",
                 "--json", *extra])


def test_train_fafs_widens_and_writes_its_outputs(synth, tmp_path, capsys):
    out = tmp_path / "run"
    assert train(synth, out) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["epochs"] == 2
    assert "random init" in captured.err and "widened stage 3" in captured.err
    doc = json.loads((out / "fafs.json").read_text())
    assert doc["rounds"] and doc["rounds"][0]["stage"] == 3 and doc["rounds"][0]["d"] > 1
    topo = Topology.load(out / "topology.json")
    assert topo.branch_counts()[-1] == doc["rounds"][0]["d"]
    assert sorted(n for g in topo.leaf_groups() for n in g) == sorted(doc["task_affinity"]["attributes"])
    assert "sharing per stage" in (out / "fafs_report.txt").read_text()
    assert (out / "fafs_tree.png").stat().st_size > 1000
    # the last checkpoint holds the widened model and the method state; it reloads
    assert read_metadata(out / "last.safetensors")["topology"] == topo.to_dict()
    model, meta = load_model(out / "best.safetensors")
    assert meta["method"] == "fafs"
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 40)
    # --resume restores the widened model and the widening history (test_train_resume.py resumes mid-run)
    assert train(synth, out, "--resume") == 0
    assert "resumed from" in capsys.readouterr().err
    again = json.loads((out / "fafs.json").read_text())
    assert again["rounds"][: len(doc["rounds"])] == doc["rounds"]
    assert Topology.load(out / "topology.json").branch_counts()[-1] >= topo.branch_counts()[-1]


def test_train_fafs_from_a_wide_checkpoint_by_somp(synth, tmp_path, capsys):
    schema = Schema(tuple(binary(f"w{i}") for i in range(3)))
    widths = [24, 40, 64, 80]  # wider than tiny's 16, 32, 48, 64
    wide = MultiTaskNet(shared("tiny", widths, schema.names), schema)
    path = tmp_path / "wide.safetensors"
    save_model(path, wide, model_metadata(wide, {"height": 32, "width": 32}))
    out = tmp_path / "run"
    assert train(synth, out, "--somp-from", str(path), "--max-stall", "1000", "--epochs", "1") == 0
    err = capsys.readouterr().err
    assert f"SOMP from {path}" in err
    assert "SOMP from" in (out / "fafs_report.txt").read_text()
    assert backbone("tiny").widths == Topology.load(out / "topology.json").widths()


def test_train_fafs_bad_options_exit_2(synth, tmp_path, capsys):
    assert train(synth, tmp_path / "a", "--affinity", "margin") == 2
    assert "--affinity" in capsys.readouterr().err
    assert train(synth, tmp_path / "b", "--somp-from", str(tmp_path / "missing.pth")) == 2
    assert "missing.pth" in capsys.readouterr().err
