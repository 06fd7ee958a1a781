"""FAFSMethod hooks: affinity from training steps, widening every max_stall steps or on a stalled validation
loss, state, outputs."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from attrnet.core.errors import InputError
from attrnet.core.input_spec import InputSpec
from attrnet.data.base import AttributeDataset
from attrnet.methods.fafs import FAFSMethod
from attrnet.methods.fafs.method import MAX_TRIES_PER_LAYER
from attrnet.models.net import MultiTaskNet
from attrnet.core.topology import Topology
from attrnet.core.schema import Schema, binary
from attrnet.train.method import TrainContext

SCHEMA = Schema(tuple(binary(f"a{i}") for i in range(6)))
PLANTED = [0, 1, 0, 1, 0, 1]  # a0 a2 a4 | a1 a3 a5


def feed(method: FAFSMethod, steps: int, seed: int = 0, start: int = 0) -> list[MultiTaskNet | None]:
    """Per-sample losses driven by one latent difficulty per planted group; what each after_step returned."""
    g = torch.Generator().manual_seed(seed)
    returned = []
    for step in range(start, start + steps):
        z = torch.rand(32, 2, generator=g)
        losses = z[:, PLANTED] + 0.02 * torch.rand(32, 6, generator=g)
        returned.append(method.after_step(step, losses, torch.ones(32, 6, dtype=torch.bool), torch.zeros(32, 6),
                                          torch.zeros(32, 6)))
    return returned


def setup(**options) -> tuple[FAFSMethod, MultiTaskNet]:
    method = FAFSMethod({"max_stall": 2, "branch_cost": 0.05, "widen_on": "stall", **options})
    model = MultiTaskNet(method.initial_topology("tiny", SCHEMA), SCHEMA).eval()
    return method, model


def context(model: MultiTaskNet, root) -> TrainContext:
    """A run context around `model` (FAFS's init_model reads only the model)."""
    empty = AttributeDataset(SCHEMA, "folder", "train", root, [], np.zeros((0, SCHEMA.num_columns), np.float32))
    return TrainContext(model=model, train_set=empty, spec=InputSpec(32, 32), device=torch.device("cpu"), seed=0,
                        batch_size=1, lr=1e-3, augment=False, crop_fraction=0.0, workers=0, log=print)


def test_widens_top_down_along_planted_groups_after_stalls(tmp_path, capsys):
    method, model = setup()
    method.init_model(context(model, tmp_path))
    assert "random init" in capsys.readouterr().err
    feed(method, 40)
    a = method.affinity.matrix()
    assert a[0, 2] > a[0, 1] + 0.2
    x = torch.randn(2, 3, 32, 32)
    before = model(x)
    assert method.after_validation(10, 1.0, model) is None      # new best
    assert method.after_validation(11, 1.0, model) is None      # stalled 1 step
    wide = method.after_validation(12, 1.0, model)              # stalled max_stall steps: widen
    assert wide is not None and wide.topology.leaf_groups() == [["a0", "a2", "a4"], ["a1", "a3", "a5"]]
    assert torch.allclose(wide(x), before, atol=1e-5)
    assert method.after_validation(13, 0.5, wide) is None       # improves: no widening
    step, model = 13, wide
    while not method.done:
        step += 2
        new = method.after_validation(step, 0.5, model)
        model = new or model
    assert model.topology.branch_counts() == [2, 2, 2, 2]  # the two groups split all the way down
    assert [r["stage"] for r in method.rounds] == [3, 2, 1, 0] and all(r["d"] == 2 for r in method.rounds)
    assert torch.allclose(model(x), before, atol=1e-5)

    other, _ = setup()
    other.load_state_dict({k: v.clone() for k, v in method.state_dict().items()})
    np.testing.assert_array_equal(other.affinity.matrix(), method.affinity.matrix())
    assert other.rounds == method.rounds and other.done and other.next_stage == method.next_stage

    method.finish(model, tmp_path)
    assert Topology.load(tmp_path / "topology.json").to_dict() == model.topology.to_dict()
    report = (tmp_path / "fafs_report.txt").read_text()
    assert "random init" in report and "branch 0: a0, a2, a4" in report and "stage  0 (2 branches" in report
    doc = json.loads((tmp_path / "fafs.json").read_text())
    assert doc["groups"] == [["a0", "a2", "a4"], ["a1", "a3", "a5"]] and len(doc["task_affinity"]["matrix"]) == 6
    assert (tmp_path / "fafs_tree.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_group_wins_when_branches_are_expensive(capsys):
    method, model = setup(branch_cost=10.0)
    feed(method, 10)
    for step in (0, 1, 2):
        assert method.after_validation(step, 1.0, model) is None
    assert method.done and method.rounds[0]["d"] == 1
    assert "d = 1 wins" in capsys.readouterr().err
    assert method.after_validation(50, 1.0, model) is None


def test_max_branches_caps_the_split():
    method, model = setup(branch_cost=0.0001, max_branches=2)
    feed(method, 20)
    wide = method.widen(model, 0)
    assert wide is not None and wide.topology.branch_counts()[-1] == 2


def test_error_mode_and_option_validation():
    method, _ = setup(affinity="error")
    assert method.affinity.mode == "error"
    for bad in ({"affinity": "margin"}, {"alpha": "x"}, {"max_stall": 0}, {"branch_cost": -1}):
        with pytest.raises(InputError):
            FAFSMethod(bad)
    with pytest.raises(InputError, match="--widen-on"):
        FAFSMethod({"widen_on": "epoch"})


def test_widening_continues_below_a_given_plan():
    from attrnet.core.topology import split

    method, _ = setup()
    plan = split("tiny", [16, 32, 48, 64], {"x": ["a0", "a2", "a4"], "y": ["a1", "a3", "a5"]}, 2)
    model = MultiTaskNet(plan, SCHEMA).eval()
    feed(method, 20)
    wide = method.widen(model, 0)
    assert method.rounds[0]["stage"] == 1 and wide.topology.branch_counts() == [1, 2, 2, 2]


def step_setup(tmp_path, **options) -> tuple[FAFSMethod, TrainContext]:
    """A method on the step schedule attached to a run context (the trainer keeps ctx.model current)."""
    method = FAFSMethod({"max_stall": 10, "branch_cost": 0.05, **options})
    model = MultiTaskNet(method.initial_topology("tiny", SCHEMA), SCHEMA).eval()
    ctx = context(model, tmp_path)
    method.attach(ctx)
    return method, ctx


def test_step_schedule_widens_every_max_stall_steps_whatever_the_validation_loss(tmp_path, capsys):
    method, ctx = step_setup(tmp_path)
    assert method.widen_on == "step"
    assert method.after_validation(5, 9.0, ctx.model) is None   # validation points do not widen
    returned = feed(method, 40)
    widened = [i for i, new in enumerate(returned) if new is not None]
    assert widened == [9]                                        # after 10 steps, not before
    ctx.model = returned[9]
    assert ctx.model.topology.leaf_groups() == [["a0", "a2", "a4"], ["a1", "a3", "a5"]]
    feed(method, 30, seed=1, start=40)                          # a round every 10 steps, down the layers
    assert [r["step"] for r in method.rounds] == [10, 20, 30, 40, 50, 60, 70]
    assert [r["stage"] for r in method.rounds] == [3, 2, 2, 2, 1, 1, 1]  # 2 branches above: d = 1 wins below
    assert capsys.readouterr().err.count("fafs: step ") == len(method.rounds)  # one line per round


def test_step_schedule_retries_a_layer_after_d1_then_moves_down(tmp_path, capsys):
    method, ctx = step_setup(tmp_path, branch_cost=10.0)
    assert all(new is None for new in feed(method, 10 * MAX_TRIES_PER_LAYER + 10))
    stages = [r["stage"] for r in method.rounds]
    assert stages == [3] * MAX_TRIES_PER_LAYER + [2] and all(r["d"] == 1 for r in method.rounds)
    assert [r["try"] for r in method.rounds] == list(range(1, MAX_TRIES_PER_LAYER + 1)) + [1]
    assert not method.done and "stage 3 is tried again" in capsys.readouterr().err

    resumed, _ = step_setup(tmp_path, branch_cost=10.0)         # --resume carries the counters
    resumed.load_state_dict({k: v.clone() for k, v in method.state_dict().items()})
    assert (resumed.next_stage, resumed.tries, resumed.last_round_step) == (2, 1, method.last_round_step)
    step = method.last_round_step
    feed(method, 10, start=step)
    feed(resumed, 10, start=step)
    assert resumed.rounds == method.rounds

    method.finish(ctx.model, tmp_path)
    doc = json.loads((tmp_path / "fafs.json").read_text())
    assert doc["widen_on"] == "step" and doc["max_tries_per_layer"] == MAX_TRIES_PER_LAYER
    assert "every max_stall = 10 training steps" in (tmp_path / "fafs_report.txt").read_text()


def test_stall_schedule_stops_after_d1(tmp_path):
    method, model = setup(branch_cost=10.0)
    assert all(new is None for new in feed(method, 30))        # training steps never widen under stall
    for step in (0, 1, 2, 3, 4, 5):
        method.after_validation(step, 1.0, model)
    assert len(method.rounds) == 1 and method.done
