"""The trainer hands AWMT the task losses of validation batches, not of the training batches."""
from pathlib import Path

import pytest
import torch

from attrnet.methods import trainer_for
from attrnet.train.config import TrainConfig
from attrnet.train.weighting import AWMT

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def opposite_labels(root: Path) -> None:
    """Every attribute present on every training image and absent on every validation image."""
    part = dict(line.split() for line in (root / "list_eval_partition.txt").read_text().splitlines())
    lines = (root / "list_attr_celeba.txt").read_text().splitlines()
    rows = []
    for line in lines[2:]:
        name, *values = line.split()
        sign = {"0": "1", "1": "-1"}.get(part[name])
        rows.append(" ".join([name] + ([sign] * len(values) if sign else values)))
    (root / "list_attr_celeba.txt").write_text("\n".join(lines[:2] + rows) + "\n")


def test_awmt_observes_validation_losses(tmp_path, monkeypatch):
    from attrnet.data.synth import generate

    root = tmp_path / "celeba"
    generate("celeba", root, num=80, seed=0, size=(32, 32))
    opposite_labels(root)
    seen: dict[str, list[float]] = {"train": [], "val": []}
    combine, observe = AWMT.combine, AWMT.observe_val

    def spy_combine(self, task_losses, present):
        seen["train"].append(float(task_losses.detach().mean()))
        return combine(self, task_losses, present)

    def spy_observe(self, val_task_losses):
        seen["val"].append(float(torch.nanmean(val_task_losses)))
        return observe(self, val_task_losses)

    monkeypatch.setattr(AWMT, "combine", spy_combine)
    monkeypatch.setattr(AWMT, "observe_val", spy_observe)
    cfg = TrainConfig(data=f"celeba:{root}", out=str(tmp_path / "run"), weighting="awmt", awmt_k=2, epochs=3,
                      batch_size=16, lr=0.05, img_size=(32, 32), workers=0, log_every=10**6, warmup_epochs=0)
    trainer_for(cfg).run()
    assert len(seen["val"]) == len(seen["train"]) > 6  # one validation batch per training step
    # the model learns "always present": the training loss falls, the loss on the validation labels rises
    late_train, late_val = seen["train"][-3:], seen["val"][-3:]
    assert max(late_train) < 0.6 < 0.9 < min(late_val)
