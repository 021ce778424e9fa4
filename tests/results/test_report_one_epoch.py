"""The report of a real one-epoch search, as `cnnlab study run` logs it and `cnnlab report`
writes it: its one-line answer first, its curves drawn."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from cnnlab import cli
from tests.studies import TINY, Stores


@pytest.mark.slow  # Runs a study (two trials of one epoch on 512 images).
def test_a_one_epoch_search_report_answers_first_and_draws_its_curves(tmp_path: Path,
                                                                      monkeypatch,
                                                                      capsys) -> None:
    from cnnlab.results.compare import CURVES, leaderboard, trials_frame

    stores = Stores(tmp_path, TINY.replace("epochs = 2", "epochs = 1").replace(
        "n_trials = 3", "n_trials = 2"))
    monkeypatch.chdir(tmp_path)
    assert stores.run() == 0
    parent, _ = stores.runs("tiny")
    best = stores.study("tiny").best_trial
    out = tmp_path / "again.html"
    assert cli.main(["report", "tiny", "--storage", stores.storage, "--tracking-uri",
                     stores.tracking, "--out", str(out)]) == 0
    logged = Path(stores.client.download_artifacts(parent.info.run_id, "report.html",
                                                   str(tmp_path / "logged"))).read_text()
    for page in (out.read_text(), logged):
        body = page.split("<body>", 1)[1]
        # The title, then the answer, before anything else on the page.
        first = re.findall(r"<(h1|p|h2|table|img)\b", body)[:2]
        assert first == ["h1", "p"], first
        answer = re.search(r"<p class=answer><b>Answer:</b> (.*?)</p>", body).group(1)
        assert body.index("<p class=answer>") < body.index("<p class=note>")
        assert answer.startswith(f"so far trial {best.number} (")
        assert f"val_accuracy {best.value:.4f}, from one training run: not yet confirmed" \
            in answer
    # One epoch: one point per trial, drawn as a marker.
    from cnnlab.results.report import leaders_figure

    board = leaderboard(trials_frame("tiny", storage=stores.storage,
                                     tracking_uri=stores.tracking, epoch_curves=CURVES),
                        states=["COMPLETE"], top=10)
    lines = [line for ax in leaders_figure(board).axes for line in ax.get_lines()]
    assert len(lines) == 2 * len(board) == 4
    for line in lines:
        assert list(line.get_xdata()) == [1] and line.get_marker() not in ("None", "", None)
