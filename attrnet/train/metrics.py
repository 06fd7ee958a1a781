"""Attribute metrics, vectorised over all columns with label masks (numpy, no torch).

Inputs: ``probs [N, C]`` (sigmoid per binary column, softmax within each
categorical group), ``labels [N, C]`` (1/0, NaN missing; categorical one-hot),
per-column thresholds (binary columns; ignored for categorical, which use argmax).

- per-attribute accuracy and its mean (CelebA's headline);
- label-based mA = mean over columns of (TPR + TNR) / 2 (a categorical column is
  one-vs-rest of the argmax prediction); a column with only one class present
  uses the rate that is defined;
- instance-based accuracy / precision / recall / F1 over the positive sets of
  each sample (as in Jia et al. 2021, "Rethinking of pedestrian attribute
  recognition": per-sample ratios with a small epsilon, F1 per sample, then means);
- top-k recall (DeepFashion): hits of the k highest-scored columns over all positives.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from attrnet.core.schema import Schema

__all__ = ["attribute_accuracy", "compute_metrics", "instance_based", "label_based", "predictions",
           "top_k_recall", "uses_top_k"]

_EPS = 1e-20


def predictions(probs: np.ndarray, schema: Schema, thresholds: Sequence[float | None] | None = None) -> np.ndarray:
    """Binary decisions ``[N, C]`` (0/1 float): thresholded binary columns, one-hot argmax per group."""
    probs = np.asarray(probs, dtype=np.float32)
    t = np.array([0.5 if (thresholds is None or v is None) else float(v) for v in
                  (thresholds if thresholds is not None else [None] * schema.num_columns)], dtype=np.float32)
    pred = (probs >= t).astype(np.float32)
    for attr, sl in zip(schema.attributes, schema.slices):
        if attr.kind == "categorical":
            block = np.zeros_like(probs[:, sl])
            block[np.arange(len(probs)), probs[:, sl].argmax(1)] = 1
            pred[:, sl] = block
    return pred


def _safe_div(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


def attribute_accuracy(pred: np.ndarray, labels: np.ndarray, schema: Schema) -> np.ndarray:
    """Accuracy of every attribute ``[A]`` over its labelled samples (NaN if none)."""
    labels = np.asarray(labels, dtype=np.float32)
    valid = ~np.isnan(labels)
    correct = (pred == labels) & valid
    col_acc_num = correct.sum(0).astype(np.float64)
    col_n = valid.sum(0).astype(np.float64)
    out = np.empty(len(schema.attributes))
    for i, (attr, sl) in enumerate(zip(schema.attributes, schema.slices)):
        if attr.kind == "binary":
            out[i] = _safe_div(col_acc_num[sl.start], col_n[sl.start])
        else:
            lab = labels[:, sl]
            ok = valid[:, sl].all(1) & (np.nan_to_num(lab).sum(1) > 0)
            hit = (pred[:, sl].argmax(1) == np.nan_to_num(lab).argmax(1)) & ok
            out[i] = _safe_div(np.float64(hit.sum()), np.float64(ok.sum()))
    return out


def label_based(pred: np.ndarray, labels: np.ndarray) -> dict[str, np.ndarray]:
    """Per-column TPR, TNR and balanced accuracy ``[C]`` (NaN where undefined)."""
    valid = ~np.isnan(labels)
    y = np.nan_to_num(labels)
    pos = (y == 1) & valid
    neg = (y == 0) & valid
    tp = (pos & (pred == 1)).sum(0).astype(np.float64)
    tn = (neg & (pred == 0)).sum(0).astype(np.float64)
    tpr = _safe_div(tp, pos.sum(0).astype(np.float64))
    tnr = _safe_div(tn, neg.sum(0).astype(np.float64))
    both = np.stack([tpr, tnr])
    defined = np.isfinite(both).sum(0)
    balanced = np.where(defined > 0, np.nansum(both, 0) / np.maximum(defined, 1), np.nan)
    return {"tpr": tpr, "tnr": tnr, "balanced": balanced}


def instance_based(pred: np.ndarray, labels: np.ndarray, eps: float = _EPS) -> dict[str, float]:
    """Instance accuracy / precision / recall / F1 over samples with at least one labelled column."""
    valid = ~np.isnan(labels)
    y = (np.nan_to_num(labels) == 1) & valid
    p = (pred == 1) & valid
    inter = (y & p).sum(1).astype(np.float64)
    union = (y | p).sum(1).astype(np.float64)
    n_pred, n_true = p.sum(1).astype(np.float64), y.sum(1).astype(np.float64)
    rows = valid.any(1)
    if not rows.any():
        return {"instance_accuracy": float("nan"), "instance_precision": float("nan"),
                "instance_recall": float("nan"), "instance_f1": float("nan")}
    acc = inter / (union + eps)
    prec = inter / (n_pred + eps)
    rec = inter / (n_true + eps)
    f1 = 2 * prec * rec / (prec + rec + eps)
    return {"instance_accuracy": float(acc[rows].mean()), "instance_precision": float(prec[rows].mean()),
            "instance_recall": float(rec[rows].mean()), "instance_f1": float(f1[rows].mean())}


def top_k_recall(probs: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Fraction of all positive labels found among each sample's k highest-scored columns."""
    y = (np.nan_to_num(labels) == 1) & ~np.isnan(labels)
    total = y.sum()
    if total == 0:
        return float("nan")
    k = min(k, probs.shape[1])
    top = np.argpartition(-probs, k - 1, axis=1)[:, :k]
    hits = np.take_along_axis(y, top, axis=1).sum()
    return float(hits / total)


def uses_top_k(schema: Schema) -> bool:
    """Top-k recall applies to large all-binary label spaces (DeepFashion)."""
    return schema.name == "deepfashion" or (not schema.has_categorical and schema.num_columns >= 100)


def _clean(v: float) -> float | None:
    return None if v is None or not np.isfinite(v) else float(v)


def compute_metrics(probs: np.ndarray, labels: np.ndarray, schema: Schema,
                    thresholds: Sequence[float | None] | None = None,
                    top_k: Sequence[int] | None = None) -> dict[str, Any]:
    """All metrics as a JSON-ready dict (undefined values are None)."""
    probs = np.asarray(probs, dtype=np.float32)
    labels = np.asarray(labels, dtype=np.float32)
    if probs.shape != labels.shape or probs.shape[1:] != (schema.num_columns,):
        raise ValueError(f"probs {probs.shape} and labels {labels.shape} must both be [N, {schema.num_columns}]")
    pred = predictions(probs, schema, thresholds)
    acc = attribute_accuracy(pred, labels, schema)
    lb = label_based(pred, labels)
    with np.errstate(invalid="ignore"):
        mean_acc = float(np.nanmean(acc)) if np.isfinite(acc).any() else float("nan")
        ma = float(np.nanmean(lb["balanced"])) if np.isfinite(lb["balanced"]).any() else float("nan")
    out: dict[str, Any] = {"num_samples": int(len(probs)), "mean_accuracy": _clean(mean_acc), "mA": _clean(ma)}
    out.update({k: _clean(v) for k, v in instance_based(pred, labels).items()})
    out["per_attribute"] = {a: _clean(v) for a, v in zip(schema.names, acc)}
    out["per_column_mA"] = {c: _clean(v) for c, v in zip(schema.columns, lb["balanced"])}
    if top_k is None and uses_top_k(schema):
        top_k = (3, 5)
    if top_k:
        out["top_k_recall"] = {str(k): _clean(top_k_recall(probs, labels, k)) for k in top_k}
    return out
