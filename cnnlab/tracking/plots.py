"""The notebook's curves as matplotlib figures (object API, no pyplot state to leak)."""

from __future__ import annotations

from typing import Any

from matplotlib.figure import Figure


def curve_figure(history: dict[str, list[float]], metric: str, title: str) -> Figure:
    """Training vs validation ``metric`` per epoch, as the notebook plots them.

    Fixed margins instead of a layout engine: every trial draws two of these, and a layout
    engine nearly doubles the time to draw them (docs/benchmarks.md). The title sits at the
    top of the axes (``y=1``, where matplotlib would find it, there being no ticks on top)
    instead of being placed at every draw: the same pixels, 8% less time to draw.
    Saved with ``CURVE_SAVE_KWARGS``."""
    fig = Figure(figsize=(6, 4), dpi=100)
    fig.subplots_adjust(left=0.13, right=0.97, top=0.92, bottom=0.12)
    ax = fig.add_subplot()
    train, val = history.get(metric, []), history.get(f"val_{metric}", [])
    epochs = range(1, max(len(train), len(val)) + 1)
    ax.plot(epochs[: len(train)], train, "o-", label=f"training {metric}")
    ax.plot(epochs[: len(val)], val, "s--", label=f"validation {metric}")
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(title, y=1.0)
    if len(epochs) <= 20:
        ax.set_xticks(list(epochs))
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


CURVE_SAVE_KWARGS = {"pil_kwargs": {"compress_level": 1}}
"""How the curves are saved: PNG compressed at zlib's fastest level (matplotlib's default is
6), about 10% less time per figure for a file a little larger."""


def curve_figures(history: dict[str, list[float]]) -> dict[str, Figure]:
    """The two plots of the notebook, keyed by artifact file name."""
    return {
        "plots/loss.png": curve_figure(history, "loss", "Training and validation loss"),
        "plots/accuracy.png": curve_figure(history, "accuracy", "Training and validation accuracy"),
    }


def confusion_matrix_figure(matrix: Any, title: str) -> Figure:
    """Counts of true (rows) against predicted (columns) digits, with per-class accuracy."""
    fig = Figure(figsize=(7, 6), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues")
    n = matrix.shape[0]
    threshold = matrix.max() / 2
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=8,
                    color="white" if matrix[i, j] > threshold else "black")
    accuracy = matrix.diagonal() / matrix.sum(axis=1)
    ax.set_xticks(range(n))
    ax.set_yticks(range(n), [f"{d} ({a:.1%})" for d, a in enumerate(accuracy)])
    ax.set_xlabel("predicted digit")
    ax.set_ylabel("true digit (accuracy)")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, shrink=0.8)
    return fig
