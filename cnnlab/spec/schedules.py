"""Learning-rate schedules as formulas: the learning rate at an optimizer step, in pure Python.

``cnnlab.train.model`` builds each schedule from Keras's own classes
(``keras.optimizers.schedules``); the tests evaluate those objects at given steps and compare
them with ``learning_rate_at`` here, so that what a run records is what Keras did. Steps count
the optimizer's updates from 0 (the first batch is trained at step 0), ``steps_per_epoch`` is
``ceil(training images / batch size)``.

- ``constant``: ``lr`` at every step.
- ``step``: ``lr * decay_rate ** floor(step / (decay_epochs * steps_per_epoch))``, a drop by
  ``decay_rate`` every ``decay_epochs`` epochs (``ExponentialDecay(staircase=True)``).
- ``exponential``: the same with a smooth exponent, ``step / (decay_epochs * steps_per_epoch)``
  (``ExponentialDecay``).
- ``cosine``: with ``w = round(warmup * total_steps)`` warm-up steps, a linear rise from 0 to
  ``lr`` over steps ``0 .. w``, then ``lr * (1 + cos(pi * min(step - w, d) / d)) / 2`` with
  ``d = total_steps - w`` (``CosineDecay`` with ``warmup_target``; Loshchilov & Hutter, SGDR,
  2017). With ``warmup > 0`` this is the "one-cycle" schedule of Smith & Topin (2019) in the
  form most references use, a linear warm-up and a cosine annealing to 0 (Keras has no
  one-cycle class; this is composed from ``CosineDecay``'s own warm-up).
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "step", "exponential", "cosine")
"""The learning-rate schedules a ``TrainConfig`` may name."""


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimizer updates per epoch: ``ceil(n_train / batch_size)`` (the last batch may be
    short, as in ``model.fit``)."""
    return math.ceil(n_train / batch_size)


def warmup_steps(warmup: float, total_steps: int) -> int:
    """The warm-up's steps: ``warmup`` (a fraction of all steps) of ``total_steps``, rounded,
    and at most ``total_steps - 1`` so that the decay has a step."""
    return min(round(warmup * total_steps), max(total_steps - 1, 0))


def learning_rate_at(step: int, *, schedule: str, learning_rate: float, steps_per_epoch: int,
                     total_steps: int, decay_rate: float = 0.1, decay_epochs: float = 1,
                     warmup: float = 0.0) -> float:
    """The learning rate of ``schedule`` at optimizer step ``step`` (from 0), per the formulas
    above. Raises ``ValueError`` for an unknown schedule."""
    if schedule == "constant":
        return learning_rate
    if schedule in ("step", "exponential"):
        exponent = step / (decay_epochs * steps_per_epoch)
        if schedule == "step":
            exponent = math.floor(exponent)
        return learning_rate * decay_rate ** exponent
    if schedule == "cosine":
        w = warmup_steps(warmup, total_steps)
        if w and step < w:
            return learning_rate * step / w
        d = max(total_steps - w, 1)
        return learning_rate * 0.5 * (1 + math.cos(math.pi * min(step - w, d) / d))
    raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, not {schedule!r}.")
