"""The notebook's last exercise, answered from the stores: how do validation accuracy and the
parameter count change with filters, kernel size, stride and padding?

    python experiments/compare_notebook.py [STUDY ...] [--storage URL] [--tracking-uri URI]
                                           [--out DIR] [--epoch N]

Default studies: filters-kernels, strides-padding, knobs and knobs-full (run them first with
`cnnlab study run`), or whichever studies are named. A designed experiment (knobs, knobs-full:
``[design]``) is answered knob by knob as its report does (``cnnlab.results.report``: per knob,
the table with 95% intervals over seeds and the difference to the base, and the figure
``STUDY_KNOB.png``); the searches as follows. Every trial that ended complete or pruned is
compared after the same number of epochs (``cnnlab.results.compare.at_epoch``: by default the
last epoch every one of them reached, so a pruned trial counts at the epochs it reached;
``--epoch N`` for another). Infeasible draws (never built) are counted apart and compared
nowhere. Prints each knob's effect, network by network -- per group of networks (all same, all
valid or mixed padding; all 3x3, all 5x5 or mixed kernels; the number of stride-2 layers; the
filters against the notebook CNN's; the depth) the mean score with its 95% Student-t interval
kept inside [0, 1], the number of trials, the median parameter count
(``cnnlab.results.compare.knob_effects``) -- and writes one figure per question to --out
(default: the current directory):

- ``kernel_5x5_vs_3x3.png``: does a 5x5 kernel beat 3x3 at equal parameter count?
- ``stride_2_cost.png``: what does stride 2 cost in accuracy, and what does it save in size?
- ``same_padding.png``: when does ``same`` padding help: by depth, by kernel size?
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from cnnlab.errors import ConfigError
from cnnlab.results import report
from cnnlab.results.compare import (
    CURVES,
    at_epoch,
    knob_effects,
    network_knobs,
    study_names,
    trials_frame,
)

KNOBS = {"paddings": "padding (all same, all valid, mixed)",
         "kernels": "kernel size (all 3x3, all 5x5 ..., mixed)",
         "stride2_layers": "the number of stride-2 layers",
         "filters_scale": "the filters against the notebook CNN's (x1: 32-32-64-64)",
         "n_conv": "depth (n_conv)"}
"""Each network knob's table, by its column (``cnnlab.spec.knobs``), with its title."""
FIGURES = ("kernel_5x5_vs_3x3.png", "stride_2_cost.png", "same_padding.png")
COLOURS = {"all 3x3": "tab:blue", "all 5x5": "tab:orange", "all same": "tab:green",
           "all valid": "tab:purple", "mixed": "0.6"}


def with_knobs(scores: pd.DataFrame) -> pd.DataFrame:
    """``at_epoch`` rows with one column per network knob (``network_knobs``: ``paddings``,
    ``kernels``, ``stride2_layers``, ``filters_scale``) and ``size_bin`` (the trial's parameter
    count in a few bins of about equal numbers of trials)."""
    out = network_knobs(scores)
    return out.assign(size_bin=size_bins(out["n_params"]))


def size_bins(n_params: pd.Series) -> pd.Series:
    """Parameter counts in up to four bins of about equal numbers of trials (one bin for every
    eight trials or so), labelled by their range ("1.2k-8.5k")."""
    counts = n_params.astype("float64")
    n_bins = max(1, min(4, int(counts.notna().sum()) // 8))
    if n_bins == 1 or counts.nunique() < 2:
        low, high = counts.min(), counts.max()
        label = _short(low) if low == high else f"{_short(low)}-{_short(high)}"
        return pd.Series(pd.Categorical([label] * len(counts)), index=counts.index)
    edges = sorted(set(np.quantile(counts.dropna(), np.linspace(0, 1, n_bins + 1))))
    labels = [f"{_short(lo)}-{_short(hi)}" for lo, hi in zip(edges, edges[1:], strict=False)]
    return pd.cut(counts, edges, labels=labels, include_lowest=True)


def _short(count: float) -> str:
    if count >= 1e6:
        return f"{count / 1e6:.1f}M"
    return f"{count / 1e3:.1f}k" if count >= 1e3 else f"{count:.0f}"


def tables(scores: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Each knob's effect at equal epochs, network by network (each trial in one row of each
    table), then the questions' tables that the figures draw."""
    summary = with_knobs(scores)
    out = {title: knob_effects(summary, knob) for knob, title in KNOBS.items()}
    out["kernel size within parameter bins"] = knob_effects(summary, "kernels", by="size_bin")
    out["padding by depth"] = knob_effects(summary, "paddings", by="n_conv")
    out["padding by kernel size"] = knob_effects(summary, "paddings", by="kernels")
    return out


def _caption(scores: pd.DataFrame) -> str:
    metric = str(scores["score_metric"].iloc[0])
    epoch = int(scores["epoch"].iloc[0])
    pruned = int((scores["state"].astype(str) == "PRUNED").sum())
    return (f"{metric} after {epoch} epoch(s): {len(scores)} trials ({pruned} pruned, at the "
            f"epochs they reached). Dots: trials; markers and bars: mean and 95% t interval "
            f"within [0, 1] (none for one trial).")


def _dodged(ax, rows: pd.DataFrame, group: str, series: str, order: list[str]) -> None:
    """Per value of ``group`` on the x axis, the mean score of each ``series`` value side by
    side with its 95% interval (``knob_effects``, the numbers the tables print), and the trials
    themselves as faint dots behind."""
    table = knob_effects(rows, series, by=group)
    groups = [g for g in _categories(rows[group]) if g in table.index.get_level_values(0)]
    present = [s for s in order if s in table.index.get_level_values(1)]
    width = 0.7 / max(1, len(present))
    rng = np.random.default_rng(0)
    for j, name in enumerate(present):
        colour = COLOURS.get(str(name), f"C{j}")
        offset = (j - (len(present) - 1) / 2) * width
        xs, means, below, above, ns = [], [], [], [], []
        for i, g in enumerate(groups):
            if (g, name) not in table.index:
                continue
            entry = table.loc[(g, name)]
            dots = rows.loc[(rows[group] == g) & (rows[series] == name), "score"]
            ax.scatter(i + offset + rng.uniform(-width / 5, width / 5, len(dots)), dots,
                       s=14, color=colour, alpha=0.3, linewidths=0)
            xs.append(i + offset)
            means.append(entry["mean"])
            below.append(0.0 if pd.isna(entry["ci_low"]) else entry["mean"] - entry["ci_low"])
            above.append(0.0 if pd.isna(entry["ci_high"]) else entry["ci_high"] - entry["mean"])
            ns.append(int(entry["trials"]))
        ax.errorbar(xs, means, yerr=[below, above], fmt="o", color=colour, capsize=4,
                    markersize=7, label=f"{name} ({_trials(sum(ns))})")
        for x, m, n in zip(xs, means, ns, strict=True):
            ax.annotate(f"n={n}", (x, m), textcoords="offset points", xytext=(6, -3),
                        fontsize=7, color=colour)
    ax.set_xticks(range(len(groups)), [str(g) for g in groups])
    ax.set_xlim(-0.6, len(groups) - 0.4)
    ax.grid(alpha=0.3, axis="y")
    _clip_to_points(ax, rows["score"])


def _trials(n: int) -> str:
    return f"{n} trial" if n == 1 else f"{n} trials"


def _missing_text(summary: pd.DataFrame, group: str, series: str, pair: tuple[str, str],
                  what: str) -> str | None:
    both = summary[summary[series].isin(pair)].groupby(group, observed=True)[series].nunique()
    if (both < 2).all():
        return (f"No {what} holds both {pair[0]} and {pair[1]} networks: this study cannot "
                f"answer the question.")
    return None


def _questions(summary: pd.DataFrame) -> dict[str, tuple]:
    """Each comparison a figure draws, by the name its note carries: the rows, the grouping
    column, the compared column, the pair of values compared and what a group is called."""
    return {"kernel_5x5_vs_3x3.png": (summary, "size_bin", "kernels", ("all 3x3", "all 5x5"),
                                      "parameter bin"),
            "same_padding.png (by depth)": (summary.assign(depth=summary["n_conv"]), "depth",
                                            "paddings", ("all same", "all valid"), "depth"),
            "same_padding.png (by kernel size)": (summary, "kernels", "paddings",
                                                  ("all same", "all valid"), "kernel size")}


def _unanswered(summary: pd.DataFrame) -> dict[str, str]:
    return {name: text for name, check in _questions(summary).items()
            if (text := _missing_text(*check))}


def _say_missing(ax, text: str | None) -> None:
    """Say on the axes, in words, when no group holds trials of both values compared: the
    figure then cannot answer its question, and an empty comparison must not read as one."""
    if text:
        ax.text(0.5, 0.97, text, transform=ax.transAxes, ha="center", va="top", fontsize=8,
                color="firebrick",
                bbox={"facecolor": "white", "edgecolor": "firebrick", "alpha": 0.9})


def unanswered(scores: pd.DataFrame) -> list[str]:
    """The figures' questions that these trials cannot answer, each as the sentence its figure
    shows (no bin, depth or kernel size holding trials of both values compared)."""
    return [f"{name}: {text}" for name, text in _unanswered(with_knobs(scores)).items()]


def _categories(column: pd.Series) -> list:
    if isinstance(column.dtype, pd.CategoricalDtype):
        return list(column.cat.categories)
    return sorted(column.dropna().unique(), key=str)


def _clip_to_points(ax, scores: pd.Series) -> None:
    """Frame the trials' scores, not the widest interval (two trials give a huge t interval)."""
    lo, hi = float(scores.min()), float(scores.max())
    pad = max(0.02, (hi - lo) * 0.15)
    ax.set_ylim(lo - pad, hi + pad)


def kernel_figure(summary: pd.DataFrame) -> Figure:
    fig = Figure(figsize=(9, 5), layout="constrained")
    ax = fig.subplots()
    _dodged(ax, summary, "size_bin", "kernels", _categories(summary["kernels"]))
    ax.set_xlabel("parameters (bins of about equal numbers of trials)")
    ax.set_ylabel(str(summary["score_metric"].iloc[0]))
    ax.legend(title="conv kernels", fontsize=8)
    bins = summary["size_bin"].nunique()
    ax.set_title("Does a 5x5 kernel beat 3x3 at equal parameter count?\n"
                 f"({bins} parameter bin{'' if bins == 1 else 's'}, one per 8 trials or so)\n"
                 "how to read it: 5x5 wins in a bin where orange sits above blue and the bars "
                 "do not overlap", fontsize=10)
    _say_missing(ax, _unanswered(summary).get("kernel_5x5_vs_3x3.png"))
    fig.supxlabel(_caption(summary), fontsize=7)
    return fig


def stride_figure(summary: pd.DataFrame) -> Figure:
    fig = Figure(figsize=(12, 4.5), layout="constrained")
    score_ax, params_ax, macs_ax = fig.subplots(1, 3)
    summary = summary.assign(stride2=summary["stride2_layers"].astype(str),
                             all="all trials")
    _dodged(score_ax, summary, "stride2", "all", ["all trials"])
    score_ax.set_ylabel(str(summary["score_metric"].iloc[0]))
    score_ax.set_title("accuracy: what it costs")
    for ax, column, title in ((params_ax, "n_params", "parameters: what it saves"),
                              (macs_ax, "macs", "multiply-adds per image: what it saves")):
        groups = sorted(summary["stride2_layers"].dropna().unique())
        data = [summary.loc[summary["stride2_layers"] == g, column].astype("float64").dropna()
                for g in groups]
        for i, values in enumerate(data):
            ax.scatter(np.full(len(values), i), values, s=14, color="0.4", alpha=0.4,
                       linewidths=0)
            if len(values):
                ax.scatter([i], [values.median()], marker="_", s=600, color="black",
                           label="median" if i == 0 else None)
        ax.set_xticks(range(len(groups)), [str(g) for g in groups])
        ax.set_yscale("log")
        ax.grid(alpha=0.3, axis="y")
        ax.set_title(title)
        ax.legend(fontsize=8)
    for ax in (score_ax, params_ax, macs_ax):
        ax.set_xlabel("conv layers with stride 2 or more")
    fig.suptitle("What does stride 2 cost?", fontsize=12)
    fig.supxlabel(_caption(summary), fontsize=7)
    return fig


def padding_figure(summary: pd.DataFrame) -> Figure:
    fig = Figure(figsize=(12, 5), layout="constrained")
    by_depth, by_kernel = fig.subplots(1, 2, sharey=True)
    order = _categories(summary["paddings"])
    _dodged(by_depth, summary.assign(depth=summary["n_conv"].astype(str)), "depth",
            "paddings", order)
    by_depth.set_xlabel("conv layers (depth)")
    by_depth.set_ylabel(str(summary["score_metric"].iloc[0]))
    by_depth.set_title("by depth")
    _dodged(by_kernel, summary, "kernels", "paddings", order)
    by_kernel.set_xlabel("conv kernels")
    by_kernel.set_title("by kernel size")
    for ax in (by_depth, by_kernel):
        ax.legend(title="padding", fontsize=8)
    notes = _unanswered(summary)
    _say_missing(by_depth, notes.get("same_padding.png (by depth)"))
    _say_missing(by_kernel, notes.get("same_padding.png (by kernel size)"))
    fig.suptitle("When does `same` padding help?\n(how to read it: it helps where green (all "
                 "same) sits above purple (all valid) and the bars do not overlap)", fontsize=11)
    fig.supxlabel(_caption(summary), fontsize=7)
    return fig


def figures(scores: pd.DataFrame) -> dict[str, Figure]:
    """The three questions' figures, by file name."""
    summary = with_knobs(scores)
    return dict(zip(FIGURES, (kernel_figure(summary), stride_figure(summary),
                              padding_figure(summary)), strict=True))


DEFAULT_STUDIES = ("filters-kernels", "strides-padding", "knobs", "knobs-full")


def answer_design(name: str, design, args: argparse.Namespace) -> None:
    """A designed experiment's answer, as its report gives it: the per-knob tables, printed,
    and one figure per knob (``STUDY_KNOB.png``) in ``args.out``."""
    frame = trials_frame(name, storage=args.storage, tracking_uri=args.tracking_uri,
                         epoch_curves=CURVES)
    print(f"study '{name}', a designed experiment around the {design.base_name}:")
    for line in report.format_tables(report.design_tables(frame, design)):
        print(line)
    for knob, fig in report.design_figures(frame, design).items():
        path = args.out / f"{name}_{knob.replace(' ', '')}.png"
        fig.savefig(path, dpi=100)
        print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="*")
    parser.add_argument("--storage")
    parser.add_argument("--tracking-uri")
    parser.add_argument("--out", type=Path, default=Path("."))
    parser.add_argument("--epoch", type=int, help="compare after this many epochs (default: "
                        "the last epoch every complete or pruned trial reached)")
    args = parser.parse_args(argv)
    names = args.studies or [n for n in study_names(args.storage) if n in DEFAULT_STUDIES]
    if not names:
        parser.error("no studies named and none of filters-kernels, strides-padding, knobs "
                     "has run; run one with `cnnlab study run experiments/knobs.toml`.")
    try:
        designs = {n: d for n in names
                   if (d := report.design_of(n, args.storage)) is not None}
    except ConfigError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    args.out.mkdir(parents=True, exist_ok=True)
    for name, design in designs.items():
        answer_design(name, design, args)
    names = [n for n in names if n not in designs]
    if not names:
        return 0
    try:
        frame = trials_frame(names, storage=args.storage, tracking_uri=args.tracking_uri)
    except ConfigError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    # INFEASIBLE: drawn, never built (too big, or a feature map below 1x1); not trained.
    print(frame.groupby(["study", "state"], observed=True).size().rename("trials").to_string())
    infeasible = int((frame["state"].astype(str) == "INFEASIBLE").sum())
    if infeasible:
        print(f"{infeasible} infeasible draw(s) were never built: not trained, compared nowhere.")
    scores = at_epoch(frame, args.epoch)
    print(f"\nCompared at equal epochs: {_caption(scores)}")
    with pd.option_context("display.width", 160, "display.max_columns", 20,
                           "display.precision", 4):
        for title, table in tables(scores).items():
            print(f"\n{scores['score_metric'].iloc[0]} at epoch {scores['epoch'].iloc[0]} "
                  f"by {title}:")
            print(table.to_string())
    for line in unanswered(scores):
        print(f"\nnote: {line}")
    for name, fig in figures(scores).items():
        path = args.out / name
        fig.savefig(path, dpi=100)
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
