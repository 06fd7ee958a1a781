"""Folding: every topology kind gives the same probabilities as the trained model."""
import pytest
import torch
from torch import nn

from attrnet.export.fold import fold_bn, fold_model
from attrnet.export.runtime import BranchConv, FoldedNet, MixConv, MixMatmul
from attrnet.core.input_spec import InputSpec
from attrnet.models.backbones import backbone
from attrnet.models.net import MultiTaskNet
from attrnet.core.topology import Branch, Topology, cross_stitch, shared, split
from attrnet.core.schema import Schema, binary, market_schema

from export_helpers import SIZE, images, randomise, reference_probs, uneven_tree

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SPEC = InputSpec(SIZE, SIZE, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3))
MARKET = market_schema()
GROUPS = {"a": MARKET.names[:4], "b": MARKET.names[4:9], "c": MARKET.names[9:]}


def _check(topology: Topology, schema: Schema = MARKET, spec: InputSpec = SPEC, **kw) -> FoldedNet:
    torch.manual_seed(0)
    model = randomise(MultiTaskNet(topology, schema))
    folded, report = fold_model(model, spec, **kw)
    imgs = images(5, spec.height)
    with torch.no_grad():
        out = folded(imgs)
    ref = reference_probs(model, spec, imgs)
    assert out.shape == (5, schema.num_columns) and out.dtype == torch.float32
    assert (out - ref).abs().max().item() < 1e-5
    assert len(report.stages) == topology.num_stages
    return folded


def test_shared_trunk_is_one_conv_per_stage():
    schema = Schema(tuple(binary(f"a{i}") for i in range(7)))
    folded = _check(shared("tiny", backbone("tiny").widths, schema.names), schema, mode="flops")
    convs = [m for m in folded.modules() if isinstance(m, BranchConv)]
    assert len(convs) == 4 and all(c.groups == 1 and c.gather is None for c in convs)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())


@pytest.mark.parametrize("mode", ["grouped", "dense", "flops", "measure"])
def test_uneven_tree_with_categorical_heads(mode):
    folded = _check(uneven_tree(MARKET), mode=mode)
    convs = [m for m in folded.modules() if isinstance(m, BranchConv)]
    if mode == "grouped":
        assert all(c.groups == n for c, n in zip(convs, [2, 3, 4, 5]))
        assert all(c.gather is not None for c in convs)
    if mode == "dense":
        assert all(c.groups == 1 and c.gather is None for c in convs)


def test_parent_grouped_form_without_gather():
    w = backbone("tiny").widths
    topo = Topology("tiny", [[Branch(0, w[0])], [Branch(0, w[1])],
                             [Branch(0, w[2]), Branch(0, w[2])],
                             [Branch(0, w[3]), Branch(0, w[3]), Branch(1, w[3]), Branch(1, w[3])]],
                    {n: i % 4 for i, n in enumerate(MARKET.names)})
    torch.manual_seed(0)
    model = randomise(MultiTaskNet(topo, MARKET))
    from attrnet.export.fold import _candidates

    assert "parent" in _candidates([{0: None}, {0: None}, {1: None}, {1: None}], 2)
    assert "parent" not in _candidates([{0: None}, {1: None}, {1: None}], 2)  # uneven fan-out
    folded, report = fold_model(model, SPEC, mode="measure")
    assert set(report.stages[3].candidates_ms) == {"grouped", "parent", "dense"}
    imgs = images(3)
    assert (folded(imgs) - reference_probs(model, SPEC, imgs)).abs().max() < 1e-5


@pytest.mark.parametrize("granularity", ["channel", "scalar"])
@pytest.mark.parametrize("mix", ["fold", "keep", "flops"])
def test_cross_stitch_alphas(granularity, mix):
    topo = cross_stitch("tiny", backbone("tiny").widths, GROUPS, granularity=granularity)
    folded = _check(topo, mode="flops", mix=mix)
    kept = [m for m in folded.modules() if isinstance(m, (MixMatmul, MixConv))]
    assert len(kept) == (0 if mix == "fold" else 3)


def test_cross_stitch_keep_measures_both_forms():
    torch.manual_seed(0)
    model = randomise(MultiTaskNet(cross_stitch("tiny", backbone("tiny").widths, GROUPS), MARKET))
    _, report = fold_model(model, SPEC, mode="measure", mix="keep")
    assert all(set(m.candidates_ms) == {"matmul", "conv1x1"} for m in report.mixes)
    assert all(m.mode in ("matmul", "conv1x1") and m.fold_extra_flops > 0 for m in report.mixes)


def test_vgg_fc_stages_absorb_pool_and_cross_stitch():
    w = backbone("vgg16-thin").widths
    topo = cross_stitch("vgg16-thin", w, GROUPS, mix_after=[12, 13])
    folded = _check(topo, mode="flops", mix="fold")
    assert not any(isinstance(m, (MixMatmul, MixConv)) for m in folded.modules())
    _check(split("vgg16-thin", w, GROUPS, 14), mode="dense", spec=InputSpec(48, 40))


def test_resnet_blocks_with_gather_and_downsample():
    # thin widths (the topology sets them) keep this fast; the block structure is resnet18's
    w = [8, 8, 8, 16, 16, 32, 32, 64, 64]
    # stage 2: a gather feeding an identity shortcut; stage 3: uneven fan-out into a downsampling block
    stages = [[Branch(0, w[0])], [Branch(0, w[1])], [Branch(0, w[2]), Branch(0, w[2])],
              [Branch(0, w[3]), Branch(1, w[3]), Branch(1, w[3])]]
    stages += [[Branch(0, x), Branch(1, x), Branch(2, x)] for x in w[4:]]
    topo = Topology("resnet18", stages, {n: i % 3 for i, n in enumerate(MARKET.names)})
    for mode in ("grouped", "dense", "measure"):
        _check(topo, mode=mode)


def test_resnet_bottlenecks_and_stem_branches():
    widths = [8] + [16] * 3 + [32] * 4 + [64] * 6 + [128] * 3
    _check(split("resnet50", widths, GROUPS, 0), mode="dense")  # the stem itself branches
    _check(split("resnet50", widths, GROUPS, 8), mode="grouped")


def test_fold_bn_matches_conv_then_bn():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, padding=1)
    bn = randomise_bn(nn.BatchNorm2d(6))
    x = torch.randn(2, 4, 8, 8)
    w, b = fold_bn(conv.weight, conv.bias, bn)
    with torch.no_grad():
        assert torch.allclose(torch.nn.functional.conv2d(x, w, b, padding=1), bn(conv(x)), atol=1e-5)


def randomise_bn(bn: nn.BatchNorm2d) -> nn.BatchNorm2d:
    with torch.no_grad():
        bn.running_mean.normal_(0, 0.5)
        bn.running_var.uniform_(0.3, 3)
        bn.weight.uniform_(0.5, 2)
        bn.bias.normal_(0, 0.5)
    return bn.eval()


def test_uint8_nhwc_input_and_logits_output():
    torch.manual_seed(0)
    model = randomise(MultiTaskNet(uneven_tree(MARKET), MARKET))
    folded, _ = fold_model(model, SPEC, mode="flops", with_logits=True)
    imgs = images(4)
    probs, logits = folded(imgs)
    x = imgs.permute(0, 3, 1, 2).float() / 255.0
    x = (x - torch.tensor(SPEC.mean).reshape(1, 3, 1, 1)) / torch.tensor(SPEC.std).reshape(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(logits, model(x), atol=1e-4)
    for sl, attr in zip(MARKET.slices, MARKET.attributes):
        if attr.kind == "categorical":
            assert torch.allclose(probs[:, sl].sum(1), torch.ones(4), atol=1e-5)


def test_mix_after_the_last_stage_folds_into_the_heads_for_free():
    topo = cross_stitch("tiny", backbone("tiny").widths, GROUPS, mix_after=[2, 3])
    for mix in ("flops", "fold", "keep"):
        _check(topo, mode="flops", mix=mix)
    torch.manual_seed(0)
    _, report = fold_model(randomise(MultiTaskNet(topo, MARKET)), SPEC, mode="flops")
    last = report.mixes[-1]
    assert last.after_stage == 3 and last.mode == "fold" and last.fold_extra_flops == 0


def test_mix_before_a_residual_block_is_kept_and_cannot_be_forced_to_fold():
    from attrnet.core.errors import InputError

    widths = [8, 8, 8, 16, 16, 32, 32, 64, 64]
    topo = cross_stitch("resnet18", widths, GROUPS, mix_after=[4])
    folded = _check(topo, mode="flops")
    assert sum(isinstance(m, (MixMatmul, MixConv)) for m in folded.modules()) == 1
    with pytest.raises(InputError, match="cannot be folded"):
        fold_model(MultiTaskNet(topo, MARKET), SPEC, mode="flops", mix="fold")


THIN_WIDTHS = {"tiny": backbone("tiny").widths, "vgg16-thin": backbone("vgg16-thin").widths,
               "resnet18": [8, 8, 8, 16, 16, 32, 32, 64, 64]}


@pytest.mark.parametrize("stitch_at", ["pools", "all"])
@pytest.mark.parametrize("arch", list(THIN_WIDTHS))
def test_cross_stitch_units_at_every_stitch_at_position_fold_exactly(arch, stitch_at):
    spec = backbone(arch)
    at = spec.resolution_ends() if stitch_at == "pools" else list(range(len(spec.stages)))
    topo = cross_stitch(arch, THIN_WIDTHS[arch], GROUPS, mix_after=at)
    assert [m.after_stage for m in topo.mix][-1] == len(spec.stages) - 1  # the features the heads read
    _check(topo, mode="flops")
