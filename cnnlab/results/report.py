"""A study's report: one self-contained HTML page (figures embedded) that answers its question,
in one line first (``design_answer``, ``search_answer``), then in detail.

For a designed experiment (``cnnlab.search.design``), the notebook's exercise, knob by knob:
a panel of parameters (log axis) against the mean validation accuracy over seeds with its 95%
interval, the base network marked; beside it the notebook's own view, the training and
validation curves of each setting (mean over seeds); and a table: setting, parameters,
multiply-adds, final training and validation accuracy and loss with their intervals, and the
difference to the base with its interval. For a search: the leaderboard, the front of score
against size, the leaders' curves and the knob effects grouped per network
(``compare.knob_effects``).

Every number comes from the stores (``compare.trials_frame``: Optuna's trials joined with their
MLflow runs). ``design_tables`` and ``knob_table`` are the arithmetic; ``write_report`` the page;
``cnnlab report STUDY`` and the end of ``cnnlab study run`` call it, and the comparison notebook
uses the same functions.

Intervals: Student-t 95% intervals of the mean over seeds (``cnnlab.spec.ranking.summarize``),
clipped to what the quantity can be (accuracies in [0, 1], losses at least 0); the difference to
the base is paired seed by seed (a setting and the base share their seeds, so the pair differs
by the knob alone), its interval clipped to [-1, 1] for accuracies. With one seed an interval is
unknown (NaN).
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from cnnlab import names
from cnnlab.results import compare
from cnnlab.search.design import BASE, SEED_PARAM, SETTING_PARAM, Design
from cnnlab.spec import knobs as K
from cnnlab.spec.words import count

FINALS = ("val_accuracy", "val_loss", "accuracy", "loss")
"""The final values a design's table summarizes: validation, then training."""
REPORT_ARTIFACT = names.REPORT_ARTIFACT
"""The report's name among the study run's artifacts."""


def interval(values: Sequence[float], metric: str, difference: bool = False
             ) -> tuple[float, float, float, int]:
    """Mean, 95% interval (low, high) and count of ``values`` (``cnnlab.spec.knobs.
    mean_interval``: Student's t, clipped to what ``metric`` can be, an accuracy's [0, 1], or
    [-1, 1] for a ``difference`` of accuracies); NaN bounds for fewer than two values."""
    values = [float(v) for v in values if v is not None and not pd.isna(v)]
    if not values:
        return math.nan, math.nan, math.nan, 0
    low, high = K.bounds(metric)
    within = (-high, high) if difference else (low, high)
    found = K.mean_interval(values, within=within)
    return found.mean, found.low, found.high, found.n


def design_trials(frame: pd.DataFrame, design: Design) -> pd.DataFrame:
    """The design's trained trials (COMPLETE, trained by this study: not duplicates), with
    their setting's ``knob`` and ``value`` labels and the seed's index."""
    done = frame[(frame["state"].astype(str) == "COMPLETE")
                 & (frame["outcome"].astype(str) != "duplicate")].copy()
    if done.empty or SETTING_PARAM not in done:
        return done.assign(knob=pd.Series(dtype="object"), value_label=pd.Series(dtype="object"))
    settings = {s.label: s for s in design.settings()}
    done = done[done[SETTING_PARAM].astype(str).isin(settings)]
    done["knob"] = [settings[str(v)].knob for v in done[SETTING_PARAM]]
    done["value_label"] = [settings[str(v)].value for v in done[SETTING_PARAM]]
    done["seed_index"] = done[SEED_PARAM].astype(int)
    return done


def knob_settings(design: Design, knob: str) -> list[str]:
    """The settings of ``knob``'s panel and table, base first: the base and every setting that
    changes this knob alone (for a factorial ``a x b``, every setting that changes only a and
    b)."""
    parts = set(knob.split(" x "))
    return [s.label for s in design.settings()
            if s.label == BASE or {k for k, _ in s.changes} <= parts and
            (s.knob == knob or " x " in knob)]


def knobs(design: Design) -> list[str]:
    """The knobs the report has a panel for: each knob varied, then the factorial's pair."""
    names = [k for k, _ in design.knobs]
    if design.factorial is not None:
        names.append(" x ".join(design.factorial))
    return names


def knob_table(trials: pd.DataFrame, design: Design, knob: str) -> pd.DataFrame:
    """One row per setting of ``knob`` (base first): ``setting``, ``value``, ``n_params``,
    ``macs``, ``final_feature_map`` (before Flatten, e.g. ``6x6x64``), ``receptive_field``,
    ``seeds`` (trained so far), for each of ``FINALS`` its mean and 95% interval
    (``val_accuracy``, ``val_accuracy_low``, ``val_accuracy_high`` ...), and the difference
    of the validation accuracy to the base, paired by seed (``diff_val_accuracy`` with
    ``_low``/``_high``; 0 for the base itself)."""
    rows = []
    base = trials[trials[SETTING_PARAM].astype(str) == BASE].set_index("seed_index")
    for label in knob_settings(design, knob):
        mine = trials[trials[SETTING_PARAM].astype(str) == label]
        setting = design.setting(label)
        table = setting.architecture.layer_table()
        derived = setting.architecture.derived_params()
        row: dict[str, Any] = {"setting": label, "value": setting.value,
                               "n_params": table.total_params, "macs": table.total_macs,
                               "final_feature_map": derived["final_feature_map"],
                               "receptive_field": derived["receptive_field"],
                               "seeds": len(mine)}
        for metric in FINALS:
            mean, low, high, _ = interval(mine[f"final_{metric}"].tolist(), metric)
            row.update({metric: mean, f"{metric}_low": low, f"{metric}_high": high})
        paired = mine.set_index("seed_index")["final_val_accuracy"]
        common = paired.index.intersection(base.index)
        diffs = (paired.loc[common] - base.loc[common, "final_val_accuracy"]).tolist()
        mean, low, high, _ = interval(diffs, "val_accuracy", difference=True)
        row.update({"diff_val_accuracy": mean, "diff_val_accuracy_low": low,
                    "diff_val_accuracy_high": high, "paired_seeds": len(common)})
        rows.append(row)
    return pd.DataFrame(rows)


def design_tables(frame: pd.DataFrame, design: Design) -> dict[str, pd.DataFrame]:
    """``knob_table`` for every knob of the design (``knobs``), from a ``trials_frame``."""
    trials = design_trials(frame, design)
    return {knob: knob_table(trials, design, knob) for knob in knobs(design)}


def mean_curves(trials: pd.DataFrame, label: str) -> dict[str, list[float]]:
    """A setting's curves, each epoch's mean over its seeds: metric -> values from epoch 1."""
    mine = trials[trials[SETTING_PARAM].astype(str) == label]
    curves: dict[str, list[float]] = {}
    for metric in FINALS:
        columns = compare._epoch_columns(mine, metric)
        values = [float(mine[c].mean()) for c in columns.values() if mine[c].notna().any()]
        if values:
            curves[metric] = values
    return curves


# -- text -------------------------------------------------------------------------------------

def _ci(mean: float, low: float, high: float, digits: int = 4) -> str:
    if pd.isna(mean):
        return "-"
    if pd.isna(low):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def _signed(mean: float, low: float, high: float) -> str:
    if pd.isna(mean):
        return "-"
    if pd.isna(low):
        return f"{mean:+.4f}"
    return f"{mean:+.4f} [{low:+.4f}, {high:+.4f}]"


def format_tables(tables: dict[str, pd.DataFrame]) -> list[str]:
    """The per-knob tables as text lines, for the end of a study: setting, parameters, seeds,
    validation accuracy with its interval and the difference to the base."""
    lines = []
    for knob, table in tables.items():
        lines.append(f"{knob}:")
        for row in table.itertuples():
            lines.append(
                f"  {row.value:<24} {row.n_params:>10,} params  {row.seeds} seed(s)  val_accuracy "
                f"{_ci(row.val_accuracy, row.val_accuracy_low, row.val_accuracy_high)}"
                + ("" if row.setting == BASE else "  vs base " + _signed(
                    row.diff_val_accuracy, row.diff_val_accuracy_low,
                    row.diff_val_accuracy_high)))
    return lines


# -- figures ----------------------------------------------------------------------------------

def knob_figure(trials: pd.DataFrame, table: pd.DataFrame, knob: str, base_name: str) -> Any:
    """The knob's panel (parameters on a log axis against the mean validation accuracy with its
    95% interval; the base marked; points labelled) beside the notebook's curves of each
    setting (training solid, validation dashed; mean over seeds): loss, then accuracy."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 4.4))
    ax, loss_ax, acc_ax = fig.subplots(1, 3, gridspec_kw={"width_ratios": [1.15, 1, 1]})
    colors = [f"C{i}" for i in range(10)]
    for i, row in enumerate(table.itertuples()):
        color = colors[i % 10]
        if pd.isna(row.val_accuracy):
            continue
        low = row.val_accuracy - row.val_accuracy_low if not pd.isna(row.val_accuracy_low) else 0
        high = row.val_accuracy_high - row.val_accuracy if not pd.isna(row.val_accuracy_low) \
            else 0
        is_base = row.setting == BASE
        rightmost = row.n_params == table["n_params"].max() and len(table) > 1
        ax.errorbar([row.n_params], [row.val_accuracy], yerr=[[low], [high]], fmt="*" if is_base
                    else "o", markersize=14 if is_base else 7, color=color, capsize=4)
        ax.annotate(f"base ({base_name})" if is_base else row.value,
                    (row.n_params, row.val_accuracy), textcoords="offset points",
                    xytext=(-8 if rightmost else 8, 10 if is_base else -16), fontsize=9,
                    ha="right" if rightmost else "left",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none",
                          "alpha": 0.8})
        curves = mean_curves(trials, row.setting)
        for metric, axis in (("loss", loss_ax), ("accuracy", acc_ax)):
            for prefix, style in (("", "-"), ("val_", "--")):
                values = curves.get(prefix + metric)
                if values:
                    axis.plot(range(1, len(values) + 1), values, style, marker="o",
                              markersize=4, color=color,
                              label=(("base" if is_base else row.value)
                                     if prefix == "" and axis is acc_ax else None))
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ax.set_xscale("log")
    # Ticks at the settings' own sizes (a log axis over a narrow range labels every minor tick).
    sizes = sorted(set(table["n_params"].tolist()))
    ax.xaxis.set_major_locator(FixedLocator(sizes))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:,.0f}k"))
    ax.set_xlabel("parameters (log scale)")
    ax.set_ylabel("validation accuracy")
    ax.margins(x=0.2)
    ax.set_title(f"{knob}: mean over seeds, 95% interval")
    ax.grid(True, alpha=0.3)
    for axis, metric in ((loss_ax, "loss"), (acc_ax, "accuracy")):
        axis.set_xlabel("epoch")
        axis.set_ylabel(f"{metric} (mean over seeds)")
        axis.set_title(f"{metric} per epoch")
        axis.grid(True, alpha=0.3)
        axis.xaxis.get_major_locator().set_params(integer=True)
    loss_ax.plot([], [], "-", color="black", label="training")
    loss_ax.plot([], [], "--", color="black", label="validation")
    loss_ax.legend(fontsize=8, loc="upper right")
    acc_ax.legend(fontsize=8, loc="lower right", title=knob, title_fontsize=8)
    fig.tight_layout()
    return fig


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


# -- the page ---------------------------------------------------------------------------------

_STYLE = """body{font-family:system-ui,sans-serif;max-width:1250px;margin:2em auto;color:#222}
table{border-collapse:collapse;font-size:13px;margin:0.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}img{max-width:100%}
.note{color:#555;font-size:14px}.answer{font-size:17px}"""


def _html_table(table: pd.DataFrame) -> str:
    shown = pd.DataFrame({
        "setting": table["value"],
        "parameters": table["n_params"].map("{:,}".format),
        "MACs": table["macs"].map("{:,}".format),
        "final feature map": table["final_feature_map"],
        "receptive field": table["receptive_field"],
        "seeds": table["seeds"],
        "val accuracy [95%]": [_ci(r.val_accuracy, r.val_accuracy_low, r.val_accuracy_high)
                               for r in table.itertuples()],
        "vs base [95%]": ["-" if r.setting == BASE else _signed(
            r.diff_val_accuracy, r.diff_val_accuracy_low, r.diff_val_accuracy_high)
            for r in table.itertuples()],
        "val loss": [_ci(r.val_loss, r.val_loss_low, r.val_loss_high)
                     for r in table.itertuples()],
        "train accuracy": [_ci(r.accuracy, r.accuracy_low, r.accuracy_high)
                           for r in table.itertuples()],
        "train loss": [_ci(r.loss, r.loss_low, r.loss_high) for r in table.itertuples()],
    })
    return shown.to_html(index=False, escape=True)


def design_report(frame: pd.DataFrame, design: Design, title: str, facts: str,
                  answer: Sequence[str] = ()) -> str:
    """The HTML page of a designed experiment from its ``trials_frame``: its one-line answer
    (``design_answer``), then ``answer`` (``answer_parts``), then knob by knob."""
    trials = design_trials(frame, design)
    tables = {knob: knob_table(trials, design, knob) for knob in knobs(design)}
    parts = [f"<h1>{html.escape(title)}</h1>", _answer_line(design_answer(tables, design)),
             f"<p class=note>{facts}</p>", *answer,
             "<p class=note>Each setting changes one knob of the base network on every conv "
             "layer and is trained with the same seeds as the base. Left: parameters against "
             "validation accuracy (mean over seeds, bars: 95% Student-t interval, clipped to "
             "[0, 1]); the star is the base. Middle and right: training (solid) and validation "
             "(dashed) curves, mean over seeds: a validation curve that flattens or rises while "
             "training keeps improving is overfitting. Table: 'vs base' is the setting's "
             "validation accuracy minus the base's, seed by seed, with its 95% interval: an "
             "interval that holds 0 is no measured difference. Why the parameters move: most of "
             "them sit in the Dense layer after Flatten, whose size is the final feature map's "
             "(height x width x channels), so strides, padding and kernel size change the count "
             "mostly through that map (<code>cnnlab shapes</code> shows it layer by layer). MACs: "
             "multiply-adds per image. The training accuracy of an epoch is averaged while the "
             "network learns, so it can sit below the validation accuracy, measured at the "
             "epoch's end.</p>"]
    for knob, table in tables.items():
        fig = knob_figure(trials, table, knob, design.base_name)
        parts += [f"<h2>{html.escape(knob)}</h2>",
                  f"<img alt='{html.escape(knob)}' src='data:image/png;base64,{_png(fig)}'>",
                  _html_table(table)]
    return _page(title, parts)


def search_report(frame: pd.DataFrame, title: str, facts: str, answer: Sequence[str] = (),
                  confirmed: dict[str, Any] | None = None,
                  evaluation: dict[str, Any] | None = None) -> str:
    """The HTML page of a search: its one-line answer (``search_answer`` of ``confirmed`` and
    ``evaluation``, the study's records), ``answer`` (``answer_parts``: the confirmed ranking,
    the test evaluation), then leaderboard, front, the leaders' curves, knob effects."""
    board = compare.leaderboard(frame, states=["COMPLETE"], top=10)
    parts = [f"<h1>{html.escape(title)}</h1>",
             _answer_line(search_answer(board, confirmed, evaluation)),
             f"<p class=note>{facts}</p>", *answer]
    columns = [c for c in ("trial", "value", "n_params", "macs", "architecture", "epochs_run",
                           "duration_s") if c in board]
    parts += [f"<h2>Leaderboard (the {'10 best' if len(board) >= 10 else len(board)} "
              "complete trials)</h2>",
              board[columns].to_html(index=False, float_format="{:.4f}".format)]
    on_front = compare.front(frame)
    if not on_front.empty:
        parts += ["<h2>Front: no trial is both smaller and better</h2>",
                  on_front[[c for c in columns if c in on_front]].to_html(
                      index=False, float_format="{:.4f}".format)]
    if not board.empty:
        fig = leaders_figure(board)
        parts += ["<h2>The leaders' validation curves</h2>",
                  f"<img alt=curves src='data:image/png;base64,{_png(fig)}'>"]
    effects = []
    for knob in ("padding", "strides", "filters", "kernel_size", "n_conv"):
        try:
            table = compare.knob_effects(frame, knob)
        except Exception:  # A knob this study did not vary, or too few trials.
            continue
        if "median_params" in table:
            # A median of an even count may be a half: shown to the parameter.
            table["median_params"] = pd.to_numeric(table["median_params"]).round().astype(
                "Int64")
        effects += [f"<h3>{html.escape(knob)} (validation score after epoch "
                    f"{int(table['epoch'].iloc[0])}, every trial compared at it)</h3>",
                    table.to_html(float_format="{:.4f}".format)]
    if effects:
        parts += ["<h2>Knob effects (a search draws confounded networks: read with care)</h2>",
                  *effects]
    return _page(title, parts)


def leaders_figure(board: pd.DataFrame) -> Any:
    """The validation loss and accuracy per epoch of the first five rows of ``board`` (a
    ``leaderboard`` with the epoch columns), a line with a marker at each epoch: a study of one
    epoch draws one point per trial, which a line alone would not show."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 4))
    loss_ax, acc_ax = fig.subplots(1, 2)
    epochs = 1
    for i, row in enumerate(board.head(5).itertuples()):
        for metric, axis in (("val_loss", loss_ax), ("val_accuracy", acc_ax)):
            cols = compare._epoch_columns(board, metric)
            values = [getattr(row, c) for c in cols.values()]
            values = [v for v in values if not pd.isna(v)]
            axis.plot(range(1, len(values) + 1), values, "o-", markersize=5, color=f"C{i}",
                      label=f"trial {row.trial}")
            axis.set_title(metric)
            axis.set_xlabel("epoch")
            epochs = max(epochs, len(values))
    if epochs <= 20:  # A tick per epoch, as the trials' own curves (tracking.plots).
        for axis in (loss_ax, acc_ax):
            axis.set_xticks(range(1, epochs + 1))
    acc_ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def design_answer(tables: dict[str, pd.DataFrame], design: Design) -> str:
    """A design's answer in one sentence, from its ``knob_table``s: the setting with the best
    mean validation accuracy and its paired difference to the base, and whether any setting
    beats the base beyond the 95% interval of that difference (one seed: no interval, so
    nothing measured yet)."""
    rows = {row.setting: row for table in tables.values() for row in table.itertuples()}
    base = rows.get(BASE)
    others = [r for r in rows.values() if r.setting != BASE and not pd.isna(r.val_accuracy)]
    if base is None or pd.isna(base.val_accuracy) or not others:
        return "no setting has been trained beside the base yet."
    best = max(others, key=lambda r: r.val_accuracy)
    name = f"{best.setting} ({best.n_params:,} parameters)"
    base_name = (f"the base ({design.base_name}, "
                 f"{_ci(base.val_accuracy, base.val_accuracy_low, base.val_accuracy_high)})")
    diff = _signed(best.diff_val_accuracy, best.diff_val_accuracy_low,
                   best.diff_val_accuracy_high)
    if pd.isna(best.diff_val_accuracy_low):
        return (f"{name} has the best mean validation accuracy, {best.val_accuracy:.4f}, "
                f"{diff} against {base_name}; with one seed there is no interval, so no "
                "difference is measured yet.")
    better = [r for r in others if r.diff_val_accuracy_low > 0]
    worse = [r for r in others if r.diff_val_accuracy_high < 0]
    if best.diff_val_accuracy_low > 0:
        return (f"{name} has the best mean validation accuracy, "
                f"{_ci(best.val_accuracy, best.val_accuracy_low, best.val_accuracy_high)}, "
                f"{diff} over {base_name} seed by seed: a measured gain; "
                f"{len(better)} of {count(len(others), 'setting')} beat the base beyond the "
                f"95% interval, {len(worse)} fall below it.")
    return (f"no setting beats {base_name} beyond the 95% interval of its paired difference; "
            f"the best, {name}, is {diff} seed by seed, and {len(worse)} of "
            f"{count(len(others), 'setting')} fall below it.")


def search_answer(board: pd.DataFrame, confirmed: dict[str, Any] | None,
                  evaluation: dict[str, Any] | None) -> str:
    """A search's answer in one sentence: the best trial over further seeds where ``cnnlab
    confirm`` ran (``confirmed``, its record), with the test accuracy where ``cnnlab evaluate``
    ran (``evaluation``); before that, the best complete trial of ``board`` (a
    ``leaderboard``), from one training run and said to be unconfirmed."""
    from cnnlab.results.confirm import BASELINE, paired_difference
    from cnnlab.spec.ranking import summarize

    tested = ""
    if evaluation:
        tested = (f"; trial {evaluation.get('trial')}'s test accuracy, measured once, is "
                  f"{float(evaluation['test_accuracy']):.4f}")
    entries = (confirmed or {}).get("entries", {})
    ranked = sorted(((summarize(key, e["values"]), key, e) for key, e in entries.items()
                     if key != BASELINE and len(e["values"]) >= 2), key=lambda r: -r[0].mean)
    if ranked:
        s, key, entry = ranked[0]
        size = f" ({int(entry['n_params']):,} parameters)" if entry.get("n_params") else ""
        line = (f"trial {key}{size} is best over {count(s.n, 'further seed')}, mean validation "
                f"score {_ci(s.mean, s.ci_low, s.ci_high)}")
        base = entries.get(BASELINE)
        d = paired_difference(entry, base) if base else None
        if d is not None:
            line += f", {_signed(d.mean, d.ci_low, d.ci_high)} over the notebook CNN seed by seed"
        return line + tested + "."
    if board.empty:
        return "no trial has completed yet" + tested + "."
    row = board.iloc[0]
    size = "" if pd.isna(row.get("n_params")) else f" ({int(row['n_params']):,} parameters)"
    metric = row.get("metric") if isinstance(row.get("metric"), str) else "value"
    return (f"so far trial {row['trial']}{size} scores best, {metric} {row['value']:.4f}, from "
            f"one training run: not yet confirmed over further seeds (cnnlab confirm does)"
            + tested + ".")


def _answer_line(text: str) -> str:
    return f"<p class=answer><b>Answer:</b> {html.escape(text)}</p>"


def answer_parts(confirmed: dict[str, Any] | None, evaluation: dict[str, Any] | None) -> list[str]:
    """The study's answer as HTML, first on its page: the confirmed ranking (``cnnlab
    confirm``'s record: each trial's mean over its seeds with the 95% Student-t interval, and,
    with the notebook CNN as baseline, the difference to it seed by seed) and the one test
    evaluation (``cnnlab evaluate``'s record). Empty when the study has neither."""
    from cnnlab.results.confirm import BASELINE, paired_difference
    from cnnlab.spec.ranking import summarize

    parts: list[str] = []
    entries = (confirmed or {}).get("entries", {})
    base = entries.get(BASELINE)
    rows = []
    for key, entry in entries.items():
        if len(entry["values"]) < 2:
            continue
        s = summarize(key, entry["values"])
        row = {"trial": "notebook CNN" if key == BASELINE else key,
               "n_params": entry.get("n_params"), "seeds": s.n,
               "mean": _ci(s.mean, s.ci_low, s.ci_high)}
        d = paired_difference(entry, base) if base and key != BASELINE else None
        if d is not None:
            row["minus the notebook CNN (paired)"] = _signed(d.mean, d.ci_low, d.ci_high)
        row["architecture"] = entry.get("architecture")
        rows.append((key == BASELINE, -s.mean, row))
    if rows:
        table = pd.DataFrame([row for *_, row in sorted(rows, key=lambda r: r[:2])])
        table["n_params"] = table["n_params"].map(lambda n: "" if pd.isna(n) else f"{int(n):,}")
        parts += [f"<h2>Confirmed over {int(confirmed.get('n_seeds') or 0)} further seeds "
                  "(mean validation score, 95% interval)</h2>",
                  table.fillna("").to_html(index=False, escape=True)]
    if evaluation:
        parts += ["<h2>The test set, once</h2>",
                  f"<p>trial {html.escape(str(evaluation.get('trial')))}: test accuracy "
                  f"<b>{float(evaluation['test_accuracy']):.4f}</b>, test loss "
                  f"{float(evaluation['test_loss']):.4f} "
                  f"({html.escape(str(evaluation.get('model_uri')))}, "
                  f"{html.escape(str(evaluation.get('evaluated_at')))})</p>"]
    return parts


def _page(title: str, parts: list[str]) -> str:
    return ("<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>"
            + "\n".join(parts) + "</body></html>\n")


def build_report(study_name: str, *, storage: str | None = None,
                 tracking_uri: str | None = None) -> tuple[str, dict[str, pd.DataFrame]]:
    """The study's report page and, for a design, its per-knob tables (else empty)."""
    from cnnlab.results.confirm import study_config
    from cnnlab.tracking.stores import load_existing_study

    study = load_existing_study(study_name, storage)
    config = study_config(study)
    answer = answer_parts(study.user_attrs.get(names.CONFIRMED_ATTR),
                          study.user_attrs.get(names.EVALUATION_ATTR))
    frame = compare.trials_frame(study_name, storage=storage, tracking_uri=tracking_uri,
                                 epoch_curves=compare.CURVES)
    t = config.training
    sizes = (f"{config.train_size or 50_000:,} training images, "
             f"{config.val_size or 10_000:,} validation images")
    if config.design is not None:
        d = config.design
        facts = (f"Designed experiment around the {html.escape(d.base_name)} "
                 f"({html.escape(d.base.describe())}): {count(len(d.settings()), 'setting')} x "
                 f"{count(d.seeds, 'seed')}, {count(t.epochs, 'epoch')} each on {sizes}, batch "
                 f"{t.batch_size}, "
                 f"{t.optimizer}. {html.escape(config.description)}{_gone(frame)}")
        return (design_report(frame, d, f"cnnlab report: {study_name}", facts, answer),
                design_tables(frame, d))
    if config.fidelity is not None:
        facts = (f"Search: {count(len(frame), 'trial')}, trained through fidelity rungs "
                 f"({html.escape(config.fidelity.describe(config.train_size or 50_000))}), "
                 f"validated on {config.val_size or 10_000:,} images. "
                 f"{html.escape(rung_counts(frame, len(config.fidelity.rungs)))} "
                 f"{html.escape(config.description)}{_gone(frame)}")
    else:
        facts = (f"Search: {count(len(frame), 'trial')}, {count(t.epochs, 'epoch')} each on "
                 f"{sizes}. {html.escape(config.description)}{_gone(frame)}")
    return search_report(frame, f"cnnlab report: {study_name}", facts, answer,
                         study.user_attrs.get(names.CONFIRMED_ATTR),
                         study.user_attrs.get(names.EVALUATION_ATTR)), {}


def rung_counts(frame: pd.DataFrame, last: int) -> str:
    """How far a study's trained trials got through its ``last`` rungs, in a sentence: ``4
    reached the full fidelity (rung 3 of 3; the leaderboard ranks only these), 2 stopped at
    rung 2, 9 stopped at rung 1.``"""
    if "rung" not in frame or frame["rung"].dropna().empty:
        return ""
    done = frame[frame["state"].astype(str) == "COMPLETE"]["rung"].dropna()
    parts = [f"{len(done)} reached the full fidelity (rung {last} of {last}; the leaderboard "
             "ranks only these)"]
    stopped = frame[frame["state"].astype(str) == "PRUNED"]["rung"].dropna().astype(int)
    for rung in sorted(set(stopped), reverse=True):
        parts.append(f"{int((stopped == rung).sum())} stopped at rung {rung}")
    rest = len(frame) - len(done) - len(stopped)
    if rest:
        parts.append(f"{rest} not trained through the rungs (reused, infeasible, failed or "
                     "interrupted)")
    return ", ".join(parts) + "."


def _gone(frame: pd.DataFrame) -> str:
    """The trials whose MLflow runs are gone (``compare.gone_notes``), for the page's facts:
    their curves and MLflow columns are empty."""
    return "".join(f" Note: {html.escape(note[note.index(': ') + 2:])}"
                   for note in compare.gone_notes(frame))


def write_report(study_name: str, out: Path, *, storage: str | None = None,
                 tracking_uri: str | None = None, log_to: str | None = None
                 ) -> dict[str, pd.DataFrame]:
    """Write the study's report to ``out`` and, with ``log_to`` (an MLflow run id: the study's
    run), log it there as ``report.html``. Returns the design's per-knob tables (else empty)."""
    page, tables = build_report(study_name, storage=storage, tracking_uri=tracking_uri)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    if log_to is not None:
        from cnnlab.tracking.runs import log_text

        log_text(log_to, page, REPORT_ARTIFACT)
    return tables


def default_path(study_name: str, tracking_uri: str | None = None) -> Path:
    """Where a study's report goes unless told: ``reports/<study>.html`` beside a local MLflow
    store (``mlruns/reports/`` for the default ``sqlite:///mlruns/mlflow.db``), else under
    ``mlruns/reports/`` here."""
    import re

    folder = Path("mlruns")
    if tracking_uri and tracking_uri.startswith("sqlite:///"):
        folder = Path(tracking_uri[len("sqlite:///"):]).parent
    return folder / "reports" / (re.sub(r"[^\w.-]+", "_", study_name) + ".html")


def report_study(study_name: str, stores: Any, *, path: Path | None = None,
                 out: Any = print) -> Path:
    """Write the study's report (``path``, else ``default_path``), log it on the study's MLflow
    run as ``report.html`` when the study has one, print a design's per-knob tables and say
    where the report is. Raises ``ConfigError`` for a study that is not in the storage."""
    from cnnlab.names import PARENT_RUN_ATTR
    from cnnlab.tracking.runs import GONE
    from cnnlab.tracking.stores import load_existing_study

    study = load_existing_study(study_name, stores.storage)
    run_id = study.user_attrs.get(PARENT_RUN_ATTR)
    path = path or default_path(study_name, stores.tracking_uri)
    gone = _study_run_gone(run_id, stores.tracking_uri)
    tables = write_report(study_name, path, storage=stores.storage,
                          tracking_uri=stores.tracking_uri, log_to=None if gone else run_id)
    for line in format_tables(tables):
        out(line)
    where = f" and on the study's MLflow run {run_id} ({REPORT_ARTIFACT})" if run_id else ""
    if gone:
        where = (f" (not on the study's MLflow run {run_id}: it is {GONE[gone]}; the next "
                 "cnnlab study run of the study makes a new one)")
    out(f"report: {path.absolute()}{where}")  # Absolute: the line is read in any folder.
    return path


def _study_run_gone(run_id: str | None, tracking_uri: str | None) -> str | None:
    """How the study's MLflow run went (a key of ``GONE``), or None when it is there (or the
    study has none)."""
    if run_id is None:
        return None
    from mlflow.tracking import MlflowClient

    from cnnlab.tracking.runs import find_runs, use_tracking_store

    _, gone = find_runs(MlflowClient(use_tracking_store(tracking_uri, create=False)), [run_id])
    return gone.get(run_id)


def design_of(study_name: str, storage: str | None = None) -> Design | None:
    """The study's designed experiment (from its identity in Optuna), or None for a search."""
    from cnnlab.results.confirm import study_config
    from cnnlab.tracking.stores import load_existing_study

    return study_config(load_existing_study(study_name, storage)).design


def design_figures(frame: pd.DataFrame, design: Design) -> dict[str, Any]:
    """``knob_figure`` for every knob of the design, by knob."""
    trials = design_trials(frame, design)
    return {knob: knob_figure(trials, knob_table(trials, design, knob), knob, design.base_name)
            for knob in knobs(design)}
