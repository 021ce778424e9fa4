"""How a trial is stopped early: Optuna's pruners told each epoch, cnnlab's dominance
pruner for studies with two objectives (metric up, size down), and a study's fidelity rungs
(``promote_at_rung``, the rule in ``cnnlab.spec.fidelity``).

Epochs are counted from 1 here as everywhere in cnnlab: after its ``n``-th epoch a trial reports
its monitored metric to Optuna at step ``n`` (``report_epoch``), the step at which MLflow holds
that epoch's metrics, and a trial pruned there ran ``n`` epochs. No pruning decision is taken
after a trial's last epoch: nothing is left to save, so the trial completes. Optuna's pruners
compare ``step < n_warmup_steps``, so ``n_warmup_steps = k`` lets a trial be stopped after its
``k``-th epoch at the earliest.

Optuna's pruners need ``Trial.report``, which raises ``NotImplementedError`` in a study with
several directions. ``DominancePruner`` takes their place: at the end of every epoch a trial
appends its monitored metric to its user attribute ``cnnlab_curve`` (so that every worker
sharing the storage sees it), reads the curves of the other trials of the study, and asks
``cnnlab.spec.front.should_stop`` whether some trial had, at the same epoch, a metric better by
``margin`` with a size no larger. If so, it records the reason in ``cnnlab_pruned_by`` and
raises ``optuna.TrialPruned``, which ends ``model.fit`` and makes the trial PRUNED, also in a
multi-objective study.

The size is the trial's user attribute ``n_params`` (or ``macs``, by ``size_attr``), which the
objective sets before it builds the network. Importing this module imports neither Optuna nor
Keras: Optuna is imported where it is used, Keras only when a callback is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnnlab.names import CURVE_ATTR, FIDELITY_ATTR, N_PARAMS_ATTR, PRUNED_BY_ATTR
from cnnlab.spec.fidelity import Fidelity, promoted
from cnnlab.spec.front import should_stop


@dataclass(frozen=True)
class DominancePruner:
    """How a trial is judged against the others (see ``cnnlab.spec.front.should_stop``).

    ``maximize`` is the monitored metric's direction; None (the default) means "minimize if the
    metric's name ends in ``loss``, maximize otherwise".
    """

    margin: float = 0.002
    """How much better (in the metric's own units) another trial must have been, at the same
    epoch and no larger, for this one to stop."""
    n_warmup_epochs: int = 1
    """The first epochs on which no decision is taken: 1 gives verdicts from the second epoch
    on (epochs counted from 1)."""
    n_min_trials: int = 4
    """Other trials that must have reached the epoch before a verdict there."""
    size_attr: str = N_PARAMS_ATTR
    monitor: str = "val_accuracy"
    maximize: bool | None = None
    stop: bool = True
    """False: only record each epoch's metric in the trial's curve (no trial is stopped)."""

    def __post_init__(self) -> None:
        if self.margin < 0:
            raise ValueError(f"the pruner's margin must be zero or positive, not {self.margin}.")
        if self.n_warmup_epochs < 0 or self.n_min_trials < 0:
            raise ValueError(f"n_warmup_epochs and n_min_trials must be zero or positive, not "
                             f"{self.n_warmup_epochs} and {self.n_min_trials}.")

    @property
    def maximizes(self) -> bool:
        """Whether the monitored metric is to be maximized."""
        if self.maximize is not None:
            return self.maximize
        return not self.monitor.endswith("loss")

    def others(self, trial: Any) -> tuple[dict[int, list[float]], dict[int, float]]:
        """The curves and sizes of the study's other trials that have both: COMPLETE, PRUNED
        and RUNNING ones (a running trial's curve is as far as it got)."""
        from optuna.trial import TrialState

        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        curves: dict[int, list[float]] = {}
        sizes: dict[int, float] = {}
        for other in trial.study.get_trials(deepcopy=False, states=states):
            if other.number == trial.number:
                continue
            curve = other.user_attrs.get(CURVE_ATTR)
            size = other.user_attrs.get(self.size_attr)
            if isinstance(curve, list) and curve and isinstance(size, int | float):
                curves[other.number] = curve
                sizes[other.number] = size
        return curves, sizes

    def epoch_end(self, trial: Any, value: float, *, last: bool = False) -> None:
        """Record ``value`` as the trial's next epoch and stop the trial if it is dominated:
        raises ``optuna.TrialPruned`` with the reason, also stored in ``cnnlab_pruned_by``.
        ``last``: the epoch was the trial's last; its value is recorded and no decision is
        taken (nothing is left to save). ``ValueError`` if the trial has no size yet.

        Keras-free, so that it can be driven by hand; the Keras callback calls it.
        """
        size = trial.user_attrs.get(self.size_attr)
        if not isinstance(size, int | float):
            raise ValueError(f"trial {trial.number} has no user attribute {self.size_attr!r}: "
                             f"set it before training so that the pruner knows its size.")
        curve = [*trial.user_attrs.get(CURVE_ATTR, []), float(value)]
        trial.set_user_attr(CURVE_ATTR, curve)
        if not self.stop or last:
            return
        curves, sizes = self.others(trial)
        stop, reason = should_stop(curve, size, curves, sizes, margin=self.margin,
                                   n_warmup_epochs=self.n_warmup_epochs,
                                   n_min_trials=self.n_min_trials, maximize=self.maximizes,
                                   metric=self.monitor, size_label=self.size_attr)
        if stop:
            import optuna

            trial.set_user_attr(PRUNED_BY_ATTR, reason)
            raise optuna.TrialPruned(reason)

    def keras_callback(self, trial: Any, epochs: int) -> Any:
        """A Keras callback calling ``epoch_end(trial, logs[monitor])`` after every epoch of a
        trial that trains ``epochs`` epochs, with ``last`` after the last of them."""
        from cnnlab.train.callbacks import EpochEnd, monitored

        return EpochEnd(lambda epoch, logs: self.epoch_end(
            trial, monitored(logs, self.monitor, epoch), last=epoch >= epochs))


def report_epoch(trial: Any, epoch: int, value: float, *, epochs: int) -> None:
    """Tell Optuna ``value``, the trial's monitored metric after epoch ``epoch`` (counted from 1),
    as its intermediate value at step ``epoch``, and stop the trial if the study's pruner says
    so (``trial.should_prune()``): raises ``optuna.TrialPruned``, naming the epoch. After the
    trial's last epoch (``epoch == epochs``) the value is told and no decision is taken:
    nothing is left to save, and the trial completes. ``ValueError`` for an ``epoch`` outside
    1 to ``epochs``.

    Keras-free, so that it can be driven by hand; ``optuna_callback`` calls it.
    """
    if not 1 <= epoch <= epochs:
        raise ValueError(f"epochs are counted from 1 to the trial's {epochs}, not {epoch}.")
    trial.report(float(value), epoch)
    if epoch < epochs and trial.should_prune():
        import optuna

        raise optuna.TrialPruned(f"pruned by the study's pruner after epoch {epoch} of {epochs}.")


def optuna_callback(trial: Any, monitor: str, epochs: int) -> Any:
    """A Keras callback that tells Optuna ``monitor`` after every epoch of a trial that trains
    ``epochs`` epochs (``report_epoch``): optuna_integration's ``KerasPruningCallback``, with
    steps counted from 1 and no pruning after the last epoch. A ``KeyError`` names what the
    epoch's logs have if they lack ``monitor``."""
    from cnnlab.train.callbacks import EpochEnd, monitored

    return EpochEnd(lambda epoch, logs: report_epoch(
        trial, epoch, monitored(logs, monitor, epoch), epochs=epochs))


def enter_rung(trial: Any, fidelity: Fidelity, index: int, n_train: int) -> None:
    """Record in ``trial``'s user attribute ``cnnlab_fidelity`` that it trains rung ``index``
    (from 0) of ``fidelity`` now, on a training split of ``n_train`` images."""
    epochs, size = fidelity.segments(n_train)[index]
    trial.set_user_attr(FIDELITY_ATTR, {"rung": index + 1, "rungs": len(fidelity.rungs),
                                        "epochs": epochs, "train_size": size})


def promote_at_rung(trial: Any, fidelity: Fidelity, index: int, n_train: int, *,
                    maximize: bool, size_attr: str | None = None) -> None:
    """At the end of rung ``index`` (from 0, not the last), let ``trial`` go on to the next
    rung (recorded with ``enter_rung``) or stop it: ``optuna.TrialPruned`` with the reason,
    also stored in ``cnnlab_pruned_by``. The trial is compared, by its monitored metric after
    the rung's last epoch (its curve, ``cnnlab_curve``, which every trial keeps), with every
    other trial of the study that reached that epoch through the rungs (``cnnlab_fidelity``),
    by ``cnnlab.spec.fidelity.promoted``; with ``size_attr`` (a two-objective study) by
    non-dominated sorting of (metric, size). ``ValueError`` if the trial's curve does not
    reach the rung's end."""
    from optuna.trial import TrialState

    epoch = fidelity.rungs[index].epochs
    curve = trial.user_attrs.get(CURVE_ATTR) or []
    if len(curve) < epoch:
        raise ValueError(f"trial {trial.number} has {len(curve)} epoch(s) in its curve; rung "
                         f"{index + 1} ends at epoch {epoch}.")
    others, sizes = [], []
    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    for other in trial.study.get_trials(deepcopy=False, states=states):
        attrs = other.user_attrs
        other_curve = attrs.get(CURVE_ATTR)
        if other.number == trial.number or FIDELITY_ATTR not in attrs or \
                not isinstance(other_curve, list) or len(other_curve) < epoch:
            continue
        if size_attr is not None:
            if not isinstance(attrs.get(size_attr), int | float):
                continue
            sizes.append(float(attrs[size_attr]))
        others.append(float(other_curve[epoch - 1]))
    size = float(trial.user_attrs[size_attr]) if size_attr is not None else None
    go_on, why = promoted(curve[epoch - 1], others, fraction=fidelity.promote,
                          min_trials=fidelity.min_trials, maximize=maximize, size=size,
                          other_sizes=sizes if size_attr is not None else None)
    if go_on:
        enter_rung(trial, fidelity, index + 1, n_train)
        return
    import optuna

    rungs = len(fidelity.rungs)
    reason = (f"stopped at rung {index + 1} of {rungs} "
              f"({fidelity.rungs[index].describe(n_train)}): {why}")
    trial.set_user_attr(PRUNED_BY_ATTR, reason)
    raise optuna.TrialPruned(reason)
