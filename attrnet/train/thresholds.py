"""Per-column decision thresholds chosen on the validation split.

For every binary column the threshold maximises accuracy (`accuracy`) or
(TPR + TNR) / 2 (`balanced`, for mA) over the labelled validation samples.
Candidates are the midpoints between consecutive distinct scores (plus one
below the lowest and one above the highest); among equally good candidates the
one closest to 0.5 wins. Columns without validation labels keep 0.5;
categorical columns have no threshold (None: argmax).
"""
from __future__ import annotations

import numpy as np

from attrnet.core.schema import Schema

__all__ = ["best_threshold", "choose_thresholds", "OBJECTIVES"]

OBJECTIVES = ("accuracy", "balanced")


def best_threshold(scores: np.ndarray, labels: np.ndarray, objective: str = "accuracy") -> float:
    """The threshold t (predict positive iff score >= t) that maximises `objective`."""
    if objective not in OBJECTIVES:
        raise ValueError(f"unknown threshold objective {objective!r} (choose from {', '.join(OBJECTIVES)})")
    ok = ~np.isnan(labels)
    s, y = np.asarray(scores, np.float64)[ok], np.asarray(labels)[ok] == 1
    if len(s) == 0:
        return 0.5
    order = np.argsort(s, kind="stable")
    s, y = s[order], y[order]
    n_pos = y.sum()
    n_neg = len(y) - n_pos
    # cut i: samples [0, i) predicted negative, [i, n) positive; valid where s[i-1] < s[i]
    fn = np.concatenate([[0], np.cumsum(y)])          # positives below the cut
    tn = np.concatenate([[0], np.cumsum(~y)])         # negatives below the cut
    tp = n_pos - fn
    if objective == "accuracy":
        score = (tp + tn) / len(y)
    else:
        tpr = tp / n_pos if n_pos else np.ones_like(tp, dtype=np.float64)
        tnr = tn / n_neg if n_neg else np.ones_like(tn, dtype=np.float64)
        score = (tpr + tnr) / 2 if (n_pos and n_neg) else (tpr if n_pos else tnr)
    cuts = np.concatenate([[s[0] - 1e-6], (s[:-1] + s[1:]) / 2, [s[-1] + 1e-6]]).clip(0.0, 1.0)  # probabilities
    valid = np.ones(len(cuts), bool)
    valid[1:-1] = s[:-1] < s[1:]
    score = np.where(valid, score, -np.inf)
    best = np.flatnonzero(score >= score.max() - 1e-12)
    pick = best[np.argmin(np.abs(cuts[best] - 0.5))]
    return float(cuts[pick])


def choose_thresholds(probs: np.ndarray, labels: np.ndarray, schema: Schema,
                      objective: str = "accuracy") -> list[float | None]:
    """One threshold per output column (None for categorical columns)."""
    probs = np.asarray(probs, np.float32)
    labels = np.asarray(labels, np.float32)
    out: list[float | None] = []
    for c, is_binary in enumerate(schema.binary_columns):
        out.append(best_threshold(probs[:, c], labels[:, c], objective) if is_binary else None)
    return out
