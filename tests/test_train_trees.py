"""A method that replaces the model (FAFS widening) starts a new tree: best.safetensors is always the best of the tree
the run ends with, which topology.json, the method's report and the done line describe; an earlier tree's best is
kept as best.tree<N>.safetensors."""
from __future__ import annotations

import json

import pytest
import torch

from attrnet.cli import main
from attrnet.core.topology import Topology, units_above
from attrnet.models.surgery import widen_model
from attrnet.train.checkpoint import load_model, read_metadata
from attrnet.train.config import TrainConfig
from attrnet.train.method import Method
from attrnet.train.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class WidenWorse(Method):
    """Widens the top stage in two after the first validation, into a model with far worse heads."""

    def __init__(self):
        super().__init__()
        self.validations = 0

    def after_validation(self, step, val_loss, model):
        self.validations += 1
        if self.validations > 1:
            return None
        units = units_above(model.topology, 3, 0)
        new = widen_model(model, 3, 0, [u % 2 for u in range(len(units))])
        with torch.no_grad():
            new.head.weight.mul_(100.0)
        return new


def test_best_is_chosen_within_the_final_tree(celeba, tmp_path):
    out = tmp_path / "run"
    method = WidenWorse()
    cfg = TrainConfig(data=celeba, out=str(out), epochs=3, batch_size=16, lr=1e-5, img_size=(32, 32), workers=0,
                      best_metric="val_loss")
    summary = Trainer(cfg, method).run()
    assert method.validations == 2  # none after the last epoch: a model replaced then would never be trained
    rows = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["val_loss"] < min(r["val_loss"] for r in rows[1:])  # the widened tree never beats epoch 1
    final = Topology.load(out / "topology.json")
    assert final.branch_counts() == [1, 1, 1, 2]
    best = read_metadata(out / "best.safetensors")
    assert best["topology"] == final.to_dict() and best["train"]["tree"] == 1 and best["train"]["epoch"] in (2, 3)
    assert json.loads((out / "best.json").read_text())["train"]["tree"] == 1
    earlier = read_metadata(out / "best.tree0.safetensors")
    assert earlier["train"] == {**earlier["train"], "tree": 0, "epoch": 1}
    assert Topology.from_dict(earlier["topology"]).branch_counts() == [1, 1, 1, 1]
    assert (out / "best.tree0.json").is_file()
    assert summary["tree"] == 1 and summary["branches"] == "1-1-1-2" and summary["best_epoch"] == best["train"]["epoch"]
    model, _ = load_model(out / "best.safetensors")
    assert model.topology.to_dict() == final.to_dict()


def test_fafs_exports_the_tree_it_reports(celeba, tmp_path, capsys, monkeypatch):
    import attrnet.methods.fafs.method as fafs_method

    drawn = []
    draw = fafs_method.save_branch_tree
    monkeypatch.setattr(fafs_method, "save_branch_tree", lambda topo, path: (drawn.append(topo), draw(topo, path)))
    out = tmp_path / "fafs"
    assert main(["train", "--data", celeba, "--out", str(out), "--arch", "vgg16-thin", "--method", "fafs",
                 "--epochs", "2", "--batch-size", "8", "--img-size", "32", "--workers", "0", "--lr", "0.05",
                 "--val-every", "1", "--val-batches", "1", "--max-stall", "1", "--branch-cost", "0.0005",
                 "--max-branches", "4"]) == 0
    done = capsys.readouterr().out.strip().splitlines()[-1]
    best = Topology.from_dict(read_metadata(out / "best.safetensors")["topology"])
    assert max(best.branch_counts()) > 1  # it widened
    assert best.to_dict() == Topology.load(out / "topology.json").to_dict() == drawn[-1].to_dict()
    report = json.loads((out / "fafs.json").read_text())
    assert report["branch_counts"] == best.branch_counts() and report["groups"] == best.leaf_groups()
    assert (out / "fafs_report.txt").read_text().rstrip().endswith(best.sharing_report().rstrip())
    counts = "-".join(map(str, best.branch_counts()))
    assert done.endswith(f"-> {out}/best.safetensors (vgg16-thin, branches per stage {counts})")
    for path in out.glob("best.tree*.safetensors"):  # earlier trees that reached an end of epoch
        meta = read_metadata(path)
        assert path.name == f"best.tree{meta['train']['tree']}.safetensors" and meta["topology"] != best.to_dict()
