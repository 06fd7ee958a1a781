"""Cross-stitch units, the cross-stitch method's topology, optimiser groups, weight replication and outputs."""
import json

import pytest
import torch

from attrnet.core.errors import InputError
from attrnet.methods.cross_stitch import CrossStitchMethod
from attrnet.models.backbones import backbone
from attrnet.models.columns import alpha_summary, replicate_into_columns, reset_alphas
from attrnet.models.cross_stitch import CrossStitch, init_alphas
from attrnet.models.net import MultiTaskNet
from attrnet.core.topology import cross_stitch, shared
from attrnet.core.schema import Schema, binary, market_schema, write_groups

GROUPS = {"a": ["p", "q"], "b": ["r"], "c": ["s", "t"]}


def _schema() -> Schema:
    return Schema(tuple(binary(n) for n in "pqrst"))


def _cs_model(granularity="channel") -> MultiTaskNet:
    torch.manual_seed(0)
    topo = cross_stitch("tiny", backbone("tiny").widths, GROUPS, granularity=granularity)
    return MultiTaskNet(topo, _schema())


def _randomise_bn(model):
    g = torch.Generator().manual_seed(1)
    for name, buf in model.named_buffers():
        if name.endswith("running_mean"):
            buf.copy_(torch.randn(buf.shape, generator=g) * 0.1)
        elif name.endswith("running_var"):
            buf.copy_(torch.rand(buf.shape, generator=g) + 0.5)


def _column(model: MultiTaskNet, k: int, index: int, key: str, t: torch.Tensor) -> torch.Tensor:
    """Slice column `index` out of a branch-batched stage tensor."""
    if t.dim() == 0:
        return t
    per = t.shape[0] // k
    return t[index * per:(index + 1) * per]


@pytest.mark.parametrize("k", [2, 3, 5, 8, 40])
@pytest.mark.parametrize("channels", [None, 7])
def test_initial_alpha_rows_are_convex(k, channels):
    a = init_alphas(k, channels, 0.9)
    rows = a.sum(1)
    assert torch.allclose(rows, torch.ones_like(rows), atol=1e-6)
    diag = torch.diagonal(a, dim1=0, dim2=1)
    assert torch.allclose(diag, torch.full_like(diag, 0.9))
    off = a[~torch.eye(k, dtype=torch.bool)]
    assert torch.allclose(off, torch.full_like(off, 0.1 / (k - 1)))


@pytest.mark.parametrize("granularity", ["channel", "scalar"])
def test_unit_computes_weighted_sum_of_columns(granularity):
    torch.manual_seed(0)
    k, c = 3, 4
    unit = CrossStitch(k, c, granularity)
    with torch.no_grad():
        unit.alpha.normal_()
    x = torch.randn(2, k * c, 5, 5)
    y = unit(x)
    a = unit.matrix()
    cols = x.reshape(2, k, c, 5, 5)
    for b in range(k):
        want = sum(a[b, i].view(1, c, 1, 1) * cols[:, i] for i in range(k))
        assert torch.allclose(y[:, b * c:(b + 1) * c], want, atol=1e-5)


@pytest.mark.parametrize("granularity", ["channel", "scalar"])
def test_unit_mixes_fully_connected_columns(granularity):
    torch.manual_seed(0)
    unit = CrossStitch(4, 6, granularity)
    with torch.no_grad():
        unit.alpha.normal_()
    x = torch.randn(3, 24, requires_grad=True)
    y = unit(x)
    want = torch.einsum("bac,nac->nbc", unit.matrix(), x.reshape(3, 4, 6)).reshape(3, 24)
    assert torch.allclose(y, want, atol=1e-5)
    y.sum().backward()
    assert unit.alpha.grad is not None and x.grad is not None


def test_identity_alphas_equal_separate_columns():
    model = _cs_model()
    _randomise_bn(model)
    reset_alphas(model, 1.0)
    model.eval()
    x = torch.randn(3, 3, 32, 32)
    got = model(x)
    schema = _schema()
    k = len(GROUPS)
    state = model.state_dict()
    for g, (name, members) in enumerate(GROUPS.items()):
        sub = Schema(tuple(binary(m) for m in members))
        single = MultiTaskNet(shared("tiny", backbone("tiny").widths, members), sub).eval()
        own = {}
        for key, t in single.state_dict().items():
            if key.startswith("stages."):
                own[key] = _column(model, k, g, key, state[key])
            else:  # head: rows of this group's output columns
                rows = [schema.columns.index(m) for m in members]
                own[key] = state[key][rows]
        single.load_state_dict(own)
        want = single(x)
        for j, m in enumerate(members):
            assert torch.allclose(got[:, schema.columns.index(m)], want[:, j], atol=1e-5), (name, m)


def test_mixing_changes_the_output():
    model = _cs_model().eval()
    x = torch.randn(2, 3, 32, 32)
    reset_alphas(model, 1.0)
    ident = model(x)
    reset_alphas(model, 0.5)
    assert not torch.allclose(model(x), ident, atol=1e-4)


def test_alphas_train_at_their_own_learning_rate():
    method = CrossStitchMethod({"alpha_lr_mult": 250})
    schema = _schema()
    topo = method.initial_topology("tiny", schema)
    model = MultiTaskNet(topo, schema)
    lr = 0.01
    groups = method.param_groups(model, lr)
    alpha_ids = {id(p) for p in model.alpha_parameters()}
    assert {id(p) for p in groups[1]["params"]} == alpha_ids
    assert not alpha_ids & {id(p) for p in groups[0]["params"]}
    assert groups[1]["weight_decay"] == 0.0
    opt = torch.optim.SGD(groups, lr=lr)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model(torch.randn(4, 3, 32, 32)).pow(2).mean().backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    opt.step()
    for n, p in model.named_parameters():
        mult = 250 if n.startswith("mixes.") else 1
        assert torch.allclose(before[n] - lr * mult * grads[n], p.detach(), atol=1e-6), n
    assert all(grads[f"mixes.{s}.alpha"].abs().sum() > 0 for s in range(3))


def test_columns_from_groups_file_keep_categorical_attributes_whole(tmp_path):
    schema = market_schema()
    path = tmp_path / "groups.json"
    write_groups(path, {"bags": ["backpack", "bag", "handbag"], "colours": ["upcolor", "downcolor"]})
    method = CrossStitchMethod({"columns": str(path), "alpha_granularity": "scalar"})
    topo = method.initial_topology("tiny", schema)
    assert topo.num_leaves == 2 + (len(schema.names) - 5)  # unnamed attributes get a column each
    assert topo.tasks["upcolor"] == topo.tasks["downcolor"]
    assert [m.after_stage for m in topo.mix] == [0, 1, 2, 3]  # tiny: pools and all alike
    assert {m.granularity for m in topo.mix} == {"scalar"}
    model = MultiTaskNet(topo, schema)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, schema.num_columns)


def test_bad_column_options_are_input_errors(tmp_path):
    path = tmp_path / "one.json"
    write_groups(path, {"all": list("pqrst")})
    with pytest.raises(InputError, match="at least 2 columns"):
        CrossStitchMethod({"columns": str(path)}).initial_topology("tiny", _schema())
    with pytest.raises(InputError, match="missing.json: groups file not found"):
        CrossStitchMethod({"columns": str(tmp_path / "missing.json")}).initial_topology("tiny", _schema())
    with pytest.raises(InputError, match="alpha-granularity"):
        CrossStitchMethod({"alpha_granularity": "full"})


def test_shared_checkpoint_replicated_into_columns_gives_the_same_predictions():
    torch.manual_seed(3)
    schema = _schema()
    src = MultiTaskNet(shared("tiny", backbone("tiny").widths, schema.names), schema)
    _randomise_bn(src)
    src.eval()
    model = _cs_model().eval()
    untouched = replicate_into_columns(model, src.state_dict(), src.topology)
    assert untouched == [f"mixes.{s}.alpha" for s in range(3)]
    x = torch.randn(2, 3, 32, 32)
    # identical columns mixed by convex rows stay identical
    assert torch.allclose(model(x), src(x), atol=1e-5)


def test_replication_rejects_another_arch():
    src = MultiTaskNet(shared("resnet18", backbone("resnet18").widths, list("pqrst")), _schema())
    with pytest.raises(ValueError, match="resnet18"):
        replicate_into_columns(_cs_model(), src.state_dict(), src.topology)


def test_finish_writes_alphas_json_and_heatmap(tmp_path):
    path = tmp_path / "g.json"
    write_groups(path, GROUPS)
    method = CrossStitchMethod({"columns": str(path)})
    schema = _schema()
    model = MultiTaskNet(method.initial_topology("tiny", schema), schema)
    with torch.no_grad():
        model.mixes["1"].alpha[0, 1] += 0.5
    method.finish(model, tmp_path)
    doc = json.loads((tmp_path / "alphas.json").read_text())
    assert doc["columns"] == ["a", "b", "c"]
    assert [u["after_stage"] for u in doc["units"]] == [0, 1, 2, 3]
    unit = doc["units"][1]
    assert unit["matrix"][0][1] == pytest.approx(0.05 + 0.5)
    assert unit["mean_same"] == pytest.approx(0.9)
    assert len(unit["per_channel"][0][0]) == backbone("tiny").widths[1]
    assert (tmp_path / "alphas.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert alpha_summary(model, ["a", "b", "c"])["units"][0]["mean_diff"] == pytest.approx(0.05)


@pytest.mark.parametrize("arch, pools", [
    ("tiny", [0, 1, 2, 3]),                       # every conv stage pools; the last feeds the heads
    ("vgg16", [1, 3, 6, 9, 12, 13, 14]),          # pool1..pool5, fc6, fc7 (the paper's VGG places and more)
    ("vgg16-thin", [1, 3, 6, 9, 12, 13, 14]),
    ("resnet18", [2, 4, 6, 8]),                   # the end of layer1..layer4 (before each strided block)
    ("resnet50", [3, 7, 13, 16]),
])
def test_stitch_at_places_units(arch, pools):
    n = len(backbone(arch).stages)
    for stitch_at, expected in (("pools", pools), ("all", list(range(n)))):
        topo = CrossStitchMethod({"stitch_at": stitch_at}).initial_topology(arch, _schema())
        assert [m.after_stage for m in topo.mix] == expected, stitch_at
    topo = CrossStitchMethod({"mix_after": [0, 2]}).initial_topology(arch, _schema())
    assert [m.after_stage for m in topo.mix] == [0, 2]


def test_stitch_at_default_and_bad_values():
    from attrnet.methods.cross_stitch.method import DEFAULT_STITCH_AT

    topo = CrossStitchMethod().initial_topology("vgg16-thin", _schema())
    expected = backbone("vgg16-thin").resolution_ends() if DEFAULT_STITCH_AT == "pools" else list(range(15))
    assert [m.after_stage for m in topo.mix] == expected
    with pytest.raises(InputError, match="--stitch-at"):
        CrossStitchMethod({"stitch_at": "fc"})
    with pytest.raises(InputError, match="--stitch-at or mix_after"):
        CrossStitchMethod({"stitch_at": "all", "mix_after": [1]})


def test_default_alpha_lr_mult_follows_the_optimizer():
    from attrnet.methods.cross_stitch.method import ALPHA_LR_MULT
    from attrnet.train.method import TrainContext

    def mult(options: dict, optimizer: str) -> float:
        method = CrossStitchMethod(options)
        model = MultiTaskNet(method.initial_topology("tiny", _schema()), _schema())
        method.attach(TrainContext(model=model, train_set=None, spec=None, device=torch.device("cpu"), seed=0,
                                   batch_size=1, lr=1e-3, augment=False, crop_fraction=0.0, workers=0, log=print,
                                   optimizer_name=optimizer))
        return method.param_groups(model, 1e-3)[1]["lr"] / 1e-3

    assert mult({}, "sgd") == pytest.approx(ALPHA_LR_MULT["sgd"]) == pytest.approx(100.0)
    assert mult({}, "adamw") == pytest.approx(ALPHA_LR_MULT["adamw"])
    assert ALPHA_LR_MULT["adamw"] < ALPHA_LR_MULT["sgd"]
    assert mult({"alpha_lr_mult": 7}, "adamw") == mult({"alpha_lr_mult": 7}, "sgd") == pytest.approx(7.0)
    with pytest.raises(InputError, match="--alpha-lr-mult"):
        CrossStitchMethod({"alpha_lr_mult": 0})
