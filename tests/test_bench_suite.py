"""benchmarks/run.py helpers: timing budget, tables and goal verdicts (no measuring)."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[1] / "benchmarks" / "run.py"


@pytest.fixture(scope="module")
def suite():
    spec = importlib.util.spec_from_file_location("attrnet_bench_suite", RUN)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the file runs
    spec.loader.exec_module(mod)
    yield mod
    sys.modules.pop(spec.name, None)


def test_time_budget_bounds(suite):
    calls = []
    lat = suite.time_budget(lambda: calls.append(1), budget_s=0.0, min_iters=3, max_iters=5, warmup=2)
    assert len(lat) == 3 and len(calls) == 5
    lat = suite.time_budget(lambda: None, budget_s=60.0, min_iters=1, max_iters=4, warmup=0)
    assert len(lat) == 4


def test_inference_table_ratios(suite):
    cells = [suite.Cell("m", "eager torch (unfolded)", 32, images_per_s=100.0, p50_ms=320.0),
             suite.Cell("m", "onnxruntime fp32", 32, images_per_s=250.0, p50_ms=128.0),
             suite.Cell("m", "onnxruntime int8", 32, note="error: boom")]
    md = suite.inference_markdown(cells, [suite.ModelCase("m", "tiny", "shared", 64, (32,), "batch 256 left out")],
                                  "cpu")
    lines = md.splitlines()
    assert "| m | onnxruntime fp32 | 32 | 250.0 | 128.00 | 2.50x |  |" in lines
    assert "| m | onnxruntime int8 | 32 | - | - | - | error: boom |" in lines
    assert lines[-1] == "- m: batch 256 left out"


def test_goal_verdicts(suite):
    raw = {
        "inference": [
            {"model": "a", "variant": "eager torch (unfolded)", "batch": 1, "images_per_s": 10.0},
            {"model": "a", "variant": "onnxruntime fp32", "batch": 1, "images_per_s": 30.0},
            {"model": "a", "variant": "eager torch (unfolded)", "batch": 32, "images_per_s": 10.0},
            {"model": "a", "variant": "onnxruntime fp32", "batch": 32, "images_per_s": 15.0},
        ],
        "e2e": {"efficiency": 0.93},
        "train": [{"label": "shared", "images_per_s": 300.0, "max_rss_mb": 500.0},
                  {"label": "cross-stitch (per-attribute)", "images_per_s": 6.0, "max_rss_mb": 3000.0},
                  {"label": "cross-stitch (groups)", "images_per_s": 40.0, "max_rss_mb": 900.0}],
    }
    table = {r.split(" | ")[0].lstrip("| "): r for r in suite.goals_markdown(raw, "cpu").splitlines()[2:]}
    ort = table["folded ONNX Runtime fp32 >= 2x unfolded eager torch: a"]
    assert "1.50x - 3.00x" in ort and ort.endswith("| missed |")
    assert table["predict pipeline efficiency e2e / (1/(1/D + 1/M)) >= 0.9"].endswith("| met |")
    assert table["cross-stitch K=40 training >= LibMTL's 5 images/s"].endswith("| met |")
    assert table["cross-stitch K=40 peak memory <= 1/5 of LibMTL's ~20 GB"].endswith("| met |")
    assert table["cross-stitch K=groups training >= 10x LibMTL (50 images/s)"].endswith("| missed |")


def test_results_say_whether_the_machine_was_shared(suite):
    idle = suite.load_sentence((0.4, 1.2), 2)
    busy = suite.load_sentence((0.4, 9.5), 2)
    assert idle.startswith("The machine was otherwise idle (1-minute load average 0.4 at the start and 1.2")
    assert busy.startswith("Other jobs shared the machine during the run (") and "9.5 at the end, 2 cores" in busy


def test_rewriting_the_results_keeps_sections_other_scripts_wrote(suite):
    previous = ("# attrnet benchmark results (cpu suite)\n\n## Goals (issue 9) against this run\n\nold goals\n\n"
                "## Ray Data and Ray Serve (issue 16)\n\n| ray | row |\n\n## Other reports\n\n- old\n")
    text = suite.render("cpu", suite.machine.describe(), {"goals": "new goals"}, 1.0, 2, (0.1, 0.2), ["inference"], previous)
    assert "## Ray Data and Ray Serve (issue 16)\n\n| ray | row |" in text
    assert "old goals" not in text and "new goals" in text
    assert text.index("## Ray Data") < text.index("## Other reports") and text.count("## Other reports") == 1
