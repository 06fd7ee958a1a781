"""Export speed and accuracy on CPU, side by side in one run.

Runners: the unfolded eager model (same uint8 input and probability output as
the export), the folded torch module, ONNX Runtime fp32, int8 (symmetric QDQ,
the TensorRT layout) and int8-cpu (uint8 activations), at batch 1 and 32,
for the shipped `tiny` model (weights/default.safetensors, trained on
synthetic CelebA) and a branched `vgg16-thin` (a FAFS-style tree, random
weights with randomised BatchNorm). Accuracy of fp16 and int8 against fp32 on
a synthetic CelebA test split for the trained model; decision agreement for
the untrained one.

    .venv/bin/python benchmarks/export_speed.py [--out benchmarks/EXPORT_RESULTS.md] [--seconds 2.5] [--threads 1]

Every runner gets the same number of threads (default 1): on a machine whose
cores are shared with other jobs, torch with 2 OpenMP threads swung by 100x
between calls, while single-threaded runs stayed stable.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from attrnet.train.checkpoint import load_model
from attrnet.export import onnx_graph
from attrnet.export import ort_session
from attrnet.export import parity, quantize
from attrnet.export.fold import fold_model
from attrnet.export.runtime import UnfoldedNet
from attrnet.export.pipeline import unfolded_ops
from attrnet.core.input_spec import InputSpec
from attrnet.models.net import MultiTaskNet
from attrnet.core.topology import Branch, Topology
from attrnet.core.schema import celeba_schema

ROOT = Path(__file__).resolve().parents[1]


def interleaved_throughput(runners: dict[str, Callable[[np.ndarray], Any]], images: np.ndarray,
                           seconds: float, rounds: int = 7) -> dict[str, float]:
    """images/s per runner: median over `rounds`; each round times every runner in turn for
    about `seconds`/`rounds`, so load from other jobs on the machine hits all runners alike."""
    for fn in runners.values():
        fn(images)
    rates: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(rounds):
        for label, fn in runners.items():
            n, start = 0, time.perf_counter()
            while True:
                fn(images)
                n += 1
                elapsed = time.perf_counter() - start
                if elapsed >= seconds / rounds:
                    break
            rates[label].append(n * len(images) / elapsed)
    return {k: statistics.median(v) for k, v in rates.items()}


def fafs_tree(schema: Any) -> Topology:
    """vgg16-thin shared up to conv 10, then 2 -> 3 -> 4 branches and 4 -> 5 fc branches (uneven)."""
    from attrnet.models.backbones import backbone

    w = backbone("vgg16-thin").widths
    stages = [[Branch(0, w[s])] for s in range(10)]
    stages.append([Branch(0, w[10]), Branch(0, w[10])])
    stages.append([Branch(0, w[11]), Branch(1, w[11]), Branch(1, w[11])])
    stages.append([Branch(0, w[12]), Branch(0, w[12]), Branch(1, w[12]), Branch(2, w[12])])
    stages.append([Branch(b, w[13]) for b in range(4)])
    stages.append([Branch(0, w[14]), Branch(1, w[14]), Branch(2, w[14]), Branch(3, w[14]), Branch(3, w[14])])
    return Topology("vgg16-thin", stages, {n: i % 5 for i, n in enumerate(schema.names)}).validate(schema.names)


def randomised(model: MultiTaskNet) -> MultiTaskNet:
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for mod in model.modules():
            if isinstance(mod, torch.nn.BatchNorm2d):
                mod.running_mean.copy_(torch.randn(mod.running_mean.shape, generator=g) * 0.1)
                mod.running_var.copy_(torch.rand(mod.running_var.shape, generator=g) + 0.5)
        model.head.weight.normal_(0, 0.3, generator=g)
    return model.eval()


def label_ma(probs: np.ndarray, labels: np.ndarray, thresholds: list) -> float:
    """Label-based mA over binary columns: mean of (TPR + TNR) / 2, on labelled images."""
    scores = []
    for c, t in enumerate(thresholds):
        if t is None:
            continue
        known = ~np.isnan(labels[:, c])
        y, p = labels[known, c] == 1, probs[known, c] >= t
        if y.any() and (~y).any():
            scores.append(((p & y).sum() / y.sum() + (~p & ~y).sum() / (~y).sum()) / 2)
    return float(np.mean(scores)) if scores else float("nan")


def synthetic_celeba(folder: Path, spec: InputSpec, num: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(calibration images from train, test images, test labels) of a generated CelebA-format set."""
    from attrnet.data.synth import generate

    generate("celeba", folder, num=num, seed=123, size=(spec.height, spec.width))
    calib, _ = parity.dataset_images(f"celeba:{folder}", spec, "train", 128)
    test, labels = parity.dataset_images(f"celeba:{folder}", spec, "test", num)
    return calib, test, labels


def bench_model(name: str, model: MultiTaskNet, spec: InputSpec, thresholds: list, calib: np.ndarray,
                test: np.ndarray, labels: np.ndarray | None, seconds: float, threads: int) -> dict[str, Any]:
    folded, report = fold_model(model, spec)
    graph32 = onnx_graph.trace_to_onnx(folded, spec.height, spec.width)
    graph16 = onnx_graph.trace_to_onnx(folded, spec.height, spec.width, half=True)
    # int8 files as `attrnet export` writes them: each with the ONNX Runtime optimizers it measured slower
    tuning: dict[str, list[str]] = {"int8": [], "int8-cpu": []}
    graph8, off8 = quantize.quantize_and_tune(graph32, calib, "int8", {}, tuning["int8"].append)
    graph8c, off8c = quantize.quantize_and_tune(graph32, calib, "int8-cpu", {}, tuning["int8-cpu"].append)
    sessions = {k: ort_session.session(g, threads=threads, disabled_optimizers=off) for k, g, off in
                (("fp32", graph32, []), ("fp16", graph16, []), ("int8", graph8, off8), ("int8-cpu", graph8c, off8c))}
    unfolded = UnfoldedNet(model, spec).eval()

    def torch_runner(module: torch.nn.Module) -> Callable[[np.ndarray], Any]:
        def run(x: np.ndarray) -> Any:
            with torch.no_grad():
                return module(torch.from_numpy(x))
        return run

    runners = {
        "unfolded eager torch": torch_runner(unfolded),
        "folded torch": torch_runner(folded),
        "ORT fp32": lambda x: sessions["fp32"].run(["probs"], {"images": x}),
        "ORT int8 (QDQ, symmetric)": lambda x: sessions["int8"].run(["probs"], {"images": x}),
        "ORT int8-cpu (uint8 act.)": lambda x: sessions["int8-cpu"].run(["probs"], {"images": x}),
    }
    speed: dict[str, dict[int, float]] = {label: {} for label in runners}
    for b in (1, 32):
        batch = np.ascontiguousarray(np.resize(test, (b,) + test.shape[1:]))
        for label, rate in interleaved_throughput(runners, batch, seconds).items():
            speed[label][b] = rate
    ref = ort_session.run_probs(sessions["fp32"], test)
    ref_dec = parity.decisions(ref, model.schema, thresholds)
    truth = None if labels is None else parity.label_decisions(labels, model.schema)
    quality = {}
    for prec in ("fp32", "fp16", "int8", "int8-cpu"):
        probs = ort_session.run_probs(sessions[prec], test)
        dec = parity.decisions(probs, model.schema, thresholds)
        quality[prec] = {
            "max_abs": float(np.abs(probs - ref).max()),
            "agreement": float((dec == ref_dec).mean()),
            "accuracy": None if truth is None else parity.mean_accuracy(dec, truth),
            "mA": None if labels is None else label_ma(probs, labels, thresholds),
        }
    before = unfolded_ops(model, spec)
    return {
        "name": name, "spec": spec, "speed": speed, "quality": quality, "choices": report.summary(),
        "tuning": {prec: " ".join(lines) for prec, lines in tuning.items()},
        "ops_before": sum(before.values()) if before else "not exportable as is",
        "ops_after": sum(onnx_graph.op_counts(graph32).values()),
        "test_images": len(test),
    }


def render(results: list[dict[str, Any]], seconds: float, threads: int, load: tuple[float, float]) -> str:
    import onnxruntime

    lines = [
        "# Export speed and accuracy (CPU)",
        "",
        f"Produced by `benchmarks/export_speed.py` on {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores visible, torch {torch.__version__} ({threads} thread(s)), "
        f"onnxruntime {onnxruntime.__version__} ({threads} intra-op thread(s)), Python {sys.version.split()[0]}. "
        f"Throughput is the median of 7 interleaved rounds ({seconds:.1f} s per runner and batch size) of model-only "
        "calls on uint8 `[N, H, W, 3]` images; every runner includes the same in-graph normalisation and "
        f"probabilities. 1-minute load average {load[0]:.1f} at the start and {load[1]:.1f} at the end: on a "
        "machine shared with other jobs absolute numbers are noisy; runners are timed round-robin so the "
        "ratios are fairer than the absolute rates.",
        "",
    ]
    for r in results:
        spec = r["spec"]
        lines += [f"## {r['name']} ({spec.height}x{spec.width})", "",
                  f"ONNX nodes: unfolded export {r['ops_before']} -> folded {r['ops_after']}.", "",
                  "| runner | batch 1 img/s | batch 32 img/s | x unfolded (b1) | x unfolded (b32) |",
                  "|---|---:|---:|---:|---:|"]
        base = r["speed"]["unfolded eager torch"]
        for label, s in r["speed"].items():
            lines.append(f"| {label} | {s[1]:.0f} | {s[32]:.0f} | {s[1] / base[1]:.2f} | {s[32] / base[32]:.2f} |")
        lines += ["", "The int8 files run as `attrnet export` writes them: with or without ONNX Runtime's QDQ "
                  "propagation, whichever the export measured faster (its log, calibration images, batch 32):", ""]
        lines += [f"- {prec}: {text}" for prec, text in r["tuning"].items()]
        lines += ["", f"Quality against ONNX Runtime fp32 on {r['test_images']} synthetic test images:", "",
                  "| precision | max abs diff | decision agreement | mean accuracy | mA |", "|---|---:|---:|---:|---:|"]
        for prec, q in r["quality"].items():
            acc = "n/a (untrained)" if q["accuracy"] is None else f"{100 * q['accuracy']:.2f}%"
            ma = "n/a" if q["mA"] is None else f"{100 * q['mA']:.2f}%"
            lines.append(f"| {prec} | {q['max_abs']:.2e} | {100 * q['agreement']:.2f}% | {acc} | {ma} |")
        lines += ["", "Folding choices:", "", "```", r["choices"], "```", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "EXPORT_RESULTS.md"))
    ap.add_argument("--seconds", type=float, default=2.5)
    ap.add_argument("--num", type=int, default=1000, help="synthetic CelebA images to generate (10% are test)")
    ap.add_argument("--threads", type=int, default=1, help="threads for torch and ONNX Runtime alike")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    load_start = os.getloadavg()[0]
    results = []
    with tempfile.TemporaryDirectory(prefix="attrnet-bench-") as tmp:
        tiny, meta = load_model(ROOT / "weights" / "default.safetensors")
        spec = InputSpec.from_dict(meta["input"])
        calib, test, labels = synthetic_celeba(Path(tmp) / "celeba", spec, args.num)
        print(f"tiny: {len(test)} test images", file=sys.stderr)
        results.append(bench_model("tiny (weights/default.safetensors, trained on synthetic CelebA)", tiny, spec,
                                   meta["thresholds"], calib, test, labels, args.seconds, args.threads))
        schema = celeba_schema()
        torch.manual_seed(0)
        vgg = randomised(MultiTaskNet(fafs_tree(schema), schema))
        vspec = InputSpec(128, 128)
        vcalib, vtest = parity.generated_images(vspec, 64, seed=1), parity.generated_images(vspec, 128, seed=2)
        print("vgg16-thin: branched tree", file=sys.stderr)
        results.append(bench_model("vgg16-thin, FAFS-style tree 1-2-3-4 conv / 4-5 fc branches (random weights)",
                                   vgg, vspec, [0.5] * schema.num_columns, vcalib, vtest, None, args.seconds,
                                   args.threads))
    text = render(results, args.seconds, args.threads, (load_start, os.getloadavg()[0]))
    from attrnet.core.fileio import atomic_write_text

    atomic_write_text(args.out, text + "\n")
    print(text)


if __name__ == "__main__":
    main()
