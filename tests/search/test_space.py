"""The open search space: paths into the trial spec, choices, integer and float ranges, checked
by the spec's own classes; a float range and a new layer kind carried through Optuna, Keras and
MLflow to the records."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import optuna
import pytest

from cnnlab.errors import ConfigError
from cnnlab.search.space import Choices, FloatRange, IntRange, parse_space
from cnnlab.spec.architecture import Architecture, ConvLayer
from cnnlab.spec.trialspec import TrainConfig, TrialSpec, param_name
from tests.studies import TINY, Stores

SPACE = """
n_conv = [1, 2]
conv.filters = [4, 8]
conv2.strides = [1, 2]
conv.pool = ["none", "max"]
head = ["flatten", "gap"]
dropout = { low = 0.0, high = 0.5 }
n_dense = { low = 0, high = 2 }
dense.units = [16, 32]
training.learning_rate = { low = 1e-4, high = 1e-2, log = true }
training.optimizer = ["rmsprop", "adam"]
training.batch_size = [32, 64]
"""


def test_paths_read_from_nested_tables_and_dotted_keys_alike() -> None:
    space = parse_space(tomllib.loads(SPACE))
    assert space.params["conv.filters"] == Choices((4, 8))
    assert space.params["conv2.strides"] == Choices((1, 2))
    assert space.params["dropout"] == FloatRange(0.0, 0.5)
    assert space.params["n_dense"] == IntRange(0, 2)
    assert space.params["training.learning_rate"] == FloatRange(1e-4, 1e-2, log=True)
    # A layer's own entry wins over every layer's; others fall back to it, and what the file
    # does not give is the base network's (the notebook CNN's conv1 is 32k3s1same).
    assert space.param("conv2.strides") == Choices((1, 2))
    assert space.param("conv1.strides") == Choices((1,))
    assert space.param("conv1.padding") == Choices(("same",))
    assert space.resolve("conv1.padding").source == "base"
    assert space.param("conv1.filters") == space.param("conv2.filters") == Choices((4, 8))
    nested = parse_space({"conv": {"filters": [4, 8]}, "training": {"optimizer": ["adam"]}})
    assert nested.params["conv.filters"] == Choices((4, 8))
    assert nested.params["training.optimizer"] == Choices(("adam",))
    # Study files written before paths: bare conv fields and dense_units.
    old = parse_space({"filters": [4, 8], "dense_units": [16], "conv2": {"padding": ["same"]}})
    assert old.params["conv.filters"] == Choices((4, 8))
    assert old.params["dense.units"] == Choices((16,))
    assert old.params["conv2.padding"] == Choices(("same",))


def test_a_trial_draws_a_trial_spec_with_parameter_names_as_mlflow_has_them() -> None:
    space = parse_space(tomllib.loads(SPACE))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    base = TrainConfig(epochs=3)
    specs = []
    for _ in range(20):
        trial = study.ask()
        spec = space.suggest(trial, base)
        specs.append(spec)
        params = spec.to_params()
        for name, value in trial.params.items():
            assert params[name] == value, name  # Optuna's names are MLflow's.
        assert spec.training.epochs == 3
        assert 1e-4 <= spec.training.learning_rate <= 1e-2
        assert isinstance(trial.distributions["learning_rate"],
                          optuna.distributions.FloatDistribution)
        assert trial.distributions["learning_rate"].log
        study.tell(trial, 0.5)
    assert {s.architecture.head for s in specs} == {"flatten", "gap"}
    assert {layer.pool for s in specs for layer in s.architecture.conv} == {"none", "max"}
    assert len({s.training.optimizer for s in specs}) == 2
    assert all(0.0 <= s.architecture.dropout <= 0.5 for s in specs)
    # Fixed values are not Optuna parameters.
    assert "conv1_kernel_size" not in study.trials[0].params


def test_param_names() -> None:
    assert param_name("conv2.strides") == "conv2_strides"
    assert param_name("training.learning_rate") == "learning_rate"
    assert param_name("head") == "head"


def test_trial_spec_round_trips_and_its_key_ignores_the_seed() -> None:
    spec = TrialSpec(Architecture(conv=(ConvLayer(8, 3, 1, "same", pool="max"),), dense=(16,),
                                  head="gap", dropout=0.25),
                     TrainConfig(epochs=2, optimizer="adam", learning_rate=0.003))
    again = TrialSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert again == spec
    assert spec.with_seed(7).key() == spec.key()
    assert TrialSpec(spec.architecture, TrainConfig(epochs=2, optimizer="adam")).key() != \
        spec.key()
    assert spec.describe() == "8k3s1same+max2-gap-d16-do0.25 adam lr=0.003"


@pytest.mark.parametrize(("search", "message"), [
    ("colour = [1]", "search.colour is not a search-space path"),
    ("conv.colour = [1]", "search.conv.colour is not a search-space path"),
    ("training.epochs = [1, 2]", "training.epochs cannot be searched"),
    ('training.optimizer = ["rmsprop", "adamm"]', "optimizer must be one of"),
    ("training.learning_rate = { low = 0.0, high = 0.1, log = true }", "learning_rate"),
    ("training.learning_rate = [0.1, 0.1]", "lists a choice twice"),
    ("conv.filters = { low = 4.5, high = 8 }", "search.conv.filters.low must be an integer"),
    ("dropout = { low = 0.1, high = 1.0 }", "search.dropout.high"),
    ('conv.pool = ["max", "min"]', "search.conv.pool"),
    ('head = ["gap", 3]', "search.head must hold strings, not 3"),
    ("conv.batchnorm = [1]", "search.conv.batchnorm must hold true or false"),
    ("filters = [4]\nconv.filters = [8]", "says again what"),
    ("n_dense = [1]\ndense3.units = [8]", "search.dense3 is beyond"),
    ("dropout = { low = 0.1, high = 0.3, log = true, step = 0.1 }", "both log = true and"),
])
def test_bad_spaces_are_refused_in_one_sentence_naming_the_path(search: str,
                                                                message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_space(tomllib.loads(search))
    text = str(caught.value)
    assert message in text and "\n" not in text, text


@pytest.mark.slow
def test_a_float_range_and_a_new_layer_kind_reach_the_model_and_the_records(
        tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    text = TINY.replace("n_trials = 3", "n_trials = 2").replace(
        "epochs = 2", "epochs = 1").replace(
        'padding = ["valid", "same"]',
        'padding = ["same"]\nconv.pool = ["max", "avg"]\nconv.batchnorm = [true]\n'
        'training.learning_rate = { low = 1e-4, high = 1e-2, log = true }')
    stores = Stores(tmp_path, text)
    assert stores.run() == 0
    study = stores.study("tiny")
    _, runs = stores.runs("tiny")
    trained = [t for t in study.trials if t.user_attrs.get("cnnlab_outcome") == "trained"]
    assert len(trained) == 2
    for trial in trained:
        lr = trial.params["learning_rate"]
        assert 1e-4 <= lr <= 1e-2
        assert trial.distributions["learning_rate"].log
        run = runs[trial.number]
        params = run.data.params
        # The drawn rate is the trial's, its run's, and the compiled optimizer's.
        assert float(params["learning_rate"]) == lr
        assert float(params["optimizer_learning_rate"]) == pytest.approx(lr, rel=1e-6)
        assert params["conv1_pool"] == trial.params["conv1_pool"]
        assert params["conv1_batchnorm"] == "True"
        layers = {row["layer"] for row in _rows(stores, run.info.run_id, "layers.json")}
        assert {"conv1_bn", "conv1_pool"} <= layers
        spec_path = stores.client.download_artifacts(run.info.run_id, "trial_spec.json",
                                                     str(tmp_path))
        spec = TrialSpec.from_dict(json.loads(Path(spec_path).read_text()))
        assert spec.training.learning_rate == lr
        assert spec.training.seed == trial.user_attrs["seed"]
        assert spec.architecture.conv[0].pool == trial.params["conv1_pool"]
        assert spec.architecture.describe() == trial.user_attrs["architecture"]
        assert "receptive_field" in params and "final_feature_map" in params


def _rows(stores: Stores, run_id: str, name: str) -> list[dict]:
    path = stores.client.download_artifacts(run_id, name, str(stores.root / run_id))
    table = json.loads(Path(path).read_text())
    return [dict(zip(table["columns"], row, strict=True)) for row in table["data"]]


@pytest.mark.slow
def test_the_dataframe_carries_the_spec_with_its_types(tmp_path: Path, monkeypatch) -> None:
    from cnnlab.results.compare import trials_frame

    monkeypatch.chdir(tmp_path)
    text = TINY.replace("n_trials = 3", "n_trials = 2").replace("epochs = 2", "epochs = 1") \
        .replace('padding = ["valid", "same"]', 'padding = ["same"]\nhead = ["gap"]\n'
                 'conv.batchnorm = [true, false]\ndropout = { low = 0.1, high = 0.2 }')
    stores = Stores(tmp_path, text)
    assert stores.run() == 0
    frame = trials_frame("tiny", storage=stores.storage, tracking_uri=stores.tracking)
    trained = frame[frame["outcome"].astype(str) == "trained"]
    assert len(trained) == 2
    assert str(frame["dropout"].dtype) == "float64"
    assert trained["dropout"].between(0.1, 0.2).all()
    assert str(frame["conv1_batchnorm"].dtype) == "boolean"
    assert set(frame["head"].astype(str)) == {"gap"}
    assert str(frame["learning_rate"].dtype) == "float64"  # None: Keras's default rate.
    for column in ("receptive_field", "effective_stride", "final_feature_map"):
        assert trained[column].notna().all()


CONDITIONAL = """
n_conv = [1, 2]
conv.pool = ["none", "max"]
conv.pool_size = [2, 3]
conv.dropout = [0.0, 0.1]
conv.spatial_dropout = [false, true]
training.schedule = ["constant", "step", "cosine"]
training.warmup = [0.0, 0.2]
training.decay_rate = [0.1, 0.5]
training.optimizer = ["adam", "sgd"]
training.momentum = [0.0, 0.9]
"""


def test_a_field_is_drawn_only_where_it_is_used() -> None:
    """A pool's size only with a pool, spatial dropout only with dropout, warm-up only with
    the cosine schedule, a decay rate only with a step schedule, momentum only with sgd: the
    trial's parameters are exactly those that shape it, the unused ones at their defaults."""
    space = parse_space(tomllib.loads(CONDITIONAL))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(60):
        trial = study.ask()
        spec = space.suggest(trial, TrainConfig())
        study.tell(trial, 0.0)
        params, t = trial.params, spec.training
        for i, layer in enumerate(spec.architecture.conv, start=1):
            assert (f"conv{i}_pool_size" in params) == (layer.pool != "none")
            assert (f"conv{i}_spatial_dropout" in params) == (layer.dropout > 0)
            if layer.pool == "none":
                assert layer.pool_size == 2
        assert ("warmup" in params) == (t.schedule == "cosine")
        assert ("decay_rate" in params) == (t.schedule == "step")
        assert ("momentum" in params) == (t.optimizer == "sgd")
        assert t.ignored() == []
        seen.add((t.schedule, t.optimizer, spec.architecture.conv[0].pool))
    assert len(seen) == 12  # Every branch was drawn.


def test_a_cost_budget_refuses_costlier_networks_untrained(tmp_path: Path, mnist_dir) -> None:
    """``max_macs``: a network of more multiply-adds per image is an infeasible draw (never
    built), with Optuna's constraint ``max_macs`` > 0 so that the sampler learns to avoid it;
    those within it train."""
    text = TINY.replace('n_trials = 3', 'n_trials = 3\nmax_macs = 150000').replace(
        'filters = [4, 8]', 'filters = [4, 32]')
    stores = Stores(tmp_path, text)
    assert stores.run() == 0
    study = stores.study("tiny")
    over = [t for t in study.trials if t.user_attrs["macs"] > 150_000]
    within = [t for t in study.trials if t.user_attrs["macs"] <= 150_000]
    assert over and within
    for trial in over:
        assert trial.user_attrs["cnnlab_outcome"] == "infeasible"
        assert "over the study's max_macs of 150,000" in trial.user_attrs["cnnlab_reason"]
        assert trial.constraints["max_macs"] > 0
    for trial in within:
        assert trial.constraints["max_macs"] <= 0
        assert trial.user_attrs["cnnlab_outcome"] in ("trained", "duplicate")
    parent, _ = stores.runs("tiny")
    assert parent.data.params["max_macs"] == "150000"
