"""A second ``cnnlab confirm`` on one study ranks every confirmed trial, its own and the earlier
command's (they share the seeds), as ``compare``, ``report`` and ``evaluate`` do: the record's
ranking, the study run's ``cnnlab.confirmed_best`` tag and what it prints agree with them."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnlab import cli
from cnnlab.names import CONFIRMED_ATTR, CONFIRMED_BEST_TAG
from cnnlab.results.confirm import candidates, ranking_of, study_config
from tests.studies import TINY_ONE, Stores

STUDY = TINY_ONE.replace("n_trials = 1", "n_trials = 2")


def _confirm(stores: Stores, top: int) -> int:
    return cli.main(["confirm", "tiny", "--top", str(top), "--seeds", "2",
                     "--storage", stores.storage, "--tracking-uri", stores.tracking])


@pytest.mark.slow
def test_a_second_confirmation_ranks_the_earlier_ones_too(tmp_path: Path, capsys) -> None:
    stores = Stores(tmp_path, STUDY)
    assert stores.run() == 0
    assert _confirm(stores, 2) == 0
    first = stores.study("tiny").user_attrs[CONFIRMED_ATTR]
    assert len(first["ranking"]) == 2
    capsys.readouterr()

    assert _confirm(stores, 1) == 0  # Its one trial has its seeds: nothing is trained.
    printed = capsys.readouterr().out
    record = stores.study("tiny").user_attrs[CONFIRMED_ATTR]
    assert record["entries"] == first["entries"]
    ranking = ranking_of(record)
    assert ranking is not None
    assert record["ranking"] == [s.key for s in ranking.entries] and len(record["ranking"]) == 2
    parent, _ = stores.runs("tiny")
    assert parent.data.tags[CONFIRMED_BEST_TAG] == str(ranking.best.key)
    # The trial this command confirmed is printed plain; the other, confirmed before, marked.
    study = stores.study("tiny")
    (now,) = candidates(study, study_config(study), top=1, front=False)
    for position, summary in enumerate(ranking.entries, start=1):
        mark = " " if summary.key == now.number else "*"
        assert f" {position}. trial {summary.key:<4}{mark}" in printed
    assert "* confirmed by an earlier command" in printed
