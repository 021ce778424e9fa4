"""``cnnlab confirm``: re-train a study's leading trials with further seeds, and rank them by
their mean validation score with its confidence interval.

On 10,000 validation images one image is 0.01%, and two seeds of one architecture differ by
more than many gaps between a study's trials: a ranking by one run each is partly a ranking of
seeds. Confirmation re-trains the top ``k`` trials (or the trials on the front of score against
size) with ``S`` further seeds, the same seeds for every trial (and, with ``baseline``, for the
notebook's CNN trained the same way), each seed a run nested under the study's MLflow run.

The ranking uses the new seeds only: the trials were chosen *because* their first run scored
well, so that run is biased upwards (the winner's curse) and is left out of the mean. Trials
whose intervals overlap the best one's are reported as tied. The record is kept on the Optuna
study (``cnnlab_confirmed``), so that an interrupted confirmation resumes where it stopped and
``cnnlab evaluate`` chooses from the confirmed ranking; the study's run gets ``confirm.json``
and each confirmed trial's run its mean, deviation and interval.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cnnlab.errors import ConfigError
from cnnlab.names import (
    COMMAND_TAG,
    CONFIG_ATTR,
    CONFIG_KEY_ATTR,
    CONFIRMED_ATTR,
    CONFIRMS_TAG,
    DATA_ATTR,
    EVALUATION_ATTR,
    KIND_CONFIRM,
    KIND_TAG,
    MACS_ATTR,
    N_PARAMS_ATTR,
    PARENT_RUN_ATTR,
    PARENT_RUN_TAG,
    SEED_TAG,
    SPEC_ATTR,
    STATE_TAG,
    STUDY_TAG,
    STUDY_UID_TAG,
    UID_ATTR,
)
from cnnlab.search import trials as T
from cnnlab.spec import words
from cnnlab.spec.ranking import Ranking, Summary, rank, summarize
from cnnlab.tracking import runs as tracking
from cnnlab.tracking.stores import Stores
from cnnlab.tracking.study_run import record_confirmation

BASELINE = "notebook"
"""The key of the notebook's CNN among the confirmed entries."""
MAX_SEEDS = 100


def confirm_seeds(study_seed: int, count: int) -> list[int]:
    """The seeds of a confirmation: the same for every trial of the study, and the first
    ``count`` of one sequence (confirming with more seeds later adds seeds, keeps these)."""
    import numpy as np

    return [int(np.random.SeedSequence([study_seed, 0xC0F1, j]).generate_state(1)[0] % 2**31)
            for j in range(count)]


def study_config(study: Any) -> Any:
    """The study's configuration, from its identity kept in Optuna (the file's contents but the
    budget and the words)."""
    from cnnlab.search.config import parse_study

    identity = study.user_attrs.get(CONFIG_ATTR)
    if not identity:
        raise ConfigError(f"study '{study.study_name}' was not run by cnnlab (it has no "
                          "configuration); there is nothing to re-train.")
    return parse_study({**identity, "n_trials": 1}, where=f"study '{study.study_name}'")


def trial_spec(config: Any, trial: Any) -> Any:
    """The trial's ``TrialSpec`` as the objective stored it with the trial. A trial recorded by
    a cnnlab that did not store it is drawn again from the study's space with its values,
    checked against the configuration key it was trained with."""
    import optuna

    from cnnlab.spec.trialspec import TrialSpec

    stored = trial.user_attrs.get(SPEC_ATTR)
    if stored is not None:
        return TrialSpec.from_dict(stored, where=f"trial {trial.number}'s spec")
    spec = config.space.suggest(optuna.trial.FixedTrial(trial.params), config.training)
    key = trial.user_attrs.get(CONFIG_KEY_ATTR)
    if key is not None and spec.key() != key:
        raise ConfigError(f"trial {trial.number} of study '{config.name}' cannot be rebuilt "
                          "from its parameters (its configuration key differs); it was trained "
                          "by an older cnnlab.")
    return spec


def baseline_spec(config: Any, training: str) -> Any:
    """The notebook's CNN as the baseline of a confirmation: trained as the notebook trains it
    (``training="notebook"``: rmsprop, batch 256, 10 epochs) or with the study's ``[training]``
    (``"study"``)."""
    from cnnlab.spec.architecture import NOTEBOOK_CNN
    from cnnlab.spec.trialspec import TrainConfig, TrialSpec

    return TrialSpec(NOTEBOOK_CNN, TrainConfig() if training == "notebook" else config.training)


def candidates(study: Any, config: Any, *, top: int | None, front: bool,
               at_least: float | None = None, smallest: int | None = None) -> list[Any]:
    """The trials to confirm: those on the front of score against size (with ``top``, the
    ``top`` best of them by score; with ``at_least``, those that scored at least that; with
    ``smallest``, the ``smallest`` smallest of those: the candidates for "the smallest network
    as good as X"), or the ``top`` by score; one trial per configuration."""
    if front:
        chosen = T.front(study, config.size_attr)
        if at_least is not None:
            chosen = [t for t in chosen if T.maximizes(study) and t.values[0] >= at_least
                      or not T.maximizes(study) and t.values[0] <= at_least]
        if smallest is not None:
            chosen = sorted(chosen, key=lambda t: t.user_attrs[config.size_attr])[:smallest]
        if top is not None:
            best_first = T.ranked(chosen, maximize=T.maximizes(study))
            keep = {t.number for t in best_first[:top]}
            chosen = [t for t in chosen if t.number in keep]
    else:
        judged = T.ranked(T._judged(study), maximize=T.maximizes(study))  # The one rule.
        seen: set[str] = set()
        chosen = []
        for trial in judged:
            key = trial.user_attrs.get(CONFIG_KEY_ATTR, str(trial.number))
            if key not in seen:
                seen.add(key)
                chosen.append(trial)
        chosen = chosen[:top]
    if not chosen:
        raise ConfigError(f"study '{study.study_name}' has no complete trial to confirm.")
    return chosen


@dataclass(frozen=True)
class Confirmation:
    """What a confirmation found: the ranking of the confirmed trials, the baseline's
    summary (if it was trained) and the record kept on the study."""

    ranking: Ranking
    baseline: Summary | None
    record: dict[str, Any]


def load_record(study: Any) -> dict[str, Any] | None:
    return study.user_attrs.get(CONFIRMED_ATTR)


def ranking_of(record: dict[str, Any], *, maximize: bool = True) -> Ranking | None:
    """The ranking of the record's confirmed trials that have at least two seeds; None if
    there are none."""
    entries = record.get("entries", {})
    summaries = [summarize(int(key), entry["values"]) for key, entry in entries.items()
                 if key != BASELINE and len(entry["values"]) >= 2]
    return rank(summaries, maximize=maximize) if summaries else None


def paired_difference(entry: dict[str, Any], baseline: dict[str, Any]) -> Summary | None:
    """A confirmed entry's score minus the baseline's, seed by seed (``values`` and ``seeds`` of
    both, as the record keeps them, in any order): the ``Summary`` of the differences (mean and
    95% Student-t interval), or None when a seed of the entry is not one of the baseline's."""
    by_seed = dict(zip(baseline["seeds"], baseline["values"], strict=True))
    if not all(seed in by_seed for seed in entry["seeds"]):
        return None
    return summarize(BASELINE, [v - by_seed[seed]
                                for seed, v in zip(entry["seeds"], entry["values"], strict=True)])


def smallest_as_good(record: dict[str, Any], ranking: Ranking, size_attr: str = N_PARAMS_ATTR,
                     *, maximize: bool = True) -> tuple[int, Summary] | None:
    """The smallest confirmed trial whose mean is at least the baseline's (None without a
    baseline or without such a trial): the study's answer to "how small, as good"."""
    entries = record.get("entries", {})
    base = entries.get(BASELINE)
    if base is None or len(base["values"]) < 1:
        return None
    target = summarize(BASELINE, base["values"]).mean
    good = [s for s in ranking.entries
            if (s.mean >= target if maximize else s.mean <= target)]
    if not good:
        return None
    best = min(good, key=lambda s: (entries[str(s.key)].get(size_attr) or math.inf, s.key))
    return entries[str(best.key)].get(size_attr), best


def confirm_study(
    study_name: str,
    *,
    top: int | None = 3,
    front: bool = False,
    at_least: float | None = None,
    smallest: int | None = None,
    seeds: int = 3,
    baseline: bool = False,
    baseline_training: str = "study",
    stores: Stores | None = None,
    data_dir: str | None = None,
    data: Any = None,
    config: Any = None,
    out: Callable[[str], None] = print,
) -> Confirmation:
    """Re-train the study's top ``top`` trials (or its ``front``, or the ``top`` of its front,
    or of its front's trials that scored ``at_least``, the ``smallest`` smallest),
    and with ``baseline`` the notebook's CNN (trained with the study's training settings, or
    with ``baseline_training="notebook"`` as the notebook trains it), with ``seeds`` seeds each;
    rank them; record it all, in ``stores`` (default: ``Stores.resolve()``). Seeds already done
    (an interrupted confirmation, or an earlier one with fewer seeds) are not trained again."""
    from cnnlab.tracking.stores import load_existing_study

    stores = stores or Stores.resolve()

    if not 2 <= seeds <= MAX_SEEDS:
        raise ConfigError(f"--seeds must be from 2 to {MAX_SEEDS} (an interval needs two), "
                          f"not {seeds}.")
    if not front and (top is None or top < 1):
        raise ConfigError(f"--top must be at least 1, not {top}.")
    study = load_existing_study(study_name, stores.storage)
    # The study's own configuration (from the process that runs it), else its identity.
    config = config if config is not None else study_config(study)
    if config.design is not None:
        report, note = stores.command("report", study_name), stores.password_note()
        raise ConfigError(f"study '{study_name}' is a designed experiment: every setting is "
                          f"trained over {words.count(config.design.seeds, 'seed')} already; "
                          f"its answer is `{report}`{note}.")
    uri = _check_confirmable(study, stores.tracking_uri)
    chosen = candidates(study, config, top=top, front=front, at_least=at_least,
                        smallest=smallest)
    specs = {str(t.number): trial_spec(config, t) for t in chosen}
    if baseline:
        specs[BASELINE] = baseline_spec(config, baseline_training)
    if data is None:
        from cnnlab.train.data import load_mnist

        data = load_mnist(data_dir, train_size=config.train_size, val_size=config.val_size)
    _check_data(study, data)
    record = _open_record(study, config, specs, chosen, seeds)
    rule = "front" if front else f"top {top}"
    if front and at_least is not None:
        rule += f" at least {at_least:g}"
    if front and smallest is not None:
        rule += f", the {smallest} smallest"
    out(f"confirming study '{study_name}' ({rule}{' and the notebook CNN' if baseline else ''}) "
        f"with {seeds} seeds: {', '.join(('#' + k) if k != BASELINE else k for k in specs)}")
    client = tracking.MlflowClient(uri)
    _train_seeds(study, config, specs, record, record["seeds"][:seeds], data, client,
                 tracking.get_or_create_experiment(study_name, uri), out)
    maximize = T.maximizes(study)
    # Every confirmed entry of the study, this call's and earlier ones' (they share the seeds):
    # the ranking that compare, report and evaluate read, and the one printed and tagged.
    ranking = ranking_of(record, maximize=maximize)
    assert ranking is not None  # Every entry of this call has at least two seeds now.
    entries = record["entries"]
    base = summarize(BASELINE, entries[BASELINE]["values"]) if BASELINE in specs else None
    record.update({
        "rule": rule, "n_seeds": seeds, "confirmed_at": _now(),
        "ranking": [s.key for s in ranking.entries],
        "tied_with_best": list(ranking.tied_with_best),
    })
    study.set_user_attr(CONFIRMED_ATTR, record)
    record_confirmation(client, study.user_attrs[PARENT_RUN_ATTR], study, ranking, record, base,
                        config)
    _print(ranking, base, record, config, out, maximize=maximize, now=set(specs))
    return Confirmation(ranking, base, record)


def _check_confirmable(study: Any, tracking_uri: str) -> str:
    """Refuse a study that was evaluated or has no study run to nest the runs under; returns
    the tracking store's URI."""
    import logging

    from cnnlab.tracking.evaluations import evaluation_records

    # Every seed builds a new model; TensorFlow's note that functions are traced again is
    # expected here and says nothing useful.
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    uri = tracking.use_tracking_store(tracking_uri, create=False)
    if study.user_attrs.get(EVALUATION_ATTR) or evaluation_records(study):
        raise ConfigError(f"study '{study.study_name}' was evaluated on the test set already; "
                          "its choice is made, and confirming now would not change it.")
    parent = study.user_attrs.get(PARENT_RUN_ATTR)
    if parent is None:
        raise ConfigError(f"study '{study.study_name}' has no MLflow study run to nest the "
                          "confirmation's runs under; run it with cnnlab first.")
    _, gone = tracking.find_runs(tracking.MlflowClient(uri), [parent])
    if parent in gone:  # Refused before a seed is trained, not when the record is written.
        raise ConfigError(
            f"the MLflow run of study '{study.study_name}' ({parent}) is "
            f"{tracking.GONE[gone[parent]]}, so the confirmation's runs have nothing to nest "
            "under; run the study again (cnnlab study run with its file: nothing is trained "
            "again) for a new study run, then confirm.")
    return uri


def _open_record(study: Any, config: Any, specs: dict[str, Any], chosen: list[Any],
                 seeds: int) -> dict[str, Any]:
    """The confirmation's record as kept on the study (seeds already done included), with an
    entry for each spec to confirm."""
    record = dict(load_record(study) or {})
    record.setdefault("metric", config.metric)
    record["seeds"] = confirm_seeds(config.seed, max(seeds, len(record.get("seeds", []))))
    entries: dict[str, Any] = dict(record.get("entries", {}))
    by_number = {str(t.number): t for t in chosen}
    for key, spec in specs.items():
        trial = by_number.get(key)
        table = None if trial else spec.architecture.layer_table()  # The baseline's.
        entry = dict(entries.get(key, {"values": [], "seeds": [], "run_ids": []}))
        if not trial:  # The baseline: its seeds count only if trained the same way.
            training = spec.training.to_dict()
            if entry.get("training", training) != training:
                entry = {"values": [], "seeds": [], "run_ids": []}
            entry["training"] = training
        entry.update({
            "architecture": spec.architecture.describe(),
            "n_params": trial.user_attrs.get(N_PARAMS_ATTR) if trial else table.total_params,
            "macs": trial.user_attrs.get(MACS_ATTR) if trial else table.total_macs,
            "first_value": trial.values[0] if trial else None,
        })
        entries[key] = entry
    record["entries"] = entries
    return record


def _train_seeds(study: Any, config: Any, specs: dict[str, Any], record: dict[str, Any],
                 seed_list: list[int], data: Any, client: Any, experiment_id: str,
                 out: Callable[[str], None]) -> None:
    """Train every spec with every seed it does not have yet, keeping the record on the study
    after each one (an interrupted confirmation resumes where it stopped)."""
    parent = study.user_attrs[PARENT_RUN_ATTR]
    for key, spec in specs.items():
        entry = record["entries"][key]
        for j, seed in enumerate(seed_list):
            if seed in entry["seeds"]:
                continue
            started = time.monotonic()
            value, run_id = _train_one(spec.with_seed(seed), key, j, len(seed_list), data,
                                       config, client, experiment_id, parent, study)
            entry["values"] = [*entry["values"], value]
            entry["seeds"] = [*entry["seeds"], seed]
            entry["run_ids"] = [*entry["run_ids"], run_id]
            study.set_user_attr(CONFIRMED_ATTR, record)
            label = f"#{key}" if key != BASELINE else "notebook CNN"
            out(f"  {label:<12} seed {j + 1}/{len(seed_list)}  {config.metric} {value:.4f}  "
                f"{time.monotonic() - started:6.1f} s")


def confirm_if_asked(config: Any, study: Any, stores: Stores, *, data: Any = None,
                     data_dir: str | None = None, out: Callable[[str], None] = print) -> None:
    """Run the study file's ``[confirm]`` once the study has its ``config.n_trials`` trials
    and was not evaluated, unless every trial it asks for (the top K or the front as they are
    now, and the baseline) already has its seeds: a study resumed with more trials confirms its
    new leaders, and seeds already done are not trained again. The command line's ``study run``
    calls it after the runner returns."""
    asked = config.confirm
    if asked is None or study.user_attrs.get(EVALUATION_ATTR):
        return
    total = config.n_trials
    if total is not None and T.counted(study) < total:
        return  # Not finished yet: the next run of the same command goes on, then confirms.
    try:
        wanted = [str(t.number) for t in candidates(
            study, config, top=asked.top, front=asked.front, at_least=asked.at_least,
            smallest=asked.smallest)]
    except ConfigError:
        return  # No complete trial: nothing to confirm.
    wanted += [BASELINE] if asked.baseline else []
    entries = (load_record(study) or {}).get("entries", {})
    if all(len(entries.get(key, {}).get("values", [])) >= asked.seeds for key in wanted):
        return
    confirm_study(config.name, top=asked.top, front=asked.front, at_least=asked.at_least,
                  smallest=asked.smallest, seeds=asked.seeds,
                  baseline=asked.baseline, baseline_training=asked.baseline_training,
                  stores=stores, data=data, data_dir=data_dir, config=config, out=out)


def _train_one(spec: Any, key: str, index: int, count: int, data: Any, config: Any,
               client: Any, experiment_id: str, parent: str, study: Any) -> tuple[float, str]:
    """One seed of one entry, as a run nested under the study's run (a ``TrainingRun``); its
    last epoch's validation score and the run's id."""
    from cnnlab.tracking.training_run import TrainingRun
    from cnnlab.train.callbacks import TerminateOnNaN
    from cnnlab.train.quiet import import_keras

    keras = import_keras()
    keras.backend.clear_session(free_memory=True)
    label = f"trial-{key}" if key != BASELINE else "notebook-cnn"
    tags = {PARENT_RUN_TAG: parent, KIND_TAG: KIND_CONFIRM,
            STUDY_TAG: study.study_name, STUDY_UID_TAG: study.user_attrs.get(UID_ATTR, ""),
            CONFIRMS_TAG: key, SEED_TAG: str(spec.training.seed),
            COMMAND_TAG: tracking.command_line()}
    with TrainingRun(spec, data, client=client, experiment_id=experiment_id,
                     run_name=f"confirm-{label}-seed{index + 1}", tags=tags,
                     label=f"confirm {label} seed {index + 1}/{count}",
                     params={"confirms": key, "confirm_seed_index": index}) as run:
        result = run.train([TerminateOnNaN()])
        curve = result.history.get(config.metric, [])
        value = curve[-1] if curve else math.nan
        run.finish(tags={STATE_TAG: "COMPLETE"}, objective=value, model=False)
    if not math.isfinite(value):
        value = 0.0 if T.maximizes(study) else math.inf  # A diverged seed scores the worst.
    assert run.run_id is not None
    return value, run.run_id


def _check_data(study: Any, data: Any) -> None:
    was = study.user_attrs.get(DATA_ATTR)
    if was is not None and (was["train_sha256"], was["val_sha256"]) != (
            data.train.sha256, data.validation.sha256):
        raise ConfigError(
            f"study '{study.study_name}' ran on other data (training {was['train_sha256'][:12]},"
            f" validation {was['val_sha256'][:12]}); point --data-dir or CNNLAB_MNIST_DIR at "
            "the data it ran on.")


def _print(ranking: Ranking, base: Summary | None, record: dict[str, Any], config: Any,
           out: Callable[[str], None], *, maximize: bool, now: set[str]) -> None:
    entries = record["entries"]
    earlier = [s.key for s in ranking.entries if str(s.key) not in now]
    out(f"confirmed ranking by mean {config.metric} over the new seeds (95% interval; the "
        "trials' first runs left out" + ("; * confirmed by an earlier command" if earlier
                                         else "") + "):")
    for position, summary in enumerate(ranking.entries, start=1):
        entry = entries[str(summary.key)]
        tie = "  tied with the best" if position > 1 and \
            summary.key in ranking.tied_with_best else ""
        mark = "*" if summary.key in earlier else " "
        out(f"  {position:>2}. trial {summary.key:<4}{mark}{summary.describe():<28} "
            f"{entry.get('n_params') or 0:>10,} params  {entry.get('architecture')}{tie}")
    if base is not None:
        out(f"      notebook CNN {base.describe():<28} "
            f"{entries[BASELINE]['n_params']:>10,} params")
        answer = smallest_as_good(record, ranking, maximize=maximize)
        if answer is None:
            out("no confirmed trial is on average as good as the notebook CNN.")
        else:
            size, summary = answer
            share = size / entries[BASELINE]["n_params"]
            out(f"smallest confirmed network on average as good as the notebook CNN: trial "
                f"{summary.key}, {size:,} parameters ({share:.1%} of "
                f"{entries[BASELINE]['n_params']:,}), {summary.describe()}")


def _now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
