"""`attrnet data synth` and `attrnet data info`: output formats, exit codes, one-line errors."""
from __future__ import annotations

import json

import pytest

from attrnet.cli import main


@pytest.fixture(scope="module")
def synth_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cli") / "market"


def test_synth_then_info_json(synth_dir, capsys):
    assert main(["data", "synth", "--preset", "market", "--out", str(synth_dir), "--num", "16", "--seed", "4", "--json"]) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert summary["preset"] == "market" and summary["images"] >= 16 and summary["height"] == 128
    assert "synth market: 16/" in err or "synth market: 18/" in err
    assert main(["data", "info", f"market:{synth_dir}", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert list(doc) == ["format", "splits", "attributes", "outputs", "positive_rate"]
    assert doc["format"] == "market" and doc["splits"] == {"train": 8, "val": 0, "test": 8}
    assert len(doc["attributes"]) == 12 and len(doc["outputs"]) == 30
    assert list(doc["positive_rate"]) == doc["outputs"]
    age = [doc["positive_rate"][c] for c in doc["outputs"] if c.startswith("age=")]
    assert abs(sum(age) - 1.0) < 1e-3  # one class per labelled image


def test_info_human_table(synth_dir, capsys):
    if not synth_dir.exists():
        main(["data", "synth", "--preset", "market", "--out", str(synth_dir), "--num", "16", "--seed", "4"])
    capsys.readouterr()
    assert main(["data", "info", f"market:{synth_dir}"]) == 0
    out = capsys.readouterr().out
    assert "format: market" in out and "train 8, val 0, test 8" in out
    assert any(line.startswith("upcolor=black") and "categorical" in line for line in out.splitlines())


def test_synth_size_and_human_summary(tmp_path, capsys):
    assert main(["data", "synth", "--preset", "celeba", "--out", str(tmp_path), "--num", "3", "--size", "40x32"]) == 0
    out, err = capsys.readouterr()
    assert "wrote 3 celeba images (40x32)" in out  # the result on stdout, the progress on stderr
    assert "synth celeba: 3/3 images" in err and "wrote" not in err


@pytest.mark.parametrize("args,fragment", [
    (["data", "info", "celeba:/no/such/dir"], "/no/such/dir: data folder not found"),
    (["data", "info", "coco:/tmp"], "unknown data format 'coco'"),
    (["data", "synth", "--preset", "imagenet", "--out", "x"], "unknown preset 'imagenet'"),
    (["data", "synth", "--preset", "celeba", "--out", "x", "--size", "big"], "--img-size takes S or HxW"),
    (["data", "synth", "--preset", "celeba", "--out", "x", "--difficulty", "brutal"],
     "unknown --difficulty 'brutal' (choose from none, easy, default, hard)"),
    (["data", "synth", "--preset", "market", "--out", "x", "--noisy-group", "mouth"],
     "unknown --noisy-group 'mouth' for market (choose from carry, upper, lower, person)"),
])
def test_bad_input_is_one_line_and_exit_2(args, fragment, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert fragment in err and len(err.splitlines()) == 1 and err.startswith("attrnet: error:")


def test_malformed_file_error_names_file_and_line(tmp_path, capsys):
    (tmp_path / "labels.csv").write_text("path,Smiling\nx.jpg,maybe\n")
    assert main(["data", "info", f"folder:{tmp_path}"]) == 2
    assert f"{tmp_path / 'labels.csv'}:2: column 'Smiling'" in capsys.readouterr().err


def test_info_and_synth_do_not_import_torch(tmp_path):
    import subprocess
    import sys

    code = ("import sys; from attrnet.cli import main; "
            f"main(['data', 'synth', '--preset', 'duke', '--out', {str(tmp_path)!r}, '--num', '4']); "
            f"main(['data', 'info', 'duke:{tmp_path}', '--json']); print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"
    assert '"format": "duke"' in out.stdout
