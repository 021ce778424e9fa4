"""A study's plots, rendered with matplotlib: Optuna's own, plus the front of score against
size."""

from __future__ import annotations

import warnings
from typing import Any

import matplotlib

matplotlib.use("Agg")  # Files only; never a window (Optuna's plots go through pyplot).

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from cnnlab.names import MACS_ATTR, N_PARAMS_ATTR  # noqa: E402
from cnnlab.spec.words import count  # noqa: E402


def study_figures(study: Any, metric: str, size_attr: str = N_PARAMS_ATTR) -> dict[str, Any]:
    """Artifact path -> figure, for those plots the study has enough trials to draw."""
    import optuna
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as ovm

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    figures: dict[str, Any] = {}
    if not complete:
        return figures
    # With two objectives Optuna's plots need the one to draw: the validation metric.
    target = (lambda t: t.values[0]) if len(study.directions) > 1 else None
    makers = {
        "plots/optimization_history.png": lambda: ovm.plot_optimization_history(
            study, target=target, target_name=metric),
        "plots/parallel_coordinate.png": lambda: ovm.plot_parallel_coordinate(
            study, target=target, target_name=metric),
    }
    varied = {name for t in complete for name in t.params}
    if len(complete) >= 2 and varied:
        makers["plots/param_importances.png"] = lambda: ovm.plot_param_importances(
            study, target=target, target_name=metric)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # A parameter with one value so far draws a flat axis, and matplotlib says so.
        warnings.filterwarnings("ignore", "Attempting to set identical", UserWarning)
        # Early in a study most parameter values have been tried once; importances say so.
        warnings.filterwarnings("ignore", "Some regimes for parameter", UserWarning)
        # PED-ANOVA's notes on tiny studies and on targets given as functions: noise here.
        warnings.filterwarnings("ignore", "Target and region quantiles", UserWarning)
        warnings.filterwarnings("ignore", "PedAnovaImportanceEvaluator computes", UserWarning)
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
    figures["plots/front.png"] = front_figure(study, metric, size_attr)
    return figures


def front_figure(study: Any, metric: str, size_attr: str = N_PARAMS_ATTR) -> Figure:
    """Every trial's validation score against its size (log scale), the front of score
    against size drawn through the trials on it, and the notebook's CNN marked at its size;
    against parameters, the published small networks too (``cnnlab.spec.front.PUBLIC_ANCHORS``:
    test accuracies, as references).

    Fixed margins instead of a layout engine, as the curves (``cnnlab.tracking.plots``): every
    study run's close draws it: drawn and saved in 0.15 CPU-s against 0.25 with matplotlib's
    constrained layout (a study of 30 trials, medians of 5)."""
    from optuna.trial import TrialState

    from cnnlab.search.trials import front, outcome
    from cnnlab.spec.architecture import NOTEBOOK_CNN

    nouns = {N_PARAMS_ATTR: "parameters", MACS_ATTR: "multiply-adds per image"}
    noun = nouns.get(size_attr, size_attr)
    fig = Figure(figsize=(7.5, 4.8), dpi=100)
    fig.subplots_adjust(left=0.11, right=0.97, top=0.93, bottom=0.11)
    ax = fig.add_subplot()
    styles = {TrialState.COMPLETE: ("o", "complete", 0.55), TrialState.PRUNED: ("x", "pruned",
                                                                                0.55)}
    scores: list[float] = []
    for state, (marker, label, alpha) in styles.items():
        points = [(t.user_attrs[size_attr], _score(t)) for t in study.get_trials(
            deepcopy=False, states=(state,))
            if size_attr in t.user_attrs and outcome(t) in ("trained", "copied")]
        points = [(n, v) for n, v in points if v is not None]
        scores += [v for _, v in points]
        if points:
            ax.scatter(*zip(*points, strict=True), marker=marker, label=label, alpha=alpha,
                       color="tab:blue" if state == TrialState.COMPLETE else "tab:gray")
    on_front = front(study, size_attr)
    if on_front:
        xs = [t.user_attrs[size_attr] for t in on_front]
        ys = [t.values[0] for t in on_front]
        ax.step(xs, ys, where="post", color="tab:red", alpha=0.7)
        ax.scatter(xs, ys, marker="o", s=60, facecolors="none", edgecolors="tab:red",
                   label=f"front ({len(on_front)})")
        for t in on_front:
            ax.annotate(f"#{t.number}", (t.user_attrs[size_attr], t.values[0]), fontsize=7,
                        xytext=(3, 3), textcoords="offset points")
    table = NOTEBOOK_CNN.layer_table()
    size = table.total_params if size_attr == N_PARAMS_ATTR else table.total_macs
    ax.axvline(size, color="tab:green", linestyle="--", alpha=0.8,
               label=f"notebook CNN ({size:,} {noun})")
    _confirmed_points(ax, study, size_attr)
    if size_attr == N_PARAMS_ATTR and metric == "val_accuracy":
        from cnnlab.spec.front import PUBLIC_ANCHORS

        ax.scatter([a.params for a in PUBLIC_ANCHORS],
                   [a.test_accuracy for a in PUBLIC_ANCHORS], marker="*", s=70,
                   color="tab:orange", alpha=0.8,
                   label="public anchors (test accuracy, chosen on test; longer training)")
    ax.set_xscale("log")
    ax.set_xlabel(noun)
    ax.set_ylabel(metric + " (pruned: last epoch run)")
    note = _zoom(ax, metric, scores)
    if note:
        ax.text(0.01, 0.98, note, transform=ax.transAxes, va="top", fontsize=8, alpha=0.8)
    ax.set_title(f"{study.study_name}: {metric} against {noun}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    return fig


FRONT_ZOOM = 0.05
"""An accuracy front is drawn from this far below the best score up: the differences that
matter between small networks are tenths of a point, and a search's worst draws (a tenth of
the images right) would squeeze them into one line."""


def _zoom(ax: Any, metric: str, scores: list[float]) -> str:
    """Limit an accuracy axis to ``FRONT_ZOOM`` below the best of ``scores``; the words that
    say how many trials that leaves out (empty if none)."""
    if not metric.endswith("accuracy") or not scores:
        return ""
    bottom = max(scores) - FRONT_ZOOM
    below = sum(v < bottom for v in scores)
    if not below:
        return ""
    # Up to the highest point drawn (a trial, an anchor, a confirmed interval), with a margin.
    ax.set_ylim(bottom=bottom, top=ax.dataLim.y1 + 0.1 * FRONT_ZOOM)
    return f"{count(below, 'trial')} below {bottom:.3f} not shown"


def _confirmed_points(ax: Any, study: Any, size_attr: str) -> None:
    """Where ``cnnlab confirm`` ran: each confirmed trial's (and the notebook CNN's) mean over
    the new seeds, with its 95% interval."""
    from cnnlab.names import CONFIRMED_ATTR
    from cnnlab.spec.ranking import summarize

    record = study.user_attrs.get(CONFIRMED_ATTR) or {}
    for key, entry in record.get("entries", {}).items():
        size, values = entry.get(size_attr), entry.get("values", [])
        if size is None or len(values) < 2:
            continue
        s = summarize(key, values)
        notebook = key == "notebook"
        ax.errorbar([size], [s.mean], yerr=[[s.mean - s.ci_low], [s.ci_high - s.mean]],
                    fmt="D" if notebook else "s", color="tab:green" if notebook else "tab:purple",
                    capsize=3, markersize=5, alpha=0.9)
    if record.get("entries"):
        ax.errorbar([], [], fmt="s", color="tab:purple", label="confirmed: mean, 95% interval")


def _score(trial: Any) -> float | None:
    from cnnlab.search.trials import score

    return score(trial)


def close(fig: Any) -> None:
    """Free a figure, whether pyplot made it or not."""
    plt.close(fig)
