"""Topology validation and JSON round trip, model output shapes, pretrained weights."""
import json

import pytest
import torch

from attrnet.core.errors import InputError
from attrnet.models.backbones import ARCHS, backbone
from attrnet.core.model_card import probabilities
from attrnet.models.net import MultiTaskNet
from attrnet.core.topology import Branch, Mix, Topology, cross_stitch, independent, shared, split
from attrnet.core.schema import Schema, binary, categorical, market_schema

NAMES = ["a", "b", "c"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")
W = backbone("tiny").widths


def _topo(**kw):
    base = dict(arch="tiny", stages=[[Branch(0, 8)], [Branch(0, 8), Branch(0, 8)]], tasks={"a": 0, "b": 1, "c": 1})
    base.update(kw)
    return Topology(**base)


@pytest.mark.parametrize("kw, message", [
    ({"stages": []}, "no stages"),
    ({"stages": [[Branch(0, 8)], []]}, "stage 1 has no branches"),
    ({"stages": [[Branch(0, 0)], [Branch(0, 8), Branch(0, 8)]]}, "width must be positive"),
    ({"stages": [[Branch(0, 8)], [Branch(0, 8), Branch(1, 8)]]}, "parent 1 does not exist"),
    ({"stages": [[Branch(0, 8), Branch(0, 8)], [Branch(0, 8), Branch(0, 8)]]}, r"branches \[1\] have no children"),
    ({"stages": [[Branch(0, 8)], [Branch(0, 8), Branch(0, 4)]]}, "share a width"),
    ({"tasks": {"a": 0, "b": 2, "c": 1}}, "missing leaf 2"),
    ({"tasks": {"a": 0, "b": 0, "c": 0}}, r"leaf branches \[1\] read no attribute"),
    ({"mix": [Mix(0)]}, "needs at least 2 branches"),
    ({"mix": [Mix(1), Mix(1)]}, "two mix units"),
    ({"mix": [Mix(1, "full")]}, "granularity"),
])
def test_validation_rejects(kw, message):
    with pytest.raises(ValueError, match=message):
        _topo(**kw).validate(NAMES)


def test_validation_against_attributes():
    with pytest.raises(ValueError, match="attributes without a leaf: d"):
        _topo().validate(NAMES + ["d"])
    with pytest.raises(ValueError, match="unknown attributes: c"):
        _topo().validate(["a", "b"])
    assert _topo().validate(NAMES).num_leaves == 2


def test_json_round_trip(tmp_path):
    topo = cross_stitch("tiny", W, {"g": ["a"], "h": ["b", "c"]}, [0, 2], "scalar")
    again = Topology.from_dict(json.loads(topo.to_json()))
    assert again == topo
    path = tmp_path / "plan.json"
    topo.save(path)
    assert Topology.load(path) == topo


def test_load_reports_bad_files(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"arch": "tiny",\n "stages": [')
    with pytest.raises(InputError, match=r"bad.json:2: invalid JSON"):
        Topology.load(bad)
    bad.write_text(json.dumps({"arch": "tiny", "stages": [[{"parent": 0}]], "tasks": {}}))
    with pytest.raises(InputError, match="malformed topology"):
        Topology.load(bad)
    with pytest.raises(InputError, match="not found"):
        Topology.load(tmp_path / "none.json")


def test_constructors():
    s = shared("tiny", W, NAMES)
    assert s.branch_counts() == [1, 1, 1, 1] and s.leaf_groups() == [NAMES]
    sp = split("tiny", W, {"g": ["a"], "h": ["b", "c"]}, 2)
    assert sp.branch_counts() == [1, 1, 2, 2] and sp.ancestry(1) == [0, 0, 1, 1]
    assert sp.leaf_groups() == [["a"], ["b", "c"]]
    ind = independent("tiny", W, {n: [n] for n in NAMES})
    assert ind.branch_counts() == [3, 3, 3, 3] and ind.tasks == {"a": 0, "b": 1, "c": 2}
    cs = cross_stitch("tiny", W, {"g": ["a"], "h": ["b", "c"]})
    assert [m.after_stage for m in cs.mix] == [0, 1, 2]
    with pytest.raises(ValueError):
        split("tiny", W, {"g": ["a"], "h": ["b", "c"]}, 4)


@pytest.mark.parametrize("arch", ARCHS)
def test_output_shape_every_arch(arch):
    schema = market_schema()
    torch.manual_seed(0)
    model = MultiTaskNet(shared(arch, backbone(arch).widths, schema.names), schema).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 32, 32))
    assert out.shape == (1, schema.num_columns) and torch.isfinite(out).all()


@pytest.mark.parametrize("arch", ["tiny", "vgg16-thin", "resnet18"])
def test_branched_models_output_every_column(arch):
    schema = Schema((binary("a"), categorical("c", ["x", "y", "z"]), binary("b")))
    w = backbone(arch).widths
    topo = split(arch, w, {"g": ["a", "b"], "h": ["c"]}, len(w) - 2)
    model = MultiTaskNet(topo, schema).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, 3, 32, 32))
    assert logits.shape == (2, 5)
    p = probabilities(logits, schema)
    assert torch.allclose(p[:, 1:4].sum(1), torch.ones(2))
    assert model.features(torch.randn(2, 3, 32, 32)).shape[1] == 2


def test_independent_columns_do_not_interact():
    schema = Schema((binary("a"), binary("b")))
    torch.manual_seed(0)
    model = MultiTaskNet(independent("tiny", W, {"a": ["a"], "b": ["b"]}), schema).train()
    x = torch.randn(4, 3, 32, 32, requires_grad=True)
    model(x)[:, 0].sum().backward()
    grads = [p.grad for n, p in model.named_parameters() if n == "stages.3.conv.weight"][0]
    half = grads.shape[0] // 2
    assert grads[:half].abs().sum() > 0 and grads[half:].abs().sum() == 0


def _tv_trunk(tv, x):
    feats = torch.nn.Sequential(*list(tv.children())[:-2])(x)
    return torch.flatten(tv.avgpool(feats), 1)


def test_pretrained_resnet18_replicated_into_every_branch(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    from attrnet.models.pretrained import load_pretrained

    torch.manual_seed(0)
    tv = torchvision.models.resnet18().eval()
    path = tmp_path / "r18.pth"
    torch.save(tv.state_dict(), path)
    schema = market_schema()
    w = backbone("resnet18").widths
    model = MultiTaskNet(split("resnet18", w, {"g": schema.names[:4], "h": schema.names[4:]}, 3), schema).eval()
    loaded = load_pretrained(model, str(path))
    assert loaded == 120  # every trunk tensor; the heads keep their init
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ours, ref = model.features(x), _tv_trunk(tv, x)
    assert torch.allclose(ours[:, 0], ref, atol=1e-4) and torch.allclose(ours[:, 1], ref, atol=1e-4)


@pytest.mark.slow
def test_pretrained_vgg16_bn_matches_torchvision(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    from attrnet.models.pretrained import load_pretrained

    tv = torchvision.models.vgg16_bn().eval()
    path = tmp_path / "vgg.pth"
    torch.save(tv.state_dict(), path)
    schema = Schema((binary("a"),))
    model = MultiTaskNet(shared("vgg16", backbone("vgg16").widths, ["a"]), schema).eval()
    load_pretrained(model, str(path))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ref = tv.classifier[:5](torch.flatten(tv.avgpool(tv.features(x)), 1))
        assert torch.allclose(model.features(x)[:, 0], ref, atol=1e-4)


def test_pretrained_errors(tmp_path):
    from attrnet.models.pretrained import load_pretrained

    schema = Schema((binary("a"),))
    tiny = MultiTaskNet(shared("tiny", W, ["a"]), schema)
    with pytest.raises(InputError, match="no pretrained weights for arch 'tiny'"):
        load_pretrained(tiny, "imagenet")
    r18 = MultiTaskNet(shared("resnet18", backbone("resnet18").widths, ["a"]), schema)
    with pytest.raises(InputError, match="not found"):
        load_pretrained(r18, str(tmp_path / "missing.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="not a readable weights file"):
        load_pretrained(r18, str(junk))
    with pytest.raises(InputError, match="unknown torchvision weights"):
        load_pretrained(r18, "NoSuch_Weights.X")
