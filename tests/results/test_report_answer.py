"""The report's answer section: cnnlab confirm's record and cnnlab evaluate's, as the page shows
them (pure: records made by hand in the shapes the two commands store)."""

from __future__ import annotations

from cnnlab.results.report import answer_parts

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
