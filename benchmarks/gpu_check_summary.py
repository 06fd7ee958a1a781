"""One page from what benchmarks/gpu_check.sh wrote: ``python benchmarks/gpu_check_summary.py OUT`` -> OUT/SUMMARY.md.

Every part reads its own files and says "missing" when a step left none, so
the page also describes a run in which steps failed or timed out.
"""
from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from attrnet.bench.table import markdown_table
from attrnet.core.fileio import atomic_write_text

NVJPEG_FALLBACK = "nvjpeg cannot decode"  # the Predictor's line when it decodes on the CPU instead


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def steps_part(out: Path) -> list[str]:
    lines = [line.split("\t") for line in read_text(out / "steps.tsv").splitlines() if line.strip()]
    if len(lines) < 2:
        return ["steps.tsv is missing."]
    body = [[name, status, f"{seconds} s", f"{limit} s", f"logs/{name}.log"] for name, status, seconds, limit in lines[1:]]
    return [markdown_table(["step", "status", "took", "limit", "log"], body)]


def pytest_part(out: Path) -> list[str]:
    try:
        suite = ET.parse(out / "pytest_gpu.xml").getroot().find("testsuite")
    except (OSError, ET.ParseError):
        suite = None
    if suite is None:
        return ["`pytest -m gpu`: no report (see logs/pytest.log)."]
    n = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    passed = n["tests"] - n["failures"] - n["errors"] - n["skipped"]
    lines = [f"`pytest -m gpu`: {passed} passed, {n['failures']} failed, {n['errors']} errors, "
             f"{n['skipped']} skipped, of {n['tests']}."]
    for case in suite.iter("testcase"):
        for kind in ("failure", "error", "skipped"):
            hit = case.find(kind)
            if hit is not None:
                message = (hit.get("message") or "").splitlines()[:1]
                lines.append(f"- {kind}: `{case.get('name')}`: {message[0][:200] if message else ''}")
    return lines


def train_part(out: Path) -> list[str]:
    summary, peak = read_json(out / "train_amp.json"), read_json(out / "train_peak.json")
    config = read_json(out / "train" / "config.json") or {}
    if not summary:
        return ["Training: no summary (see logs/train.log)."]
    epochs = [json.loads(line) for line in read_text(out / "train" / "metrics.jsonl").splitlines() if line.strip()]
    rates = ", ".join(f"{e['images_per_s']:,.0f}" for e in epochs if "images_per_s" in e)
    device = config.get("device", "?")
    precision = "AMP" if config.get("amp") and device != "cpu" else "fp32"  # attrnet train uses AMP on CUDA only
    what = (f"`{config.get('arch', '?')}` at {config.get('img_size', '?')}, batch {config.get('batch_size', '?')}, "
            f"{precision} on {device}, {summary.get('steps')} steps in {summary.get('epochs')} epoch(s)")
    lines = [f"Training ({what}): {summary['final']['images_per_s']:,.0f} images/s in the last epoch "
             f"(each epoch, waits for data included, validation not; the first one warms up: {rates})."]
    if peak:
        lines.append(f"Peak GPU memory on {peak['device']}: {peak['peak_allocated_mib']:,.0f} MiB allocated by "
                     f"tensors, {peak['peak_reserved_mib']:,.0f} MiB reserved by torch's caching allocator.")
    else:
        lines.append("Peak GPU memory: not measured (no CUDA in the training process).")
    return lines


def export_part(out: Path) -> list[str]:
    rows = []
    for precision in ("fp32", "fp16"):
        rep = read_json(out / f"export_{precision}.json")
        if not rep:
            rows.append([precision, "missing (see logs/export_" + precision + ".log)", "-", "-", "-"])
            continue
        parity = rep["parity"]
        for r in parity["runners"]:
            rows.append([precision, r["name"], f"{r['max_abs']:.2e}", f"{100 * r['agreement']:.2f}%",
                         f"{parity['images']} images from {parity['source']}"])
    return [markdown_table(["export", "runner", "max abs prob diff", "label agreement", "parity data"], rows)]


def predict_part(out: Path) -> list[str]:
    rep = read_json(out / "predict.json")
    if not rep:
        return ["`attrnet predict`: no summary (see logs/predict.log)."]
    lines = [f"`attrnet predict`: {rep['images']} JPEGs, {rep['errors']} errors, {rep['images_per_second']:,.0f} "
             f"images/s with {rep['backend']} ({rep['workers']} decode threads; decode {rep['decode_seconds']:.1f} s "
             f"of thread time, model {rep['model_seconds']:.1f} s)."]
    fallback = [line for line in read_text(out / "logs" / "predict.log").splitlines() if NVJPEG_FALLBACK in line]
    if fallback:
        lines.append(f"JPEG decoding fell back to the CPU: {fallback[0].strip()}")
    elif "cuda" in rep["backend"]:
        lines.append("JPEGs were decoded with nvjpeg (the probe decode worked: no fallback line).")
    return lines


def suite_part(out: Path) -> list[str]:
    text = read_text(out / "RESULTS_GPU.md")
    if not text:
        return ["RESULTS_GPU.md is missing (see logs/suite.log)."]
    goals = text.split("## Goals", 1)[1].split("\n## ", 1)[0] if "## Goals" in text else ""
    lines = [line for line in goals.splitlines()[1:] if line.strip()]
    return lines + ["", "Full tables: RESULTS_GPU.md (raw figures: results_gpu.json)."]


def summarise(out: Path) -> str:
    env = read_text(out / "env.txt").strip() or "env.txt is missing."
    parts = [("Steps", steps_part(out)), ("Machine", ["```", env, "```"]), ("GPU tests", pytest_part(out)),
             ("AMP training", train_part(out)), ("ONNX export parity", export_part(out)),
             ("Predict from JPEG files", predict_part(out)), ("Benchmark suite goals", suite_part(out))]
    lines = ["# GPU check (benchmarks/gpu_check.sh)", ""]
    for title, body in parts:
        lines += [f"## {title}", "", *body, ""]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write(__doc__.splitlines()[0] + "\n")
        return 2
    out = Path(argv[0])
    atomic_write_text(out / "SUMMARY.md", summarise(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
