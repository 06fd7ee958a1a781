"""The commands as functions, and what a user meets on the terminal: results on stdout, switches in --help,
rounded summaries, notes once, and errors that name what the user did wrong."""
from __future__ import annotations

import collections
import importlib
import inspect
import json
import pickle
import re
from pathlib import Path

import pytest

from attrnet.cli import main
from attrnet.weights import default_onnx

COMMANDS = [("train", "attrnet.cli.train", "train"), ("eval", "attrnet.cli.evaluate", "evaluate"),
            ("export", "attrnet.cli.export", "export"), ("predict", "attrnet.cli.predict", "predict"),
            ("benchmark", "attrnet.cli.benchmark", "benchmark"), ("taskonomy", "attrnet.cli.taskonomy", "taskonomy"),
            ("data synth", "attrnet.cli.data", "data_synth"), ("data info", "attrnet.cli.data", "data_info"),
            ("serve", "attrnet.cli.serve", "serve")]


@pytest.fixture(scope="module")
def celeba(tmp_path_factory) -> Path:
    from attrnet.data.synth import generate

    root = tmp_path_factory.mktemp("cli") / "celeba"
    generate("celeba", root, num=48, seed=0, size=(32, 32))
    return root


def _run(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------- commands are functions

@pytest.mark.parametrize("command, module, name", COMMANDS)
def test_each_command_is_an_importable_documented_function(command, module, name):
    from attrnet.cli.app import app

    fn = getattr(importlib.import_module(module), name)
    assert inspect.isfunction(fn) and fn.__module__ == module
    assert fn.__doc__ and fn.__doc__.strip()
    assert name in importlib.import_module(module).__all__
    registered = [c.callback for c in app.registered_commands]
    registered += [c.callback for g in app.registered_groups for c in g.typer_instance.registered_commands]
    assert fn in registered


def test_a_command_function_can_be_called_directly(celeba, capsys):
    from attrnet.cli.data import data_info

    data_info(f"celeba:{celeba}", as_json=True)
    doc = json.loads(capsys.readouterr().out)
    assert doc["format"] == "celeba" and sum(doc["splits"].values()) == 48


def test_train_flag_defaults_are_train_config_defaults():
    """The CLI shows TrainConfig's defaults; None means "not given" (the preset's value, else the default)."""
    from dataclasses import fields

    from attrnet.cli.train import train
    from attrnet.train.config import TrainConfig

    defaults = {f.name: f.default for f in fields(TrainConfig)}
    compared = 0
    for name, param in inspect.signature(train).parameters.items():
        key = {"compile_": "compile"}.get(name, name)
        if key in defaults and param.default not in (None, inspect.Parameter.empty):
            assert param.default == defaults[key], name
            compared += 1
    assert compared >= 20


# ---------------------------------------------------------------- results on stdout, progress on stderr

def test_eval_table_goes_to_stdout(celeba, capsys):
    code, out, err = _run(capsys, ["eval", str(default_onnx()), "--data", f"celeba:{celeba}", "--device", "cpu"])
    assert code == 0, err
    assert "mean accuracy" in out and "Smiling" in out
    assert "mean accuracy" not in err


def test_train_done_line_on_stdout_and_rounded(celeba, tmp_path, monkeypatch, capsys):
    import attrnet.methods

    seen = {}

    def fake_train(cfg):
        seen["cfg"] = cfg
        return {"epochs": 2, "best": 0.8237500000000001, "best_metric": "mean_accuracy", "best_epoch": 2}

    monkeypatch.setattr(attrnet.methods, "train", fake_train)
    code, out, err = _run(capsys, ["train", "--data", f"celeba:{celeba}", "--out", str(tmp_path / "r"),
                                   "--preset", "market", "--best-metric", "mean_accuracy"])
    assert code == 0, err
    assert out.strip() == f"done: 2 epochs; best mean_accuracy 0.8238 (epoch 2) -> {tmp_path / 'r'}/best.safetensors"
    cfg = seen["cfg"]  # the preset fills what was not given; the flag given wins
    assert cfg.img_size == (256, 128) and cfg.threshold_objective == "balanced" and cfg.best_metric == "mean_accuracy"


def test_taskonomy_plan_goes_to_stdout(monkeypatch, tmp_path, capsys):
    import attrnet.methods.taskonomy as tx

    def fake_run(cfg, out, progress):
        progress("training 2 source encoders")
        return {"out": str(out), "budget": 2.0, "groups": {"g1": ["a", "b"], "g2": ["c"]}, "plans": [], "plan": ""}

    monkeypatch.setattr(tx, "run", fake_run)
    code, out, err = _run(capsys, ["taskonomy", "--data", "celeba:x", "--budget", "2", "--out", str(tmp_path)])
    assert code == 0, err
    assert out.splitlines() == [f"budget 2: 2 group(s); wrote {tmp_path}/taskonomy.json, plan.json, affinity.png",
                                "  g1: a, b", "  g2: c"]
    assert err.strip() == "training 2 source encoders"


# ---------------------------------------------------------------- switches

@pytest.mark.parametrize("command", ["", *(c for c, _, _ in COMMANDS), "data"])
def test_switches_show_no_value_in_help(command, capsys):
    code, out, _ = _run(capsys, [*command.split(), "--help"])
    assert code == 0
    assert "<bool>" not in out
    assert re.search(r"--help\s+Show this message", out)


def test_a_switch_takes_no_value(celeba, tmp_path, capsys):
    code, _, err = _run(capsys, ["train", "--data", f"celeba:{celeba}", "--out", str(tmp_path), "--resume", "true"])
    assert code == 2 and "true" in err


# ---------------------------------------------------------------- notes once

def test_export_passes_each_library_note_through_once(monkeypatch, tmp_path, capsys):
    import attrnet.export.pipeline as pipeline

    def fake_export(checkpoint, opts, log):
        log("note: no --data given: parity measured on generated images, not real ones")
        return {"fold": {"ops_before": 3, "ops_after": 2, "flops_before": 2e9, "flops_after": 1e9,
                         "params_before": 10, "params_after": 9}, "outputs": [str(tmp_path / "m.onnx")]}

    monkeypatch.setattr(pipeline, "export_checkpoint", fake_export)
    code, out, err = _run(capsys, ["export", "m.safetensors"])
    assert code == 0, err
    assert err.count("no --data given") == 1
    assert out.strip() == str(tmp_path / "m.onnx")


def test_export_without_data_notes_generated_parity_images_once(tmp_path, capsys):
    from attrnet.weights import default_checkpoint

    code, _, err = _run(capsys, ["export", str(default_checkpoint()), "--out", str(tmp_path / "m.onnx"),
                                 "--parity-images", "4", "--fold-mode", "flops"])
    assert code == 0, err
    assert err.count("no --data given") == 1


# ---------------------------------------------------------------- errors name what the user did wrong

def _one_error_line(code: int, err: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("attrnet: error:"), err
    return lines[0]


def test_backend_that_cannot_load_the_file_is_named(tmp_path, capsys):
    line = _one_error_line(*_run(capsys, ["predict", str(tmp_path), "--model", str(default_onnx()),
                                          "--backend", "torch"])[::2])
    assert "--backend torch cannot load a .onnx file" in line and "safetensors" not in line


def test_unknown_split_names_the_valid_ones(celeba, capsys):
    line = _one_error_line(*_run(capsys, ["eval", str(default_onnx()), "--data", f"celeba:{celeba}",
                                          "--split", "bogus", "--device", "cpu"])[::2])
    assert "unknown split 'bogus' (choose from train, val, test)" in line


def test_empty_split_names_the_splits_with_images(celeba, tmp_path, capsys):
    import shutil

    root = tmp_path / "noval"
    shutil.copytree(celeba, root)
    part = root / "list_eval_partition.txt"
    part.write_text(part.read_text().replace(" 1\n", " 0\n"))
    line = _one_error_line(*_run(capsys, ["eval", str(default_onnx()), "--data", f"celeba:{root}",
                                          "--split", "val", "--device", "cpu"])[::2])
    assert "has no 'val' images (splits with images: train (" in line and "test (" in line


def test_columns_with_a_method_that_ignores_them_is_refused(celeba, tmp_path, capsys):
    line = _one_error_line(*_run(capsys, ["train", "--data", f"celeba:{celeba}", "--out", str(tmp_path),
                                          "--columns", "per-attribute"])[::2])
    assert line.endswith("--columns applies to --method independent or cross-stitch, not to --method shared")


def _garbage_weights(folder: Path) -> list[Path]:
    text = folder / "garbage.pth"
    text.write_bytes(b"this is not a weights file at all")
    pickled = folder / "pickled.pth"  # a pickle (protocol 4) of an object weights_only=True refuses
    pickled.write_bytes(pickle.dumps(collections.Counter(a=1), protocol=4))
    return [text, pickled]


def test_somp_from_garbage_is_not_a_readable_weights_file(celeba, tmp_path, capsys):
    for bad in _garbage_weights(tmp_path):
        line = _one_error_line(*_run(capsys, [
            "train", "--data", f"celeba:{celeba}", "--out", str(tmp_path / "run"), "--method", "fafs",
            "--img-size", "32", "--epochs", "1", "--workers", "0", "--somp-from", str(bad)])[::2])
        assert line == f"attrnet: error: {bad}: not a readable weights file (expected a .safetensors file or a " \
                       "torch.save state dict of tensors)"


def test_read_state_dict_never_passes_on_torch_advice(tmp_path, recwarn):
    from attrnet.core.errors import InputError
    from attrnet.models.pretrained import read_state_dict

    for bad in _garbage_weights(tmp_path):
        with pytest.raises(InputError) as info:
            read_state_dict(bad)
        assert "weights_only" not in str(info.value) and "\n" not in str(info.value)
    assert not [w for w in recwarn if "pickle" in str(w.message)]


# ---------------------------------------------------------------- Python callers get the same checks

def test_train_config_from_options_and_its_checks(tmp_path):
    from attrnet.core.errors import InputError
    from attrnet.core.topology import shared
    from attrnet.models.backbones import backbone
    from attrnet.train.config import TrainConfig

    plan = tmp_path / "plan.json"
    shared("resnet18", backbone("resnet18").widths, ["a"]).save(plan)
    cfg = TrainConfig.from_options("celeba:x", "out", topology=str(plan), preset="duke", img_size=(96, 48),
                                   epochs=None, columns=None)
    assert cfg.arch == "resnet18" and cfg.img_size == (96, 48) and cfg.best_metric == "mA" and cfg.epochs == 10
    assert cfg.method_options == {"columns": None}
    with pytest.raises(InputError, match="the topology is for resnet18, --arch says tiny"):
        TrainConfig(data="celeba:x", out="out", topology=str(plan))
    with pytest.raises(InputError, match="unknown arch 'alexnet'"):
        TrainConfig.from_options("celeba:x", "out", arch="alexnet")
    with pytest.raises(InputError, match="unknown preset 'imagenet'"):
        TrainConfig.from_options("celeba:x", "out", preset="imagenet")


def test_methods_refuse_options_they_do_not_read():
    from attrnet.core.errors import InputError
    from attrnet.methods.registry import make_method

    assert make_method("shared", {"columns": None}).name == "shared"
    with pytest.raises(InputError, match="--somp-from applies to --method fafs, not to --method cross-stitch"):
        make_method("cross-stitch", {"somp_from": "wide.pth"})


@pytest.mark.parametrize("kwargs, message", [({"backends": ["tvm"]}, "--backends: unknown value 'tvm'"),
                                             ({"modes": []}, "--mode needs at least one value"),
                                             ({"batch_sizes": [0]}, "--batch-sizes must be within 1..65536")])
def test_bench_config_checks_its_values(kwargs, message):
    from attrnet.bench.runner import BenchConfig
    from attrnet.core.errors import InputError

    with pytest.raises(InputError, match=message):
        BenchConfig(**kwargs)


def test_evaluate_checks_batch_size(celeba):
    from attrnet.core.errors import InputError
    from attrnet.evaluate import evaluate

    with pytest.raises(InputError, match="--batch-size must be >= 1, got 0"):
        evaluate(default_onnx(), f"celeba:{celeba}", batch_size=0)
