"""SOMP thinning: planted supports, reconstruction vs norm/random selection, wide-network loading."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from attrnet.train.checkpoint import model_metadata, save_model
from attrnet.core.errors import InputError
from attrnet.methods.fafs.somp import init_thin_model, reconstruction_error, select_filters, somp
from attrnet.models.backbones import backbone
from attrnet.models.net import MultiTaskNet
from attrnet.core.topology import Topology, shared
from attrnet.core.schema import Schema, binary

SCHEMA = Schema(tuple(binary(f"a{i}") for i in range(4)))
VGG_CONV_IDX = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]


def vgg_thin(conv: int, fc: int) -> MultiTaskNet:
    """A one-branch vgg16-thin net with custom widths (conv stages capped at `conv`, fc `fc`)."""
    spec = backbone("vgg16-thin")
    widths = [min(conv, w) if st.kind == "conv" else fc for st, w in zip(spec.stages, spec.widths)]
    return MultiTaskNet(shared("vgg16-thin", widths, SCHEMA.names), SCHEMA)


def test_somp_recovers_planted_atoms():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, 5))
    atoms = np.concatenate([rng.normal(size=(40, 20)), base, rng.normal(size=(40, 15))], axis=1)
    signals = base @ rng.normal(size=(5, 30))
    assert sorted(somp(signals, atoms, 5)) == [20, 21, 22, 23, 24]


def test_filters_that_are_combinations_are_reconstructed_exactly():
    rng = np.random.default_rng(1)
    base = rng.normal(size=(4, 3, 3, 3))
    combos = np.einsum("ok,kcij->ocij", rng.normal(size=(28, 4)), base)
    weight = np.concatenate([combos[:10], base, combos[10:]])  # planted rows 10..13
    rows = select_filters(weight, 4)
    assert len(set(rows)) == 4
    assert reconstruction_error(weight, rows) < 1e-9
    assert np.linalg.matrix_rank(weight.reshape(32, -1)[rows]) == 4
    # more filters than the rank: the residual is zero, the rest are filled (distinct, valid)
    rows = select_filters(weight, 6)
    assert len(set(rows)) == 6 and reconstruction_error(weight, rows) < 1e-9


def test_somp_beats_norm_and_random_selection_on_random_layers():
    somp_err, norm_err, rand_err = [], [], []
    for seed in range(8):
        rng = np.random.default_rng(seed)
        w = rng.normal(size=(64, 16)) @ rng.normal(size=(16, 72)) + 0.3 * rng.normal(size=(64, 72))
        w *= np.exp(rng.normal(size=(64, 1)))  # filters of very different norms
        somp_err.append(reconstruction_error(w, select_filters(w, 16)))
        norm_err.append(reconstruction_error(w, list(np.argsort(-np.linalg.norm(w, axis=1))[:16])))
        rand = [reconstruction_error(w, list(rng.choice(64, 16, replace=False))) for _ in range(10)]
        rand_err.append(np.mean(rand))
        assert somp_err[-1] < min(rand)
    assert np.mean(somp_err) < 0.85 * np.mean(norm_err)
    assert np.mean(somp_err) < 0.5 * np.mean(rand_err)


def torchvision_state(conv: int, fc: int, bn: bool = False, seed: int = 0) -> dict[str, torch.Tensor]:
    """A torchvision-keyed VGG-16(-BN) state dict with small widths."""
    g = torch.Generator().manual_seed(seed)
    state, cin, idx = {}, 3, 0
    for block in (2, 2, 3, 3, 3):
        for _ in range(block):
            state[f"features.{idx}.weight"] = torch.randn(conv, cin, 3, 3, generator=g)
            state[f"features.{idx}.bias"] = torch.randn(conv, generator=g)
            if bn:
                for name in ("weight", "bias", "running_mean", "running_var"):
                    state[f"features.{idx + 1}.{name}"] = torch.rand(conv, generator=g) + 0.5
                idx += 3
            else:
                idx += 2
            cin = conv
        idx += 1  # max pool
    state["classifier.0.weight"] = torch.randn(fc, conv * 49, generator=g)
    state["classifier.0.bias"] = torch.randn(fc, generator=g)
    state["classifier.3.weight"] = torch.randn(fc, fc, generator=g)
    state["classifier.3.bias"] = torch.randn(fc, generator=g)
    state["classifier.6.weight"] = torch.randn(10, fc, generator=g)
    return state


def test_torchvision_keys_match_the_real_vgg16_layout():
    state = torchvision_state(4, 8)
    assert sorted(int(k.split(".")[1]) for k in state if k.startswith("features") and k.endswith("weight")) \
        == VGG_CONV_IDX


def test_init_from_torchvision_state_dict_selects_restricted_rows(tmp_path):
    state = torchvision_state(16, 32)
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    model = vgg_thin(8, 16)
    report = init_thin_model(model, path)
    assert [lay["thin"] for lay in report["layers"]] == model.topology.widths()
    # every thin filter is a wide filter restricted to the input channels kept below it
    prev = list(range(3))
    for s, idx in enumerate(VGG_CONV_IDX):
        thin = model.stages[s].conv.weight.detach()
        wide = state[f"features.{idx}.weight"][:, prev]
        rows = [int(torch.nonzero((wide == t).flatten(1).all(1))[0]) for t in thin]
        assert len(set(rows)) == thin.shape[0]
        assert torch.equal(model.stages[s].conv.bias.detach(), state[f"features.{idx}.bias"][rows])
        prev = rows
    fc1 = model.stages[13].fc.weight.detach()[0]
    wide_fc1 = state["classifier.0.weight"].reshape(32, 16, 49)[:, prev].reshape(32, -1)
    assert all((wide_fc1 == row).all(1).any() for row in fc1)


def test_attrnet_checkpoint_of_the_same_widths_is_copied_exactly(tmp_path):
    torch.manual_seed(0)
    wide = vgg_thin(8, 16)
    for m in wide.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2.0)
    path = tmp_path / "wide.safetensors"
    save_model(path, wide, model_metadata(wide, {"height": 32, "width": 32}))
    thin = vgg_thin(8, 16)
    init_thin_model(thin, path)
    x = torch.randn(2, 3, 32, 32)
    wide.eval(), thin.eval()
    assert torch.allclose(thin.features(x), wide.features(x), atol=1e-5)
    smaller = vgg_thin(4, 8)
    report = init_thin_model(smaller, path)
    assert [lay["wide"] for lay in report["layers"]] == wide.topology.widths()
    assert torch.equal(smaller.stages[0].bn.running_var,
                       wide.stages[0].bn.running_var[select_filters(wide.stages[0].conv.weight.detach().numpy(), 4)])


def test_bad_wide_networks_are_input_errors(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    model = vgg_thin(4, 8)
    with pytest.raises(InputError, match="junk.pth"):
        init_thin_model(model, junk)
    with pytest.raises(InputError, match="not found"):
        init_thin_model(model, tmp_path / "missing.pth")
    narrow = tmp_path / "narrow.pth"
    torch.save(torchvision_state(2, 8), narrow)
    with pytest.raises(InputError, match="fewer than"):
        init_thin_model(model, narrow)
    no_fc = tmp_path / "no_fc.pth"
    torch.save({k: v for k, v in torchvision_state(16, 32).items() if k.startswith("features")}, no_fc)
    with pytest.raises(InputError, match="13 conv and 0 fc"):
        init_thin_model(model, no_fc)
    tiny = MultiTaskNet(shared("tiny", backbone("tiny").widths, SCHEMA.names), SCHEMA)
    split = Topology.from_dict({**tiny.topology.to_dict(), "stages": [[{"parent": 0, "width": 16}]] * 3
                                + [[{"parent": 0, "width": 64}, {"parent": 0, "width": 64}]],
                                "tasks": {"a0": 0, "a1": 1, "a2": 0, "a3": 1}})
    with pytest.raises(InputError, match="one-branch"):
        init_thin_model(MultiTaskNet(split, SCHEMA), narrow)


def test_selection_runs_on_the_layer_restricted_to_the_filters_kept_below():
    from attrnet.methods.fafs.somp import WideLayer, restrict_inputs, thin_layers

    # layer 0 keeps its two large filters, i.e. input channels 0 and 1 of layer 1
    below = WideLayer("fc", np.diag([5.0, 4.0, 0.01, 0.01]), None)
    # layer 1: filter 0 reads only channels 2 and 3 (the largest filter before restriction, zero after it);
    # filters 1 and 2 read channels 0 and 1
    above = WideLayer("fc", np.array([[0.0, 0.0, 10.0, 10.0], [1.0, 0.1, 0.0, 0.0], [1.0, -0.1, 0.0, 0.0]]), None)
    assert select_filters(above.weight, 1) == [0]                       # what the unrestricted layer would pick
    thin, picks, errors = thin_layers([below, above], [2, 1])
    assert picks[0] == [0, 1]
    assert picks[1] != [0] and picks[1] == select_filters(restrict_inputs(above.weight, [0, 1], 4), 1)
    assert thin[1].weight.shape == (1, 2) and np.abs(thin[1].weight).sum() > 0
    assert errors[1] < 0.2  # filters 1 and 2 are nearly parallel once restricted
