"""Pictures of an evaluation a person can look at in MLflow beside its JSON: the confusion
matrix as a heat map with the counts written in (rows: the actual digit, columns: the
predicted one). matplotlib's Agg backend: no display, no window, any machine."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display in a processing job

import matplotlib.pyplot as plt

CONFUSION_MATRIX_PNG = "confusion_matrix.png"


def confusion_matrix_png(matrix: Mapping[str, Mapping[str, int]], path: Path, title: str) -> Path:
    """Draws `{actual: {predicted: count}}` (every label in both levels) to `path`."""
    labels = list(matrix)
    counts = [[int(matrix[actual][predicted]) for predicted in labels] for actual in labels]
    figure, axes = plt.subplots(figsize=(6.4, 5.6), dpi=100)
    try:
        image = axes.imshow(counts, cmap="Blues")
        axes.set_xticks(range(len(labels)), labels)
        axes.set_yticks(range(len(labels)), labels)
        axes.set_xlabel("predicted")
        axes.set_ylabel("actual")
        axes.set_title(title)
        peak = max((max(row) for row in counts), default=0)
        for row, values in enumerate(counts):
            for column, value in enumerate(values):
                color = "white" if value > peak / 2 else "black"
                axes.text(
                    column, row, str(value), ha="center", va="center", color=color, fontsize=8
                )
        figure.colorbar(image, ax=axes)
        figure.tight_layout()
        figure.savefig(path, format="png")
    finally:
        plt.close(figure)
    return path
