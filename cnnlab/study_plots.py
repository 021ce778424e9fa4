"""A study's plots, rendered with matplotlib: Optuna's own, plus score against size."""

from __future__ import annotations

import warnings
from typing import Any

import matplotlib

matplotlib.use("Agg")  # Files only; never a window (Optuna's plots go through pyplot).

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def study_figures(study: Any, metric: str) -> dict[str, Any]:
    """Artifact path -> figure, for those plots the study has enough trials to draw."""
    import optuna
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as ovm

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    figures: dict[str, Any] = {}
    if not complete:
        return figures
    makers = {
        "plots/optimization_history.png": lambda: ovm.plot_optimization_history(
            study, target_name=metric),
        "plots/parallel_coordinate.png": lambda: ovm.plot_parallel_coordinate(
            study, target_name=metric),
    }
    varied = {name for t in complete for name in t.params}
    if len(complete) >= 2 and varied:
        makers["plots/param_importances.png"] = lambda: ovm.plot_param_importances(
            study, target_name=metric)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # A parameter with one value so far draws a flat axis, and matplotlib says so.
        warnings.filterwarnings("ignore", "Attempting to set identical", UserWarning)
        # Early in a study most parameter values have been tried once; importances say so.
        warnings.filterwarnings("ignore", "Some regimes for parameter", UserWarning)
        for path, make in makers.items():
            try:
                axes = make()
            except (ValueError, RuntimeError, ZeroDivisionError):
                continue  # Too few distinct trials for this plot yet.
            fig = axes.figure if hasattr(axes, "figure") else axes.flat[0].figure
            # One axis per parameter: the parallel coordinates need the width.
            fig.set_size_inches(14 if "parallel" in path else 8, 6 if "parallel" in path else 5)
            fig.tight_layout()
            figures[path] = fig
    figures["plots/score_vs_params.png"] = score_vs_params(study, metric)
    return figures


def score_vs_params(study: Any, metric: str) -> Figure:
    """Every finished trial's validation score against its parameter count (log scale)."""
    from optuna.trial import TrialState

    fig = Figure(figsize=(7, 4.5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    styles = {TrialState.COMPLETE: ("o", "complete"), TrialState.PRUNED: ("x", "pruned")}
    for state, (marker, label) in styles.items():
        points = [(t.user_attrs["n_params"], _score(t)) for t in study.get_trials(
            deepcopy=False, states=(state,)) if "n_params" in t.user_attrs]
        points = [(n, v) for n, v in points if v is not None]
        if points:
            ax.scatter(*zip(*points, strict=True), marker=marker, label=label, alpha=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel(metric + " (pruned: last reported)")
    ax.set_title(f"{study.study_name}: {metric} against parameter count")
    ax.grid(alpha=0.3, which="both")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    return fig


def _score(trial: Any) -> float | None:
    if trial.value is not None:
        return trial.value
    if trial.intermediate_values:
        return trial.intermediate_values[max(trial.intermediate_values)]
    return None


def close(fig: Any) -> None:
    """Free a figure, whether pyplot made it or not."""
    plt.close(fig)
