"""Loss weighting strategies against hand-computed values."""
import math

import pytest
import torch

from attrnet.train.weighting import AWMT, DWA, Uncertainty, Weighting, awmt_update, dwa_weights, make_weighting


def test_equal_is_the_mean_of_task_losses():
    w = make_weighting("equal", 3)
    assert w.combine(torch.tensor([1.0, 2.0, 6.0])).item() == pytest.approx(3.0)
    assert w.observe_val(torch.ones(3)) is False and w.end_epoch(torch.ones(3)) is False


def test_awmt_formula_worked_example():
    # pre = [1, 2], cur = [0.5, 1.8]; trend = [1, 1/9] -> norm_trend = [1.8, 0.2];
    # norm_loss = [0.5, 1.8] / 1.15; w = norm_loss * norm_trend = [0.7826, 0.3130]; / mean -> [10/7, 4/7]
    w = awmt_update(torch.tensor([1.0, 2.0]), torch.tensor([0.5, 1.8]))
    assert torch.allclose(w, torch.tensor([10 / 7, 4 / 7]), atol=1e-6)


def test_awmt_zero_trend_window_falls_back_to_normalised_loss():
    # cur == pre everywhere: trend is all zero and the public port divides by zero
    w = awmt_update(torch.tensor([1.0, 3.0]), torch.tensor([1.0, 3.0]))
    assert torch.allclose(w, torch.tensor([0.5, 1.5]))


def test_awmt_guards_zero_and_nan_losses():
    w = awmt_update(torch.tensor([1.0, 2.0, float("nan"), 1.0]), torch.tensor([0.5, 1.8, 1.0, 0.0]))
    assert torch.isfinite(w).all()
    # the two well-defined tasks keep their ratio 2.5 : 1; the guarded ones are neutral (factors 1)
    assert w[0] / w[1] == pytest.approx(2.5)
    assert w[2] == pytest.approx(w[3])
    assert w.mean().item() == pytest.approx(1.0)
    assert awmt_update(torch.tensor([float("nan")]), torch.tensor([0.0])) is None


def test_awmt_updates_every_k_steps_from_the_last_two_windows():
    a = AWMT(2, k=2)
    seq = [[9.0, 9.0], [9.0, 9.0], [1.0, 2.0], [1.0, 2.0], [0.5, 1.8], [0.5, 1.8]]
    changed = [a.observe_val(torch.tensor(v)) for v in seq]
    assert changed == [False, False, False, True, False, True]
    assert torch.allclose(a.weights(), torch.tensor([10 / 7, 4 / 7]), atol=1e-6)
    b = AWMT(2, k=2)
    b.load_state_dict(a.state_dict())
    assert b.count == 6 and torch.equal(b.weights(), a.weights())
    assert a.observe_val(torch.tensor([0.5, 1.8])) is False
    assert a.combine(torch.tensor([1.0, 1.0])).item() == pytest.approx(1.0)


def test_awmt_tasks_missing_from_a_window_stay_neutral():
    a = AWMT(2, k=1)
    a.observe_val(torch.tensor([1.0, float("nan")]))
    assert a.observe_val(torch.tensor([0.5, float("nan")])) is True
    assert torch.allclose(a.weights(), torch.tensor([1.0, 1.0]))


def test_uncertainty_loss_and_gradient():
    u = Uncertainty(2)
    with torch.no_grad():
        u.log_var.copy_(torch.tensor([0.0, math.log(4.0)]))
    losses = torch.tensor([2.0, 4.0])
    total = u.combine(losses)
    # mean(exp(-s) L + s/2) = (2 + 0 + 1 + log(4)/2) / 2
    assert total.item() == pytest.approx((2 + 1 + math.log(4) / 2) / 2)
    total.backward()
    # d/ds_i = (-exp(-s_i) L_i + 1/2) / 2
    assert torch.allclose(u.log_var.grad, torch.tensor([(-2 + 0.5) / 2, (-1 + 0.5) / 2]))
    assert torch.allclose(u.weights(), torch.tensor([1.0, 0.25]))
    present = torch.tensor([True, False])
    assert u.combine(torch.tensor([2.0, 0.0]), present).item() == pytest.approx(1.0)


def test_dwa_weights_hand_computed_and_first_two_epochs_equal():
    d = DWA(2, temperature=2.0)
    assert d.end_epoch(torch.tensor([1.0, 1.0])) is False
    assert torch.equal(d.weights(), torch.ones(2))
    assert d.end_epoch(torch.tensor([0.5, 1.0])) is True
    e = torch.exp(torch.tensor([0.25, 0.5], dtype=torch.float64))
    assert torch.allclose(d.weights().double(), 2 * e / e.sum(), atol=1e-6)
    # a task with zero loss two epochs ago gets ratio 1
    w = dwa_weights(torch.tensor([0.0, 1.0]), torch.tensor([1.0, 1.0]))
    assert torch.allclose(w, torch.ones(2))


def test_unknown_weighting():
    with pytest.raises(ValueError, match="unknown weighting"):
        make_weighting("magic", 2)
    assert isinstance(make_weighting("equal", 2), Weighting)
