"""The report's answer section: cnnlab confirm's record and cnnlab evaluate's, as the page shows
them (pure: records made by hand in the shapes the two commands store)."""

from __future__ import annotations

import pandas as pd

from cnnlab.results.report import answer_parts, design_answer, leaders_figure, search_answer
from cnnlab.search.design import Design

SEEDS = [7, 8, 9]


def _entry(values, seeds=SEEDS, n_params=1234, architecture="8k3s1same-gap"):
    return {"values": values, "seeds": seeds, "n_params": n_params,
            "architecture": architecture}


def test_confirmed_trials_come_best_first_with_the_paired_difference_to_the_notebook_cnn():
    record = {"n_seeds": 3, "entries": {
        "2": _entry([0.90, 0.80, 0.70]),
        "5": _entry([0.95, 0.85, 0.75], n_params=20_000),
        # The baseline's seeds in another order: the pairing follows the seeds.
        "notebook": _entry([0.70, 0.90, 0.80], seeds=[9, 7, 8], n_params=361_322),
    }}
    page = "".join(answer_parts(record, None))
    assert "Confirmed over 3 further seeds" in page
    assert page.index("<td>5</td>") < page.index("<td>2</td>") < page.index("<td>notebook CNN</td>")
    # Trial 5 minus the notebook CNN, seed by seed: +0.05 each time, an interval of width 0.
    assert "+0.0500 [+0.0500, +0.0500]" in page and "20,000" in page and "361,322" in page
    assert "The test set" not in page


def test_the_test_evaluation_and_no_difference_without_a_baseline():
    record = {"n_seeds": 2, "entries": {"1": _entry([0.9, 0.92], seeds=[1, 2]),
                                        "3": _entry([0.8], seeds=[1])}}
    evaluation = {"trial": 1, "test_accuracy": 0.98765, "test_loss": 0.04321,
                  "model_uri": "models:/m-1", "evaluated_at": "2026-12-02T00:00:00+00:00"}
    page = "".join(answer_parts(record, evaluation))
    assert "notebook CNN" not in page and "minus" not in page
    assert "<td>3</td>" not in page  # One seed: no interval, not ranked (as cnnlab confirm).
    assert "trial 1: test accuracy <b>0.9877</b>, test loss 0.0432" in page


def test_nothing_without_a_confirmation_or_an_evaluation():
    assert answer_parts(None, None) == []


# -- the one-line answer ------------------------------------------------------------------------

def _board(**row):
    return pd.DataFrame([{"trial": 4, "metric": "val_accuracy", "value": 0.91234,
                          "n_params": 12_345, **row}])


def test_a_search_before_confirmation_answers_with_its_best_trial_unconfirmed():
    line = search_answer(_board(), None, None)
    assert line == ("so far trial 4 (12,345 parameters) scores best, val_accuracy 0.9123, from "
                    "one training run: not yet confirmed over further seeds (cnnlab confirm "
                    "does).")
    assert search_answer(_board().iloc[:0], None, None) == "no trial has completed yet."


def test_a_confirmed_search_answers_with_its_best_mean_over_seeds_and_the_test():
    record = {"n_seeds": 3, "entries": {
        "2": _entry([0.90, 0.80, 0.70]),
        "5": _entry([0.95, 0.85, 0.75], n_params=20_000),
        "notebook": _entry([0.99, 0.99, 0.99], seeds=[9, 7, 8], n_params=361_322)}}
    evaluation = {"trial": 5, "test_accuracy": 0.98765, "test_loss": 0.1}
    line = search_answer(_board(), record, evaluation)
    # The notebook CNN is the baseline, not a candidate, however well it scored.
    assert line.startswith("trial 5 (20,000 parameters) is best over 3 further seeds, mean "
                           "validation score 0.8500 [")
    assert "over the notebook CNN seed by seed" in line
    assert line.endswith("; trial 5's test accuracy, measured once, is 0.9877.")


def _knob_table(rows):
    columns = ["setting", "n_params", "val_accuracy", "val_accuracy_low", "val_accuracy_high",
               "diff_val_accuracy", "diff_val_accuracy_low", "diff_val_accuracy_high"]
    return pd.DataFrame([dict(zip(columns, row, strict=True)) for row in rows])


BASE_ROW = ("base", 361_322, 0.98, 0.97, 0.99, 0.0, 0.0, 0.0)


def test_a_design_answers_whether_a_setting_beats_the_base():
    gain = {"filters": _knob_table([BASE_ROW, ("filters x2", 700_000, 0.99, 0.985, 0.995,
                                               0.01, 0.005, 0.015)]),
            "padding": _knob_table([BASE_ROW, ("padding valid", 200_000, 0.97, 0.96, 0.98,
                                               -0.01, -0.02, -0.001)])}
    assert design_answer(gain, Design()) == (
        "filters x2 (700,000 parameters) has the best mean validation accuracy, 0.9900 "
        "[0.9850, 0.9950], +0.0100 [+0.0050, +0.0150] over the base (notebook CNN, 0.9800 "
        "[0.9700, 0.9900]) seed by seed: a measured gain; 1 of 2 settings beat the base beyond "
        "the 95% interval, 1 fall below it.")
    none = {"filters": _knob_table([BASE_ROW, ("filters x2", 700_000, 0.981, 0.97, 0.99,
                                               0.001, -0.004, 0.006)])}
    assert design_answer(none, Design()).startswith(
        "no setting beats the base (notebook CNN, 0.9800 [0.9700, 0.9900]) beyond the 95% "
        "interval of its paired difference; the best, filters x2 (700,000 parameters), is "
        "+0.0010 [-0.0040, +0.0060]")
    nan = float("nan")
    one_seed = {"filters": _knob_table([("base", 361_322, 0.98, nan, nan, 0.0, nan, nan),
                                        ("filters x2", 700_000, 0.99, nan, nan, 0.01, nan,
                                         nan)])}
    assert design_answer(one_seed, Design()).endswith(
        "with one seed there is no interval, so no difference is measured yet.")


def test_the_leaders_curves_of_a_one_epoch_study_draw_a_marker_per_epoch():
    """A study of one epoch has one point per trial: the curves are drawn with markers, so the
    figure shows them (a line alone draws nothing through one point)."""
    board = pd.DataFrame([{"trial": n, "val_accuracy_epoch1": 0.5 + n / 10,
                           "val_loss_epoch1": 1.0 - n / 10} for n in range(3)])
    fig = leaders_figure(board)
    lines = [line for ax in fig.axes for line in ax.get_lines()]
    assert len(lines) == 6  # Three trials, two panels.
    for line in lines:
        assert list(line.get_xdata()) == [1]
        assert line.get_marker() not in ("None", "", " ", None)
        assert line.get_markersize() > 0
