"""Per-attribute masked losses and positive-class weighting."""
import math

import pytest
import torch
import torch.nn.functional as F

from attrnet.core.schema import Schema, binary, categorical
from attrnet.train.losses import AttributeLoss, class_weights, positive_rates, prior_logits, task_means

N = float("nan")
SCHEMA = Schema((binary("a"), categorical("c", ["x", "y", "z"]), binary("b")))


def test_losses_and_masks_per_attribute():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0, -3.0],
                           [-1.0, 0.0, 0.0, 0.0, 0.5]])
    labels = torch.tensor([[1.0, 0, 1, 0, N],
                           [N, N, N, N, 0.0]])
    losses, mask = AttributeLoss(SCHEMA)(logits, labels)
    assert losses.shape == (2, 3) and mask.tolist() == [[True, True, False], [False, False, True]]
    assert losses[0, 0].item() == pytest.approx(math.log1p(math.exp(-2.0)))
    ce = F.cross_entropy(torch.tensor([[1.0, 0.0, -1.0]]), torch.tensor([1])).item()
    assert losses[0, 1].item() == pytest.approx(ce)
    assert losses[1, 2].item() == pytest.approx(math.log1p(math.exp(0.5)))
    assert losses[0, 2].item() == 0 and losses[1, 0].item() == 0
    means, present = task_means(losses, mask)
    assert present.tolist() == [True, True, True]
    assert means[0].item() == pytest.approx(losses[0, 0].item())


def test_masked_labels_give_no_gradient():
    logits = torch.zeros(1, 5, requires_grad=True)
    labels = torch.tensor([[N, N, N, N, 1.0]])
    losses, mask = AttributeLoss(SCHEMA)(logits, labels)
    losses.sum().backward()
    assert logits.grad[0, :4].abs().sum() == 0 and logits.grad[0, 4] != 0


def test_positive_rates_and_class_weights():
    labels = torch.tensor([[1.0, 1, 0, 0, 1], [0.0, 0, 1, 0, N], [0.0, 0, 0, 1, 1], [1.0, N, N, N, 1]])
    p = positive_rates(labels, SCHEMA)
    assert p[0].item() == pytest.approx(0.5) and p[4].item() == pytest.approx(1.0)
    pw, nw = class_weights(torch.tensor([0.2, 0.5]), "ratio")
    assert torch.allclose(pw, torch.tensor([4.0, 1.0])) and torch.equal(nw, torch.ones(2))
    pw, nw = class_weights(torch.tensor([0.2]), "deepmar")
    assert pw.item() == pytest.approx(math.exp(0.8)) and nw.item() == pytest.approx(math.exp(0.2))
    with pytest.raises(ValueError):
        class_weights(p, "bogus")


def test_deepmar_weights_scale_binary_losses():
    schema = Schema((binary("a"),))
    logits = torch.tensor([[0.3], [0.3]])
    labels = torch.tensor([[1.0], [0.0]])
    plain, _ = AttributeLoss(schema)(logits, labels)
    pw, nw = class_weights(torch.tensor([0.2]), "deepmar")
    weighted, _ = AttributeLoss(schema, pw, nw)(logits, labels)
    assert weighted[0, 0].item() == pytest.approx(plain[0, 0].item() * math.exp(0.8))
    assert weighted[1, 0].item() == pytest.approx(plain[1, 0].item() * math.exp(0.2))


@pytest.mark.parametrize("mode", ["none", "ratio", "deepmar"])
def test_prior_biases_minimise_the_loss_of_a_model_that_sees_nothing(mode):
    """At the prior biases, the loss's gradient with respect to the biases is zero: no constant does better."""
    g = torch.Generator().manual_seed(0)
    a = (torch.rand(400, generator=g) < 0.1).float()
    c = F.one_hot(torch.multinomial(torch.tensor([0.6, 0.3, 0.1]), 400, replacement=True, generator=g), 3).float()
    b = (torch.rand(400, generator=g) < 0.7).float()
    labels = torch.cat([a[:, None], c, b[:, None]], 1)
    rates = positive_rates(labels, SCHEMA)
    pw, nw = class_weights(rates, mode)
    bias = prior_logits(rates, SCHEMA, mode).requires_grad_(True)
    losses, mask = AttributeLoss(SCHEMA, pw, nw)(bias.expand(400, -1), labels)
    losses.sum().backward()
    assert bias.grad.abs().max().item() < 1e-4
    if mode == "none":
        assert torch.sigmoid(bias[[0, 4]]).tolist() == pytest.approx(rates[[0, 4]].tolist(), abs=1e-6)
    if mode == "ratio":
        assert bias[[0, 4]].tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
