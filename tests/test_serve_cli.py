"""`attrnet predict`: CSV/JSONL rows, --resume, error rows, exit codes, table and JSON output."""
from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from attrnet.cli import main
from attrnet.weights import default_onnx
from serve_helpers import write_jpegs


@pytest.fixture(scope="module")
def model():
    return default_onnx()


@pytest.fixture()
def images(tmp_path):
    folder = tmp_path / "imgs"
    write_jpegs(folder, 5)
    write_jpegs(folder / "sub", 2, prefix="s")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    return folder


def _run(*args):
    return main(["predict", *map(str, args), "--workers", "2", "--threads", "1", "--batch-size", "3"])


def test_csv_rows_follow_the_contract(tmp_path, images, model, capsys):
    out = tmp_path / "preds.csv"
    assert _run(images, "--model", model, "--out", out) == 0
    err = capsys.readouterr().err
    assert "predicted 8 images (1 errors)" in err and "images/s" in err and "decode" in err and "model" in err
    rows = list(csv.reader(out.open(newline="")))
    header, body = rows[0], rows[1:]
    assert header[:4] == ["path", "error", "5_o_Clock_Shadow", "Arched_Eyebrows"]
    assert header[42:44] == ["label:5_o_Clock_Shadow", "label:Arched_Eyebrows"] and len(header) == 82
    assert len(body) == 8
    by_path = {r[0]: r for r in body}
    bad = by_path[str(images / "broken.jpg")]
    assert bad[1] and all(v == "" for v in bad[2:])
    good = by_path[str(images / "sub" / "s000.jpg")]
    assert good[1] == "" and all(0 <= float(v) <= 1 for v in good[2:42]) and set(good[42:]) <= {"0", "1"}


def test_jsonl_rows_and_resume_after_a_kill(tmp_path, images, model):
    out = tmp_path / "preds.jsonl"
    assert _run(images, "--model", model, "--out", out) == 0
    lines = out.read_text().splitlines()
    rows = [json.loads(x) for x in lines]
    assert set(rows[0]) == {"path", "error", "probs", "labels"}
    ok = next(r for r in rows if r["error"] is None)
    assert len(ok["probs"]) == 40 and set(ok["labels"].values()) <= {0, 1}
    # a killed run: three complete rows and half of the fourth
    out.write_text("\n".join(lines[:3]) + "\n" + lines[3][:25])
    assert _run(images, "--model", model, "--out", out, "--resume") == 0
    resumed = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(r["path"] for r in resumed) == sorted(r["path"] for r in rows)
    assert resumed[:3] == rows[:3]
    again = {r["path"]: r for r in resumed}
    assert all(again[r["path"]]["probs"] == pytest.approx(r["probs"], abs=1e-6) for r in rows)


def test_resume_csv_skips_written_paths_and_refuses_other_models(tmp_path, images, model, capsys):
    out = tmp_path / "p.csv"
    assert _run(images, "--model", model, "--out", out) == 0
    first = out.read_text()
    capsys.readouterr()
    assert _run(images, "--model", model, "--out", out, "--resume") == 0
    assert out.read_text() == first
    assert "predicted 0 images (0 errors, 8 already in" in capsys.readouterr().err
    out.write_text("path,error,other\n")
    assert _run(images, "--model", model, "--out", out, "--resume") == 2
    assert "p.csv:1: cannot resume: its columns differ" in capsys.readouterr().err


def test_nothing_to_run_exits_2_with_one_line(tmp_path, images, model, capsys):
    assert _run(images, "--model", tmp_path / "missing.onnx") == 2
    assert capsys.readouterr().err.strip().endswith("missing.onnx: model file not found")
    (tmp_path / "empty").mkdir()
    assert _run(tmp_path / "empty", "--model", model, "--out", tmp_path / "x.csv") == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no images found" in err
    assert not (tmp_path / "x.csv").exists()
    assert _run(images, "--model", model, "--out", tmp_path / "x.txt") == 2
    assert "must end in .csv or .jsonl" in capsys.readouterr().err


def test_table_and_json_without_out(images, model, capsys):
    assert _run(images / "sub", "--model", model) == 0
    out = capsys.readouterr().out
    assert "s000.jpg" in out and "predicted attributes" in out
    assert _run(images, "--model", model, "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["images"] == 8 and doc["errors"] == 1 and len(doc["results"]) == 8
    assert doc["backend"].startswith("onnxruntime")


def test_predict_on_onnx_does_not_import_torch(images, model, tmp_path):
    code = ("import sys\nfrom attrnet.cli import main\n"
            f"rc = main(['predict', {str(images)!r}, '--model', {str(model)!r}, '--out', {str(tmp_path / 'o.csv')!r}])\n"
            "print(rc, 'torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0 False"
