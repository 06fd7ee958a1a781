"""Parity of exported models with the trained one, on probabilities (docs/architecture.md, Exported models).

The reference is the unfolded `MultiTaskNet` in fp32. Every other runner
(folded torch, ONNX Runtime, TensorRT) is compared on the same uint8 images:
max absolute difference of the probabilities, and thresholded agreement (the
fraction of attribute decisions that match: binary columns cut at the
checkpoint's thresholds, categorical groups by argmax). With labels the
accuracy of each runner is reported too. Beyond the tolerances of the
precision the check raises `ParityError`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from attrnet.core.errors import InputError, ParityError
from attrnet.core.input_spec import InputSpec
from attrnet.core.schema import Schema

__all__ = ["FOLDED_TOL", "TOLERANCES", "ParityReport", "Runner", "RunnerParity", "compare", "dataset_images",
           "decisions", "enforce", "generated_images", "label_decisions", "mean_accuracy", "parity_inputs",
           "readable_images", "torch_reference"]

# precision -> (max abs tolerance or None, minimum agreement or None)
TOLERANCES: dict[str, tuple[float | None, float | None]] = {
    "fp32": (1e-4, None),
    "fp16": (1e-2, 0.995),
    "int8": (None, 0.98),
    "int8-cpu": (None, 0.98),
}
FOLDED_TOL = 1e-4  # the folded torch module is always fp32

Runner = Callable[[np.ndarray], np.ndarray]


@dataclass
class RunnerParity:
    name: str
    max_abs: float
    agreement: float
    accuracy: float | None = None


@dataclass
class ParityReport:
    precision: str
    images: int
    source: str  # "data:<spec>:<split>" or "generated"
    note: str
    reference_accuracy: float | None
    runners: list[RunnerParity] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        lines = [f"parity on {self.images} images ({self.source}); precision {self.precision}"]
        if self.note:
            lines.append(f"  note: {self.note}")
        for r in self.runners:
            acc = "" if r.accuracy is None or self.reference_accuracy is None else \
                f", accuracy {r.accuracy:.4f} (drop {100 * (self.reference_accuracy - r.accuracy):+.2f} points)"
            lines.append(f"  {r.name:12s} max |dp| {r.max_abs:.2e}, agreement {100 * r.agreement:.2f}%{acc}")
        return "\n".join(lines)


def decisions(probs: np.ndarray, schema: Schema, thresholds: Sequence[float | None]) -> np.ndarray:
    """Per attribute decision ``[N, A]``: 0/1 for binary, class index for categorical."""
    out = np.empty((len(probs), len(schema.attributes)), dtype=np.int64)
    for i, (attr, sl) in enumerate(zip(schema.attributes, schema.slices)):
        if attr.kind == "binary":
            t = thresholds[sl.start]
            out[:, i] = probs[:, sl.start] >= (0.5 if t is None else t)
        else:
            out[:, i] = probs[:, sl].argmax(1)
    return out


def label_decisions(labels: np.ndarray, schema: Schema) -> np.ndarray:
    """Labels ``[N, C]`` (1/0/NaN, one-hot groups) as ``[N, A]`` float decisions, NaN when missing."""
    out = np.full((len(labels), len(schema.attributes)), np.nan)
    for i, (attr, sl) in enumerate(zip(schema.attributes, schema.slices)):
        block = labels[:, sl]
        known = ~np.isnan(block).any(1)
        out[known, i] = block[known, 0] if attr.kind == "binary" else np.nan_to_num(block[known]).argmax(1)
    return out


def mean_accuracy(dec: np.ndarray, truth: np.ndarray) -> float:
    """Mean over attributes of the accuracy on labelled images."""
    accs = []
    for i in range(truth.shape[1]):
        known = ~np.isnan(truth[:, i])
        if known.any():
            accs.append(float((dec[known, i] == truth[known, i]).mean()))
    return float(np.mean(accs)) if accs else float("nan")


def generated_images(spec: InputSpec, n: int = 64, seed: int = 0) -> np.ndarray:
    """Smooth random colour images with a few rectangles, uint8 ``[n, H, W, 3]``."""
    import cv2

    rng = np.random.default_rng(seed)
    out = np.empty((n, spec.height, spec.width, 3), np.uint8)
    for i in range(n):
        coarse = rng.integers(0, 256, (4, 4, 3)).astype(np.uint8)
        img = cv2.resize(coarse, (spec.width, spec.height), interpolation=cv2.INTER_CUBIC)
        for _ in range(3):
            y0, x0 = rng.integers(0, spec.height - 2), rng.integers(0, spec.width - 2)
            y1, x1 = rng.integers(y0 + 1, spec.height), rng.integers(x0 + 1, spec.width)
            img[y0:y1, x0:x1] = rng.integers(0, 256, 3)
        out[i] = img
    return out


def readable_images(items: Sequence[Any], read: Callable[[Any], Any], what: str, source: Any,
                    warn: Callable[[str], None]) -> list[Any]:
    """``read(item)`` for every item, skipping (and warning about) those that raise `InputError`.

    Ends with a count of the skipped items; raises when none could be read.
    """
    got = []
    for item in items:
        try:
            got.append(read(item))
        except InputError as exc:
            warn(f"warning: skipped an unreadable {what} image: {exc}")
    if len(got) < len(items):
        warn(f"warning: {len(items) - len(got)} of {len(items)} {what} images unreadable and skipped")
    if not got:
        raise InputError(f"none of the {len(items)} {what} images could be read", source)
    return got


def dataset_images(data: str, spec: InputSpec, split: str, n: int, what: str = "dataset",
                   warn: Callable[[str], None] = lambda _: None) -> tuple[np.ndarray, np.ndarray]:
    """Up to `n` images (resized to `spec`) and labels of one split of dataset ``format:path``.

    Unreadable images are skipped (each named through `warn`).
    """
    from attrnet.data import open_dataset
    from attrnet.core.imageio import resize_to_spec

    ds = open_dataset(data, split, transform=lambda img: resize_to_spec(img, spec))
    if len(ds) == 0:
        raise InputError(f"dataset has no {split} images", data)
    idx = np.linspace(0, len(ds) - 1, min(n, len(ds))).round().astype(int)
    pairs = readable_images(list(idx), lambda i: ds[int(i)], what, data, warn)
    images, labels = zip(*pairs)
    return np.stack(images), np.stack([np.asarray(l) for l in labels]).astype(np.float32)


def parity_inputs(spec: InputSpec, data: str | None, n: int = 64, warn: Callable[[str], None] = lambda _: None
                  ) -> tuple[np.ndarray, np.ndarray | None, str, str]:
    """(images, labels or None, source, note): the val split of `data` (else test), else generated."""
    if data:
        from attrnet.data import dataset_splits

        counts = dataset_splits(data)
        split = next((s for s in ("val", "test") if counts.get(s)), None)
        if split is None:
            raise InputError("dataset has neither val nor test images for the parity check", data)
        images, labels = dataset_images(data, spec, split, n, "parity", warn)
        return images, labels, f"data:{data}:{split}", ""
    return generated_images(spec, n), None, "generated", \
        "no --data given: parity measured on generated images, not real ones"


def torch_reference(model: Any, spec: InputSpec, images: np.ndarray) -> np.ndarray:
    """Probabilities of the unfolded model (fp32) on uint8 images, normalised the training way."""
    import torch

    from attrnet.core.model_card import probabilities

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(spec.mean).reshape(1, 3, 1, 1)
    std = torch.tensor(spec.std).reshape(1, 3, 1, 1)
    with torch.no_grad():
        out = [probabilities(model((x[i:i + 64] - mean) / std), model.schema) for i in range(0, len(x), 64)]
    return torch.cat(out).numpy()


def compare(reference: np.ndarray, runners: dict[str, Runner], images: np.ndarray, schema: Schema,
            thresholds: Sequence[float | None], labels: np.ndarray | None) -> tuple[float | None, list[RunnerParity]]:
    """Run every runner on `images` and compare with `reference` probabilities."""
    ref_dec = decisions(reference, schema, thresholds)
    truth = None if labels is None else label_decisions(labels, schema)
    ref_acc = None if truth is None else mean_accuracy(ref_dec, truth)
    out = []
    for name, run in runners.items():
        probs = np.asarray(run(images), dtype=np.float32)
        dec = decisions(probs, schema, thresholds)
        out.append(RunnerParity(
            name, float(np.abs(probs - reference).max()), float((dec == ref_dec).mean()),
            None if truth is None else mean_accuracy(dec, truth)))
    return ref_acc, out


def enforce(report: ParityReport) -> None:
    """Raise ParityError when a runner is beyond the tolerance of its precision."""
    for r in report.runners:
        tol, min_agree = (FOLDED_TOL, None) if r.name == "folded" else TOLERANCES[report.precision]
        if tol is not None and not r.max_abs <= tol:
            raise ParityError(f"{r.name} ({report.precision}) differs from the trained model by "
                              f"{r.max_abs:.3g} in probability (tolerance {tol:g}); no file written")
        if min_agree is not None and not r.agreement >= min_agree:
            raise ParityError(f"{r.name} ({report.precision}) agrees with the trained model on "
                              f"{100 * r.agreement:.2f}% of decisions (needs {100 * min_agree:.1f}%); "
                              "no file written")
