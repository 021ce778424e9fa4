"""One definition of "best" (issue 22, kind 5): ``cnnlab compare``'s leaderboard and ``--top``,
``cnnlab evaluate``'s choice, the study's "best:" line and its MLflow run all follow
``cnnlab.spec.ranking.trial_rank_key``: complete trials by the study's direction, pruned ones after;
several studies compared each by its own direction.

Two real tiny studies (one of ``val_loss``, one of ``val_accuracy``) in one pair of stores. The
pruned trials are told to the ``val_loss`` study through Optuna's own API, as a pruner leaves them
(state PRUNED, the value of the last epoch reported, after 1 of the study's epochs), with a score
better than any complete trial's (half the lowest loss: a cross-entropy is above 0), so that a
ranking by score alone puts them first: the fault of the issue, whatever the networks learned.
"""

from __future__ import annotations

import pytest

from cnnlab import cli
from cnnlab.names import BEST_TRIAL_TAG, OUTCOME_ATTR
from cnnlab.spec.ranking import best_of, trial_rank_key
from tests.studies import TINY, Stores


def _study(name: str, metric: str) -> str:
    return (TINY.replace('name = "tiny"', f'name = "{name}"\nmetric = "{metric}"')
            .replace("n_trials = 3", "n_trials = 2").replace("epochs = 2", "epochs = 1"))


def test_the_rule_puts_complete_trials_first_in_the_studys_direction() -> None:
    rows = [("a", "PRUNED", 0.99, 0), ("b", "COMPLETE", 0.80, 1), ("c", "COMPLETE", 0.90, 2),
            ("d", "FAIL", None, 3), ("e", "COMPLETE", 0.90, 4), ("f", "INFEASIBLE", None, 5),
            ("g", "PRUNED", float("nan"), 6)]

    def order(maximize: bool) -> list[str]:
        return [r[0] for r in sorted(rows, key=lambda r: trial_rank_key(
            r[1], r[2], r[3], maximize=maximize))]

    assert order(True) == ["c", "e", "b", "a", "g", "d", "f"]  # Equal scores: earliest first.
    assert order(False) == ["b", "c", "e", "a", "g", "d", "f"]
    assert best_of(rows, maximize=True) == "c"
    assert best_of(rows, maximize=False) == "b"
    assert best_of([r for r in rows if r[1] != "COMPLETE"], maximize=True) is None


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Stores:
    import optuna
    from optuna.trial import TrialState, create_trial

    root = tmp_path_factory.mktemp("ranking")
    stores = Stores(root, _study("by_loss", "val_loss"), name="loss.toml")
    accuracy = Stores(root, _study("by_accuracy", "val_accuracy"), name="accuracy.toml")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        assert stores.run() == 0
        assert accuracy.run() == 0
    study = optuna.load_study(study_name="by_loss", storage=stores.storage)
    better = min(t.value for t in study.trials) / 2
    for _ in range(3):
        study.add_trial(create_trial(state=TrialState.PRUNED, value=better,
                                     intermediate_values={1: better},
                                     user_attrs={OUTCOME_ATTR: "trained"}))
    return stores


@pytest.mark.slow
def test_leaderboard_top_evaluate_and_the_best_line_name_the_same_complete_trial(
        two: Stores, capsys, monkeypatch) -> None:
    from cnnlab.results.compare import leaderboard, trials_frame
    from cnnlab.results.evaluate import choose_trial

    study = two.study("by_loss")
    complete = sorted((t for t in study.trials if t.state.name == "COMPLETE"),
                      key=lambda t: (t.value, t.number))
    pruned = [t.number for t in study.trials if t.state.name == "PRUNED"]
    assert len(complete) == 2 and len(pruned) == 3
    assert all(study.trials[n].value < complete[0].value for n in pruned)  # The trap is set.
    best = complete[0].number

    board = leaderboard(trials_frame("by_loss", storage=two.storage, tracking_uri=two.tracking))
    assert board["trial"].tolist() == [t.number for t in complete] + pruned
    assert choose_trial(study).number == best

    capsys.readouterr()
    assert cli.main(["compare", "by_loss", "--top", "1", "--columns", "trial,state",
                     "--storage", two.storage, "--tracking-uri", two.tracking]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == [str(best), "COMPLETE"] and len(lines) == 2

    monkeypatch.chdir(two.root)  # A second run of the finished study: its summary again.
    assert two.run() == 0
    out = capsys.readouterr().out
    assert f"best: trial {best}, val_loss " in out
    parent, _ = two.runs("by_loss")
    assert two.client.get_run(parent.info.run_id).data.tags[BEST_TRIAL_TAG] == str(best)


@pytest.mark.slow
def test_several_studies_are_each_ranked_by_their_own_direction(two: Stores) -> None:
    from cnnlab.results.compare import leaderboard, trials_frame

    frame = trials_frame(["by_loss", "by_accuracy"], storage=two.storage,
                         tracking_uri=two.tracking)
    board = leaderboard(frame)
    for name, lower_first in (("by_loss", True), ("by_accuracy", False)):
        rows = board[board["study"] == name]
        values = rows[rows["state"] == "COMPLETE"]["value"].tolist()
        assert len(values) == 2
        assert values == sorted(values, reverse=not lower_first), name
        states = rows["state"].tolist()
        assert states == sorted(states, key=lambda s: s != "COMPLETE"), name
    assert board["study"].tolist() == ["by_loss"] * 5 + ["by_accuracy"] * 2
    top = leaderboard(frame, top=1)  # The best of each.
    assert top["study"].tolist() == ["by_loss", "by_accuracy"]
    assert top["state"].tolist() == ["COMPLETE", "COMPLETE"]
