"""Heat-map PNGs of small matrices (cross-stitch alphas, Taskonomy affinities), matplotlib Agg."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

__all__ = ["save_heatmaps"]


def save_heatmaps(path: str | Path, panels: Sequence[tuple[str, Sequence[Sequence[float]]]],
                  row_labels: Sequence[str], col_labels: Sequence[str], title: str = "") -> None:
    """One heat map per (panel title, matrix) side by side, written atomically as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from attrnet.core.fileio import atomic_path

    n = max(1, len(panels))
    rows, cols = len(row_labels), len(col_labels)
    side = min(14.0, 2.0 + 0.28 * max(rows, cols))
    fig, axes = plt.subplots(1, n, figsize=(side * n, side), squeeze=False)
    small = max(rows, cols) > 12
    for ax, (name, matrix) in zip(axes[0], panels):
        m = np.asarray(matrix, dtype=float)
        im = ax.imshow(m, cmap="viridis", aspect="auto")
        ax.set_title(name, fontsize=9)
        ax.set_xticks(range(cols))
        ax.set_yticks(range(rows))
        ax.set_xticklabels(col_labels, rotation=90, fontsize=6 if small else 8)
        ax.set_yticklabels(row_labels, fontsize=6 if small else 8)
        if not small:
            for i in range(m.shape[0]):
                for j in range(m.shape[1]):
                    ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", fontsize=6, color="w")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
