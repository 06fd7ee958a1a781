"""benchmarks/gpu_check.sh's plumbing: the step deadline, the summary page, and the suite's per-section results."""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
STEPS = ["env", "data", "pytest", "train", "export_fp32", "export_fp16", "predict", "suite"]


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"attrnet_{name}", BENCHMARKS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the file runs
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def suite():
    yield _load("run")
    sys.modules.pop("attrnet_run", None)


def test_script_records_every_step_and_still_summarises_when_time_runs_out(tmp_path):
    """TOTAL_S leaves no time for any step: each is recorded as skipped, and the summary is still written."""
    out = tmp_path / "out"
    env = {**os.environ, "OUT": str(out), "PY": sys.executable, "DRY_RUN": "1", "TOTAL_S": "22"}
    proc = subprocess.run(["bash", str(BENCHMARKS / "gpu_check.sh")], env=env, capture_output=True, text=True,
                          timeout=120, cwd=BENCHMARKS.parent)
    assert proc.returncode == 0, proc.stderr
    rows = [line.split("\t") for line in (out / "steps.tsv").read_text().splitlines()[1:]]
    assert sorted(r[0] for r in rows[:-1]) == sorted(STEPS) and rows[-1][0] == "summary"  # data runs alongside
    assert all(r[1] == "skipped: no time left" for r in rows[:-1]) and rows[-1][1] == "ok"
    summary = (out / "SUMMARY.md").read_text()
    assert "Training: no summary (see logs/train.log)." in summary
    assert "RESULTS_GPU.md is missing" in summary


def _write_run(out: Path, fallback: bool) -> None:
    (out / "logs").mkdir(parents=True)
    (out / "train").mkdir()
    (out / "steps.tsv").write_text("step\tstatus\tseconds\tlimit\nenv\tok\t3\t30\nsuite\ttimed out\t80\t80\n")
    (out / "pytest_gpu.xml").write_text(
        '<testsuites><testsuite tests="3" failures="1" errors="0" skipped="1">'
        '<testcase name="test_a"/><testcase name="test_b"><failure message="assert 0.2 &lt;= 0.01&#10;more"/>'
        '</testcase><testcase name="test_c"><skipped message="needs TensorRT"/></testcase></testsuite></testsuites>')
    (out / "train_amp.json").write_text(json.dumps({"steps": 100, "epochs": 5, "final": {"images_per_s": 2890.4}}))
    (out / "train_peak.json").write_text(json.dumps({"device": "NVIDIA H200", "peak_allocated_mib": 20480.0,
                                                     "peak_reserved_mib": 24576.0}))
    (out / "train" / "config.json").write_text(json.dumps({"arch": "resnet50", "img_size": [224, 224],
                                                           "batch_size": 128, "amp": True, "device": "cuda"}))
    (out / "train" / "metrics.jsonl").write_text("".join(json.dumps({"images_per_s": r}) + "\n"
                                                         for r in (1200.0, 2800.0, 2890.4)))
    (out / "export_fp16.json").write_text(json.dumps({"parity": {"images": 32, "source": "val", "runners": [
        {"name": "onnxruntime", "max_abs": 1.5e-3, "agreement": 0.999}]}}))
    (out / "predict.json").write_text(json.dumps({"images": 3200, "errors": 0, "images_per_second": 6100.0,
                                                  "backend": "torch on cuda (fp16, CUDA graphs)", "workers": 16,
                                                  "decode_seconds": 4.0, "model_seconds": 0.4}))
    (out / "logs" / "predict.log").write_text(
        "nvjpeg cannot decode on cuda (a test decode failed: InputError: x); decoding JPEGs on the CPU\n"
        if fallback else "predicted 3200 images\n")
    (out / "RESULTS_GPU.md").write_text("# r\n\n## Goals (issue 9) against this run\n\n| goal | this run | verdict |\n"
                                        "|---|---|---|\n| r50 >= 15,000 | 16,000 | met |\n\n## Inference\n\nx\n")


@pytest.mark.parametrize("fallback", [False, True])
def test_summary_collects_each_steps_figures(tmp_path, fallback):
    _write_run(tmp_path, fallback)
    assert _load("gpu_check_summary").main([str(tmp_path)]) == 0
    text = (tmp_path / "SUMMARY.md").read_text()
    assert "| suite | timed out | 80 s | 80 s | logs/suite.log |" in text
    assert "1 passed, 1 failed, 0 errors, 1 skipped, of 3." in text
    assert "- failure: `test_b`: assert 0.2 <= 0.01" in text
    assert "`resnet50` at [224, 224], batch 128, AMP on cuda, 100 steps in 5 epoch(s)): 2,890 images/s" in text
    assert "1,200, 2,800, 2,890" in text and "20,480 MiB allocated" in text
    assert "| fp16 | onnxruntime | 1.50e-03 | 99.90% | 32 images from val |" in text
    assert "| fp32 | missing (see logs/export_fp32.log) |" in text
    assert "3200 JPEGs, 0 errors, 6,100 images/s with torch on cuda" in text
    assert ("fell back to the CPU: nvjpeg cannot decode on cuda" in text) == fallback
    assert ("decoded with nvjpeg" in text) != fallback
    assert "| r50 >= 15,000 | 16,000 | met |" in text and "## Inference" not in text


def test_suite_keeps_the_sections_it_finished(tmp_path, monkeypatch, suite):
    """A section that dies (or a timeout) leaves the earlier sections written, and says what is missing."""
    monkeypatch.setattr(suite, "inference",
                        lambda *a: [suite.Cell("tiny", "eager torch (unfolded)", 32, images_per_s=100.0, p50_ms=320.0)])

    def killed(*args):
        raise RuntimeError("stopped")

    monkeypatch.setattr(suite, "end_to_end", killed)
    out, raw = tmp_path / "r.md", tmp_path / "r.json"
    with pytest.raises(RuntimeError, match="stopped"):
        suite.main(["--suite", "cpu", "--out", str(out), "--json", str(raw), "--sections", "inference,e2e",
                    "--models", "tiny"])
    text = out.read_text()
    assert "| tiny | eager torch (unfolded) | 32 | 100.0 | 320.00 | 1.00x |  |" in text
    assert "- Not finished in this run (yet): e2e." in text
    assert json.loads(raw.read_text())["inference"][0]["images_per_s"] == 100.0
