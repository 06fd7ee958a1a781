"""`attrnet train --resume` as the README shows it (--data, --out, --resume only): the run continues with its
saved configuration and ends bit-identical to the run that was never stopped; an option that would change
the run is refused with one line naming it and both values."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from attrnet.cli import main
from attrnet.core.errors import InputError
from attrnet.core.topology import split
from attrnet.methods import trainer_for
from attrnet.models.backbones import backbone
from attrnet.train.checkpoint import read_metadata
from attrnet.train.config import TrainConfig
from attrnet.train.trainer import Trainer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

COMMON = ["--epochs", "2", "--batch-size", "8", "--workers", "0", "--device", "cpu"]
FAFS = ["--arch", "vgg16-thin", "--method", "fafs", "--img-size", "32", "--lr", "0.05", "--val-every", "1",
        "--val-batches", "1", "--max-stall", "1", "--branch-cost", "0.0005", "--max-branches", "4"]


class Stopped(Exception):
    """The run stops here, as a kill would."""


def _train(data: str, out: Path, *flags: str) -> int:
    return main(["train", "--data", data, "--out", str(out), *flags])


def _stopped_after_first_epoch(monkeypatch, data: str, out: Path, *flags: str) -> None:
    """`attrnet train` with the full run's flags, stopped as its second epoch starts (its LR schedule is the full run's)."""
    train_epoch = Trainer.train_epoch

    def stop_at_second(self, epoch):
        if epoch == 1:
            raise Stopped
        return train_epoch(self, epoch)

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "train_epoch", stop_at_second)
        assert _train(data, out, *flags) == 1
    assert read_metadata(out / "last.safetensors")["resume"]["epoch"] == 1


def _assert_same_files(ref: Path, run: Path) -> None:
    trees = sorted(p.name for p in ref.glob("best.tree*.safetensors"))  # earlier trees' bests (FAFS)
    assert sorted(p.name for p in run.glob("best.tree*.safetensors")) == trees
    for name in ("last.safetensors", "best.safetensors", *trees):
        want, got = load_file(ref / name), load_file(run / name)
        assert want.keys() == got.keys(), name
        for key in want:
            assert torch.equal(want[key], got[key]), f"{name}: {key}"
        assert read_metadata(ref / name) == read_metadata(run / name), name
    assert [json.loads(r)["epoch"] for r in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert (ref / "weights.jsonl").read_text() == (run / "weights.jsonl").read_text()


def _resume_readme_style(monkeypatch, capsys, data: str, tmp_path: Path, *flags: str) -> tuple[Path, Path, str]:
    """The run uninterrupted, and the same run stopped after epoch 1 then resumed with --data --out --resume."""
    ref, run = tmp_path / "ref", tmp_path / "run"
    assert _train(data, ref, *COMMON, *flags) == 0
    _stopped_after_first_epoch(monkeypatch, data, run, *COMMON, *flags)
    config = (run / "config.json").read_text()
    capsys.readouterr()
    assert _train(data, run, "--resume") == 0
    err = capsys.readouterr().err
    assert "resumed from" in err
    assert (run / "config.json").read_text() == config  # kept as the run was started
    saved = json.loads(config)
    assert {**saved, "out": None} == {**json.loads((ref / "config.json").read_text()), "out": None}
    _assert_same_files(ref, run)
    return ref, run, err


def test_fafs_run_resumed_readme_style_continues_widening(monkeypatch, capsys, celeba, tmp_path):
    ref, run, err = _resume_readme_style(monkeypatch, capsys, celeba, tmp_path, *FAFS)
    assert "training vgg16-thin: method fafs, weighting equal, input 32x32" in err
    rounds = json.loads((run / "fafs.json").read_text())["rounds"]
    assert rounds == json.loads((ref / "fafs.json").read_text())["rounds"]
    assert any(r["d"] > 1 and r["step"] > 4 for r in rounds)  # it widened after the stop (4 steps per epoch)
    assert (run / "topology.json").read_text() == (ref / "topology.json").read_text()


def test_preset_and_awmt_run_resumed_readme_style(monkeypatch, capsys, celeba, tmp_path):
    _, run, err = _resume_readme_style(monkeypatch, capsys, celeba, tmp_path, "--preset", "market", "--weighting",
                                       "awmt", "--awmt-k", "2", "--awmt-val-batch", "4")
    assert "training tiny: method shared, weighting awmt, input 256x128, preset market" in err
    meta = read_metadata(run / "best.safetensors")
    assert meta["input"]["height"] == 256 and meta["input"]["width"] == 128 and meta["weighting"] == "awmt"
    assert meta["train"]["threshold_objective"] == "balanced" and meta["train"]["best_metric"] == "mA"
    assert len(json.loads((run / "weights.jsonl").read_text().splitlines()[-1])["weights"]) == 40


def test_topology_plan_run_resumed_readme_style(monkeypatch, capsys, celeba, tmp_path):
    attributes = (Path(celeba.split(":", 1)[1]) / "list_attr_celeba.txt").read_text().splitlines()[1].split()
    plan = split("tiny", backbone("tiny").widths, {"g": attributes[:20], "h": attributes[20:]}, 2)
    plan.save(tmp_path / "plan.json")
    _, run, err = _resume_readme_style(monkeypatch, capsys, celeba, tmp_path, "--topology",
                                       str(tmp_path / "plan.json"), "--img-size", "32", "--weighting", "dwa")
    assert f"branches per stage 1-1-2-2 (from {tmp_path / 'plan.json'})" in err
    assert read_metadata(run / "best.safetensors")["topology"] == plan.to_dict()


def test_an_option_that_changes_the_run_is_refused_naming_both_values(celeba, tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(celeba, out, "--epochs", "1", "--img-size", "32", "--workers", "0") == 0
    before = {name: (out / name).read_bytes() for name in ("config.json", "last.safetensors", "metrics.jsonl")}
    capsys.readouterr()
    assert _train(celeba, out, "--resume", "--lr", "0.01", "--epochs", "3", "--no-augment") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"attrnet: error: {out / 'config.json'}: ")
    for named in ("--lr (run: 0.001, given: 0.01)", "--epochs (run: 1, given: 3)", "--augment (run: on, given: off)"):
        assert named in err[0]
    assert {name: (out / name).read_bytes() for name in before} == before
    # options equal to the saved ones, and options that do not change the result, may be given
    assert _train(celeba, out, "--resume", "--lr", "0.001", "--img-size", "32x32", "--weight-decay", "0.01",
                  "--workers", "1", "--threads", "1", "--log-every", "7", "--device", "cpu", "--max-bad-fraction",
                  "0.5", "--json") == 0
    assert (out / "config.json").read_bytes() == before["config.json"]
    assert "resumed from" in capsys.readouterr().err


def test_python_callers_get_the_same_rule(celeba, tmp_path):
    out = tmp_path / "run"
    base = dict(data=celeba, out=str(out), epochs=1, batch_size=16, img_size=(32, 32), workers=0)
    trainer_for(TrainConfig(**base)).run()
    with pytest.raises(InputError, match=r"--lr \(run: 0.001, given: 0.002\)"):
        trainer_for(TrainConfig(**base, lr=2e-3, resume=True)).run()
    with pytest.raises(InputError, match=r"--weighting \(run: equal, given: dwa\)"):
        TrainConfig.from_options(celeba, str(out), resume=True, weighting="dwa")
    cfg = TrainConfig.from_options(celeba, str(out), resume=True, workers=1)
    assert cfg == TrainConfig(**{**base, "workers": 1, "resume": True})


def test_for_resume_compares_values_not_spellings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    saved = TrainConfig.from_options("celeba:/data/a", str(tmp_path), preset="market", lr=0.001,
                                     method="fafs", max_stall=5, somp_from="wide.safetensors", columns=None)
    (tmp_path / "config.json").write_text(json.dumps(saved.to_dict()))
    same = dict(preset="market", img_size=(256, 128), lr=1e-3, weight_decay=0.01, max_stall=5,
                somp_from=str(tmp_path / "wide.safetensors"))
    cfg = TrainConfig.for_resume("celeba:/scratch/job7/a", str(tmp_path), resume=True, **same)
    assert cfg.data == "celeba:/scratch/job7/a"  # the same dataset at another path
    assert cfg.img_size == (256, 128) and cfg.best_metric == "mA" and cfg.resume
    assert cfg.method_options == {"max_stall": 5, "somp_from": "wide.safetensors", "columns": None}
    for given, named in [({"max_stall": 6}, "--max-stall (run: 5, given: 6)"),
                         ({"preset": "duke"}, "--preset (run: market, given: duke)"),
                         ({"img_size": (64, 64)}, "--img-size (run: 256x128, given: 64x64)"),
                         ({"columns": "per-attribute"}, "--columns (run: none, given: per-attribute)")]:
        with pytest.raises(InputError, match=named.replace("(", r"\(").replace(")", r"\)")):
            TrainConfig.for_resume("celeba:/data/a", str(tmp_path), **given)
    with pytest.raises(InputError, match=r"--data \(run: celeba:/data/a, given: market:/data/a\)"):
        TrainConfig.for_resume("market:/data/a", str(tmp_path))


def test_resume_without_a_checkpoint_starts_the_saved_run(celeba, tmp_path, capsys):
    """Killed before its first checkpoint: `--resume` starts the run again with its saved configuration."""
    out = tmp_path / "run"
    out.mkdir()
    saved = TrainConfig(data=celeba, out=str(out), epochs=1, batch_size=16, img_size=(32, 32), workers=0,
                        weighting="uncertainty")
    (out / "config.json").write_text(json.dumps(saved.to_dict()))
    assert _train(celeba, out, "--resume") == 0
    err = capsys.readouterr().err
    assert "no " in err and "starting a new run" in err and "weighting uncertainty, input 32x32" in err
    assert read_metadata(out / "best.safetensors")["weighting"] == "uncertainty"
