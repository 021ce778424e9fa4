"""A study's resolved space: every field a trial has, searched or fixed, and where its value
comes from, as rows of data (``cnnlab study check`` prints them).

Sources (``space.SOURCES``): ``search``, the file's ``[search]``; ``base``, the base network
(the notebook's CNN; ``space.base_layer`` past its depth); ``default``, the spec's default;
``training``, the file's ``[training]``. No framework is imported here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cnnlab.search.space import Choices, Resolved
from cnnlab.spec.trialspec import RECIPE_FIELDS

if TYPE_CHECKING:
    from cnnlab.search.config import StudyConfig

TRAINING_ROWS = ("epochs", "batch_size", "optimizer", "learning_rate")
"""The training settings a trial has (the seed aside: trial k trains with the study's seed + k);
the recipe's (``RECIPE_FIELDS``: schedule, weight_decay ...) follow, those the study searches
or sets in ``[training]``."""
SIZES = ("train_size", "val_size")
"""The data sizes of ``[training]``; None is the whole split."""


def resolved_space(config: StudyConfig) -> list[Resolved]:
    """The study's architecture rows (``SearchSpace.architecture_rows``), then its training
    settings and data sizes: searched in ``[search]``, set in ``[training]``, or the default."""
    stated = config.source.get("training", {})
    stated = stated if isinstance(stated, dict) else {}
    rows = config.space.architecture_rows()
    recipe = [name for name in RECIPE_FIELDS
              if name in stated or f"training.{name}" in config.space.params]
    for name in (*TRAINING_ROWS, *recipe):
        path = f"training.{name}"
        if path in config.space.params:
            rows.append(Resolved(path, config.space.params[path], "search"))
        else:
            rows.append(Resolved(path, Choices((getattr(config.training, name),)),
                                 "training" if name in stated else "default"))
    for name in SIZES:
        rows.append(Resolved(f"training.{name}", Choices((getattr(config, name),)),
                             "training" if name in stated else "default"))
    return rows
