"""Choice of d on hand-made affinities, branch cost, and widening that keeps the model's outputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from attrnet.train.checkpoint import load_model, model_metadata, save_model
from attrnet.methods.fafs.widening import (DEFAULT_BRANCH_COST, branch_cost, choose_partition, pool_exponent,
                                           separation_loss)
from attrnet.models.surgery import widen_model
from attrnet.models.backbones import backbone
from attrnet.models.net import MultiTaskNet
from attrnet.core.topology import shared, split_topology, units_above
from attrnet.core.schema import Schema, binary

SCHEMA = Schema(tuple(binary(f"a{i}") for i in range(6)))


def blocks(sizes: list[int], inside: float = 0.9, outside: float = 0.5, seed: int = 0) -> np.ndarray:
    """A symmetric affinity with high values inside planted groups, shuffled order."""
    n = sum(sizes)
    group = np.repeat(np.arange(len(sizes)), sizes)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    group = group[perm]
    a = np.where(group[:, None] == group[None, :], inside, outside) + rng.uniform(-0.02, 0.02, (n, n))
    a = (a + a.T) / 2
    np.fill_diagonal(a, 1.0)
    return a, group


def same_partition(a, b) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    return all(len(set(b[a == g])) == 1 for g in set(a)) and len(set(a)) == len(set(b))


def test_separation_loss_by_hand():
    ab = np.array([[1.0, 0.8, 0.1], [0.8, 1.0, 0.2], [0.1, 0.2, 1.0]])
    assert separation_loss(ab, [0, 0, 1]) == pytest.approx((1 - 0.8 + 0.0) / 2)
    assert separation_loss(ab, [0, 0, 0]) == pytest.approx(1 - np.mean([0.1, 0.2, 0.1]))
    assert separation_loss(ab, [0, 1, 2]) == 0.0


def test_choice_of_d_on_planted_blocks():
    ab, truth = blocks([3, 4, 2], inside=0.95)
    part = choose_partition(ab, cost=0.05, alpha=1.0)
    assert part.d == 3 and same_partition(part.labels, truth)
    assert set(part.losses) == set(range(1, 10))
    assert part.losses[3] == pytest.approx(2 * 0.05 + part.separation[3])
    # a cheap branch: every task alone (singletons have L_s = 0)
    assert choose_partition(ab, cost=0.001, alpha=1.0).d == 9
    # a branch costs more than the separation it buys: one group
    assert choose_partition(ab, cost=1.0, alpha=1.0).d == 1
    # alpha = 0: separation is free, complexity wins
    assert choose_partition(ab, cost=0.05, alpha=0.0).d == 1
    # a cap on the number of groups
    capped = choose_partition(ab, cost=0.05, alpha=1.0, max_groups=2)
    assert capped.d == 2 and set(capped.losses) == {1, 2}
    # unrelated tasks (flat affinity): every extra branch buys the same, all alone only if it pays
    flat = np.full((4, 4), 0.5)
    np.fill_diagonal(flat, 1.0)
    assert choose_partition(flat, cost=0.3, alpha=1.0).d == 1
    assert choose_partition(flat, cost=0.01, alpha=1.0).d == 4


def test_branch_cost_follows_the_authors_col_costs():
    topo = shared("vgg16-thin", backbone("vgg16-thin").widths, SCHEMA.names)
    # deep_share lib/models/factory.py: col_costs for copies of layers 0..14
    authors = [32, 32, 16, 16, 8, 8, 8, 4, 4, 4, 2, 2, 2, 1, 1]
    assert [branch_cost(topo, s) * 64 for s in range(15)] == authors
    assert DEFAULT_BRANCH_COST == 1 / 64
    assert pool_exponent(topo, 0) == 5 and pool_exponent(topo, 14) == 0


def randomised(model: MultiTaskNet) -> MultiTaskNet:
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.normal_()
            m.bias.data.normal_()
    model.head.weight.data.normal_()
    return model.eval()


def test_widening_keeps_outputs_and_builds_a_valid_topology(tmp_path):
    torch.manual_seed(0)
    model = randomised(MultiTaskNet(shared("tiny", backbone("tiny").widths, SCHEMA.names), SCHEMA))
    x = torch.randn(3, 3, 32, 32)
    before = model(x)
    m1 = widen_model(model, 3, 0, [0, 1, 0, 2, 1, 2])
    assert m1.topology.branch_counts() == [1, 1, 1, 3]
    assert m1.topology.leaf_groups() == [["a0", "a2"], ["a1", "a4"], ["a3", "a5"]]
    assert units_above(m1.topology, 2, 0) == [["a0", "a2"], ["a1", "a4"], ["a3", "a5"]]
    m2 = widen_model(m1, 2, 0, [1, 0, 1])   # labels are canonicalised: {0, 2} and {1}
    assert m2.topology.parents(3) == [0, 1, 0]
    m3 = widen_model(m2, 3, 1, [0, 1])      # split a leaf that is not the first branch
    assert m3.topology.branch_counts() == [1, 1, 2, 4]
    assert m3.topology.leaf_groups() == [["a0", "a2"], ["a1"], ["a4"], ["a3", "a5"]]
    assert m3.topology.parents(3) == [0, 1, 1, 0]
    for m in (m1, m2, m3):
        assert not m.training
        assert torch.allclose(m(x), before, atol=1e-5)
    # the widened model trains (its branches drift apart) and round-trips through a checkpoint
    m3.train()
    opt = torch.optim.SGD(m3.parameters(), lr=0.05)
    y = (torch.rand(3, 6) > 0.5).float()
    losses = []
    for _ in range(5):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(m3(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    w = m3.stages[2].conv.weight.detach()
    assert not torch.equal(w[:48], w[48:])
    path = tmp_path / "wide.safetensors"
    save_model(path, m3, model_metadata(m3, {"height": 32, "width": 32}, method="fafs"))
    loaded, meta = load_model(path)
    assert loaded.topology.to_dict() == m3.topology.to_dict() and meta["method"] == "fafs"
    m3.eval()
    assert torch.equal(loaded(x), m3(x))


def test_split_topology_rejects_bad_requests():
    topo = shared("tiny", backbone("tiny").widths, SCHEMA.names)
    with pytest.raises(ValueError, match="labels"):
        split_topology(topo, 3, 0, [0, 1])
    with pytest.raises(ValueError, match="no branch"):
        split_topology(topo, 3, 2, [0] * 6)
    same, sources = split_topology(topo, 3, 0, [0] * 6)
    assert same.to_dict() == topo.to_dict() and sources[3] == [0]
