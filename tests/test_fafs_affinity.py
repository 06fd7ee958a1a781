"""Task affinity (concurrent hard/easy samples, EMA of batch means) and branch affinity."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from attrnet.methods.fafs.affinity import TaskAffinity, branch_affinity, misclassified
from attrnet.core.schema import Schema, binary, categorical

LOSSES = torch.tensor([[1.0, 1.0, 0.0],
                       [0.0, 0.0, 1.0],
                       [1.0, 0.0, 0.0],
                       [0.0, 1.0, 1.0]])
ALL = torch.ones(4, 3, dtype=torch.bool)


def test_first_batch_hard_against_batch_mean_and_agreement_rates():
    aff = TaskAffinity(3)
    hard = aff.hard_from_losses(LOSSES, ALL)
    assert torch.equal(hard, LOSSES >= 0.5)  # every task's batch mean is 0.5
    aff.update(hard, ALL)
    expected = np.array([[1.0, 0.5, 0.0], [0.5, 1.0, 0.5], [0.0, 0.5, 1.0]])
    np.testing.assert_allclose(aff.matrix(), expected)
    np.testing.assert_allclose(aff.running_loss().numpy(), [0.5, 0.5, 0.5])


def test_ema_of_batch_means_with_decay():
    aff = TaskAffinity(2, decay=0.5)
    same = torch.tensor([[True, True], [False, False]])
    differ = torch.tensor([[True, False], [False, True]])
    mask = torch.ones(2, 2, dtype=torch.bool)
    aff.update(same, mask)      # batch agreement 1
    aff.update(differ, mask)    # batch agreement 0
    # normalised EMA: (0.5 * 1 + 0) / (0.5 + 1)
    assert aff.matrix()[0, 1] == pytest.approx(1 / 3)
    aff.update(differ, mask)
    assert aff.matrix()[0, 1] == pytest.approx(0.25 / 1.75)


def test_hard_uses_running_mean_before_the_batch():
    aff = TaskAffinity(1, decay=0.9)
    aff.hard_from_losses(torch.tensor([[2.0], [2.0]]), torch.ones(2, 1, dtype=torch.bool))  # E[m] = 2
    hard = aff.hard_from_losses(torch.tensor([[1.0], [3.0]]), torch.ones(2, 1, dtype=torch.bool))
    assert hard[:, 0].tolist() == [False, True]
    assert aff.running_loss().item() == pytest.approx((0.9 * 2 + 2) / 1.9)


def test_missing_labels_are_left_out_pair_by_pair():
    aff = TaskAffinity(3)
    hard = torch.tensor([[True, True, False], [False, True, True]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    aff.update(hard, mask)
    a = aff.matrix()
    assert a[0, 1] == 1.0            # only sample 0 has both: both hard
    assert a[0, 2] == 0.5 and a[1, 2] == 0.5  # never labelled together
    aff.update(torch.tensor([[True, False, True]]), torch.ones(1, 3, dtype=torch.bool))
    assert aff.matrix()[0, 2] == 1.0 and aff.matrix()[0, 1] == pytest.approx(0.99 / 1.99)


def test_misclassified_mode_and_state_round_trip():
    schema = Schema((binary("a"), categorical("c", ["x", "y", "z"]), binary("b")))
    logits = torch.tensor([[2.0, 0.0, 3.0, 0.0, -1.0], [-2.0, 5.0, 0.0, 0.0, 1.0]])
    labels = torch.tensor([[1.0, 0.0, 1.0, 0.0, 1.0], [1.0, 1.0, 0.0, 0.0, float("nan")]])
    wrong = misclassified(logits, labels, schema)
    assert wrong.tolist() == [[False, False, True], [True, False, True]]
    aff = TaskAffinity(3, mode="error")
    mask = torch.tensor([[True, True, True], [True, True, False]])
    aff.update_from_batch(torch.zeros(2, 3), mask, logits, labels, schema)
    assert aff.matrix()[0, 1] == pytest.approx(0.5) and aff.matrix()[0, 2] == 0.0
    other = TaskAffinity(3, mode="error")
    other.load_state_dict(aff.state_dict("x."), "x.")
    np.testing.assert_array_equal(other.matrix(), aff.matrix())
    with pytest.raises(ValueError):
        TaskAffinity(3, mode="nope")  # type: ignore[arg-type]


def test_branch_affinity_mean_of_min():
    a = np.array([[1.0, 0.9, 0.2, 0.4],
                  [0.9, 1.0, 0.3, 0.5],
                  [0.2, 0.3, 1.0, 0.8],
                  [0.4, 0.5, 0.8, 1.0]])
    ab = branch_affinity(a, [[0, 1], [2, 3], [1]])
    # Ã(0,1) = mean(min(.2,.4), min(.3,.5)) = .25; Ã(1,0) = mean(min(.2,.3), min(.4,.5)) = .3
    assert ab[0, 1] == pytest.approx(0.275) and ab[1, 0] == ab[0, 1]
    assert ab[0, 0] == pytest.approx(0.9) and ab[2, 2] == 1.0
    # Ã(0,2) = mean(.9, 1) = .95; Ã(2,0) = min(.9, 1) = .9
    assert ab[0, 2] == pytest.approx(0.925)
    np.testing.assert_allclose(branch_affinity(a, [[i] for i in range(4)]), a)
