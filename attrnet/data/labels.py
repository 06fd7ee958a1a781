"""Label matrices (1, 0, NaN = missing) summarised with numpy only."""
from __future__ import annotations

import numpy as np

__all__ = ["positive_rate"]


def positive_rate(labels: np.ndarray) -> np.ndarray:
    """Per column: positives / labelled samples, NaN where no sample is labelled."""
    labelled = ~np.isnan(labels)
    count = labelled.sum(axis=0)
    pos = np.where(labelled, labels, 0.0).sum(axis=0)
    return np.where(count > 0, pos / np.maximum(count, 1), np.nan).astype(np.float64)
