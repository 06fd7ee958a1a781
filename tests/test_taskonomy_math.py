"""Taskonomy: tournament matrices, AHP affinities, the BIP against brute force, plans as topologies."""
import numpy as np
import pytest
import torch

from attrnet.core.errors import AttrnetError
from attrnet.methods.taskonomy import (Plan, Transfer, ahp_affinity, brute_force_plan, plan_groups,
                                       plan_topology, solve_plan, top_pairs, tournament)
from attrnet.models.backbones import backbone
from attrnet.models.net import MultiTaskNet
from attrnet.core.schema import Schema, binary


def test_tournament_counts_wins_and_halves_ties():
    losses = np.array([[0.1, 0.2, 0.3, 0.4],
                       [0.2, 0.1, 0.3, 0.9],
                       [np.nan, 0.0, 0.0, 0.0]])
    w = tournament(losses)  # the first sample is ignored (a NaN loss)
    assert w[0, 1] == pytest.approx(1.5 / 3)
    assert w[1, 0] == pytest.approx(1.5 / 3)
    assert w[2, 0] == pytest.approx(1.0)
    assert np.allclose(w + w.T, 1.0)
    assert np.allclose(np.diag(w), 0.5)


def test_ahp_recovers_the_weights_of_a_consistent_tournament():
    v = np.array([0.4, 0.3, 0.2, 0.1])
    w = v[:, None] / (v[:, None] + v[None, :])  # then W / Wᵀ = v_i / v_j exactly
    assert np.allclose(ahp_affinity(w), v, atol=1e-9)


def test_ahp_ranks_a_dominant_transfer_first_despite_clipping():
    w = np.array([[0.5, 1.0, 1.0], [0.0, 0.5, 0.7], [0.0, 0.3, 0.5]])
    a = ahp_affinity(w)
    assert a.sum() == pytest.approx(1.0)
    assert list(np.argsort(-a)) == [0, 1, 2]
    assert np.isfinite(a).all()


def test_top_pairs_come_from_the_top_five_sources():
    first = np.array([[0.1], [0.3], [0.05], [0.2], [0.15], [0.12], [0.08]])
    pairs = top_pairs(first, 0)
    assert len(pairs) == 10
    assert {i for p in pairs for i in p} == {1, 3, 4, 5, 0}


def _random_transfers(rng, s, t, pairs):
    transfers = [Transfer((i,), j, float(rng.random())) for i in range(s) for j in range(t)]
    if pairs:
        for j in range(t):
            for a, b in rng.choice(s, size=(2, 2), replace=True):
                if a != b:
                    transfers.append(Transfer(tuple(sorted((int(a), int(b)))), j, float(rng.random() * 1.5)))
    return transfers


@pytest.mark.parametrize("seed", range(12))
def test_bip_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    s, t = int(rng.integers(2, 6)), int(rng.integers(1, 5))
    costs = rng.integers(1, 4, size=s).astype(float) if seed % 2 else None
    transfers = _random_transfers(rng, s, t, pairs=seed % 3 != 0)
    for budget in range(1, s + 2):
        want = brute_force_plan(s, t, transfers, budget, costs)
        if not np.isfinite(want):
            with pytest.raises(AttrnetError, match="budget"):
                solve_plan(s, t, transfers, budget, costs)
            continue
        plan = solve_plan(s, t, transfers, budget, costs)
        assert plan.objective == pytest.approx(want, abs=1e-5)
        assert sorted(plan.assignment) == list(range(t))  # every target exactly once
        used = {x for srcs in plan.assignment.values() for x in srcs}
        assert used == set(plan.chosen_sources)
        c = np.ones(s) if costs is None else costs
        assert c[plan.chosen_sources].sum() <= budget


def test_budget_limits_the_sources_and_self_transfer_wins_when_affordable():
    # 3 attributes, each its own source; self-transfer is best, source 0 is a good second.
    aff = np.array([[0.6, 0.3, 0.3], [0.2, 0.5, 0.1], [0.2, 0.2, 0.6]])
    transfers = [Transfer((i,), j, float(aff[i, j])) for i in range(3) for j in range(3)]
    full = solve_plan(3, 3, transfers, 3)
    assert full.assignment == {0: (0,), 1: (1,), 2: (2,)}
    one = solve_plan(3, 3, transfers, 1)
    assert one.chosen_sources == [0] and set(one.assignment.values()) == {(0,)}
    with pytest.raises(AttrnetError, match="budget 0"):
        solve_plan(3, 3, transfers, 0)


def test_plan_becomes_a_trainable_split_topology():
    names = ["a", "b", "c", "d"]
    plan = Plan(2, 1.0, [0, 2], {0: (0,), 1: (2,), 2: (0,), 3: (0, 2)})
    groups = plan_groups(plan, ["s0", "s1", "s2"], names)
    assert groups == {"s0": ["a", "c"], "s2": ["b"], "s0+s2": ["d"]}
    topo = plan_topology("tiny", backbone("tiny").widths, groups, 2)
    assert topo.branch_counts() == [1, 1, 3, 3]
    assert topo.tasks["a"] == topo.tasks["c"] != topo.tasks["b"]
    model = MultiTaskNet(topo, Schema(tuple(binary(n) for n in names)))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 4)
