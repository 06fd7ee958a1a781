"""Cross-stitch training end to end: per-column pretraining, `attrnet train --method cross-stitch`, alphas out."""
import json

import pytest
import torch

from attrnet.train.checkpoint import load_model, model_metadata, save_model
from attrnet.cli import main
from attrnet.data.synth import generate
from attrnet.methods.column_training import group_weights, train_columns
from attrnet.models.backbones import backbone
from attrnet.models.net import MultiTaskNet
from attrnet.core.input_spec import InputSpec
from attrnet.core.topology import independent, shared
from attrnet.core.schema import Schema, binary, celeba_schema


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    root = tmp_path_factory.mktemp("cs") / "celeba"
    generate("celeba", root, num=40, seed=0, size=(32, 32))
    return root


def test_column_training_touches_only_the_columns_of_labelled_groups():
    torch.manual_seed(0)
    schema = Schema(tuple(binary(n) for n in "pqrs"))
    model = MultiTaskNet(independent("tiny", backbone("tiny").widths, {"a": ["p", "q", "r"], "b": ["s"]}), schema)
    assert group_weights(model).tolist() == pytest.approx([1 / 3, 1 / 3, 1 / 3, 1.0])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    x = torch.randn(8, 3, 32, 32)
    y = torch.randint(0, 2, (8, 4)).float()
    y[:, 3] = float("nan")  # group b has no labels: its column must not move
    history = train_columns(model, lambda: [(x, y)], epochs=3, lr=1e-2)
    assert history[-1] < history[0]
    for name, p in model.named_parameters():
        if not name.startswith("stages."):
            continue
        half = p.shape[0] // 2
        assert not torch.equal(p[:half], before[name][:half]), name
        assert torch.equal(p[half:], before[name][half:]), name


def test_train_cross_stitch_end_to_end(synth, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--data", f"celeba:{synth}", "--out", str(out), "--method", "cross-stitch",
               "--columns", str(synth / "synth_groups.json"), "--epochs", "1", "--column-pretrain-epochs", "1",
               "--alpha-granularity", "scalar", "--alpha-lr-mult", "300", "--img-size", "32",
               "--batch-size", "16", "--workers", "0", "--json"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["epochs"] == 1
    groups = json.loads((synth / "synth_groups.json").read_text())["groups"]
    doc = json.loads((out / "alphas.json").read_text())
    assert doc["columns"] == list(groups)
    assert doc["alpha_lr_mult"] == 300
    k = len(groups)
    assert [u["k"] for u in doc["units"]] == [k] * len(backbone("tiny").widths)  # tiny: a unit after every stage
    first = torch.tensor(doc["units"][0]["matrix"])
    init = torch.full((k, k), 0.1 / (k - 1)).fill_diagonal_(0.9)
    assert not torch.allclose(first, init, atol=1e-4)  # the alphas trained
    assert (out / "alphas.png").stat().st_size > 1000
    model, meta = load_model(out / "best.safetensors")
    assert meta["method"] == "cross-stitch"
    assert [m.granularity for m in model.topology.mix] == ["scalar"] * 4
    assert torch.allclose(model.mixes["0"].alpha.detach(), first, atol=1e-5)


def test_init_from_a_shared_checkpoint(synth, tmp_path, capsys):
    schema = celeba_schema()
    shared_model = MultiTaskNet(shared("tiny", backbone("tiny").widths, schema.names), schema)
    ckpt = tmp_path / "shared.safetensors"
    save_model(ckpt, shared_model, model_metadata(shared_model, InputSpec(32, 32).to_dict()))
    run = tmp_path / "cs"
    assert main(["train", "--data", f"celeba:{synth}", "--epochs", "1", "--img-size", "32", "--batch-size", "16",
                 "--workers", "0", "--out", str(run), "--method", "cross-stitch", "--columns",
                 str(synth / "synth_groups.json"), "--init-from", str(ckpt)]) == 0
    assert "initialised from" in capsys.readouterr().err
    assert (run / "alphas.json").exists()


def test_bad_columns_file_exits_2(synth, tmp_path, capsys):
    bad = tmp_path / "g.json"
    bad.write_text('{"groups": {"x": ["Nope"]}}')
    rc = main(["train", "--data", f"celeba:{synth}", "--out", str(tmp_path / "r"), "--method", "cross-stitch",
               "--columns", str(bad), "--epochs", "1", "--workers", "0"])
    assert rc == 2
    assert "g.json" in capsys.readouterr().err
