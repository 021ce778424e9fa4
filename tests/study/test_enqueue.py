"""``[[enqueue]]``: configurations a study trains first (Optuna's ``enqueue_trial``), checked
against the space before any store is touched, trained once, read back from Optuna and MLflow."""

from __future__ import annotations

from pathlib import Path

import pytest

from cnnlab.errors import ConfigError
from cnnlab.search.config import parse_study
from tests.studies import TINY, Stores

FIRST = {"n_conv": 2, "conv1_filters": 8, "conv1_kernel_size": 3, "conv1_strides": 1,
         "conv1_padding": "same", "conv2_filters": 4, "conv2_kernel_size": 5,
         "conv2_strides": 2, "conv2_padding": "valid", "dense1_units": 32}
SECOND = {"n_conv": 1, "conv1_filters": 4, "conv1_kernel_size": 5, "conv1_strides": 2,
          "conv1_padding": "same", "dense1_units": 16}


def _toml(params: dict) -> str:
    return "\n[[enqueue]]\n" + "\n".join(
        f"{k} = {v!r}".replace("'", '"') for k, v in params.items()) + "\n"


ENQUEUED = TINY + _toml(FIRST) + _toml(SECOND)


@pytest.mark.slow
def test_enqueued_configurations_are_trained_first_and_once(tmp_path: Path) -> None:
    stores = Stores(tmp_path, ENQUEUED)
    assert stores.run() == 0
    trials = stores.study("tiny").trials
    assert [t.params for t in trials[:2]] == [FIRST, SECOND]
    assert len(trials) == 3 and all(t.state.name == "COMPLETE" for t in trials)
    _, runs = stores.runs("tiny")
    assert runs[0].data.params["conv2_kernel_size"] == "5"
    assert runs[1].data.params["n_conv"] == "1"
    # Resumed with a larger total: nothing is enqueued again, the sampler draws the rest.
    assert stores.run("--n-trials", "4") == 0
    trials = stores.study("tiny").trials
    assert len(trials) == 4
    assert sum("fixed_params" in t.system_attrs for t in trials) == 2


@pytest.mark.parametrize(("params", "says"), [
    ({**SECOND, "conv1_filters": 12}, "enqueue 1: 'conv1_filters' = 12 is not in the space"),
    ({k: v for k, v in FIRST.items() if k != "conv2_strides"},
     "enqueue 1: give 'conv2_strides' too"),
    ({**SECOND, "conv2_filters": 4}, "enqueue 1: 'conv2_filters' is not a parameter the space "
                                     "draws for this configuration"),
])
def test_a_bad_enqueued_configuration_is_one_sentence_naming_it(params: dict, says: str) -> None:
    import tomllib

    data = tomllib.loads(TINY + _toml(params))
    with pytest.raises(ConfigError, match=says) as caught:
        parse_study(data, where="study.toml")
    assert "\n" not in str(caught.value)


def test_enqueue_must_be_tables() -> None:
    import tomllib

    data = tomllib.loads(TINY)
    with pytest.raises(ConfigError, match="'enqueue' must be a list of tables"):
        parse_study({**data, "enqueue": [1, 2]}, where="study.toml")
