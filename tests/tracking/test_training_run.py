"""A tracked training run (`cnnlab train`) on a small MNIST slice, read back from the store."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from cnnlab import cli
from cnnlab.spec.architecture import Architecture
from cnnlab.train import data
from tests.studies import ui_server

ARGS = ["--conv", "8:3:2:same", "--conv", "16:3:2:valid", "--dense", "32"]
ARCH = Architecture.from_strings(["8:3:2:same", "16:3:2:valid"], ["32"])
EPOCHS, TRAIN, VAL = 3, 512, 256


# Trains a model: every test that uses it is marked slow.
@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, mnist_dir: Path):
    """One `cnnlab train` run in a fresh SQLite store; yields (uri, run)."""
    import mlflow
    from mlflow.tracking import MlflowClient

    tmp = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{tmp / 'mlruns' / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        mp.setenv("CNNLAB_MNIST_DIR", str(mnist_dir))
        code = cli.main(["train", *ARGS, "--epochs", str(EPOCHS), "--train-size", str(TRAIN),
                         "--val-size", str(VAL), "--seed", "7", "--experiment", "t",
                         "--tracking-uri", uri])
        assert code == 0
        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("t")
        runs = client.search_runs([experiment.experiment_id])
        assert len(runs) == 1
        yield uri, runs[0]
        mlflow.set_tracking_uri(None)


@pytest.mark.slow
def test_parameters_and_counts(store) -> None:
    from cnnlab.train.model import build_model

    _, run = store
    params = run.data.params
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "8k3s2same-16k3s2valid-d32"
    assert params["conv1_filters"] == "8" and params["conv2_strides"] == "2"
    assert params["conv1_padding"] == "same" and params["dense1_units"] == "32"
    assert params["epochs"] == str(EPOCHS) and params["batch_size"] == "256"
    assert params["seed"] == "7"
    assert params["optimizer"] == "rmsprop" and params["loss"] == "categorical_crossentropy"
    assert params["optimizer_learning_rate"] == "0.0010000000474974513"  # Keras's default.
    model = build_model(ARCH)
    keras_counts = {layer.name: layer.count_params() for layer in model.layers}
    for name in ("conv1", "conv2", "dense1", "output"):
        assert int(params[f"{name}_params"]) == keras_counts[name]
    assert int(params["total_params"]) == model.count_params() == run.data.metrics["n_params"]
    assert run.data.tags["cnnlab.kind"] == "train"


@pytest.mark.slow
def test_data_recorded(store, mnist_dir: Path) -> None:
    _, run = store
    splits = data.load_mnist(mnist_dir, train_size=TRAIN, val_size=VAL)
    params = run.data.params
    assert params["data_source"] == str(mnist_dir.resolve())
    assert params["train_size"] == str(TRAIN) and params["val_size"] == str(VAL)
    assert params["train_sha256"] == splits.train.sha256
    assert params["val_sha256"] == splits.validation.sha256
    inputs = {d.tags[0].value: d.dataset for d in run.inputs.dataset_inputs}
    assert inputs["training"].digest == splits.train.sha256[:16]
    assert inputs["validation"].digest == splits.validation.sha256[:16]


@pytest.mark.slow
def test_curves_one_value_per_epoch(store) -> None:
    from mlflow.tracking import MlflowClient

    uri, run = store
    client = MlflowClient(uri)
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        history = client.get_metric_history(run.info.run_id, key)
        assert [m.step for m in history] == list(range(1, EPOCHS + 1)), key  # Epochs from 1.
    assert not any(k.startswith("validation_") for k in run.data.metrics)
    losses = [m.value for m in client.get_metric_history(run.info.run_id, "loss")]
    assert losses[-1] < losses[0]


@pytest.mark.slow
def test_artifacts_present(store) -> None:
    from mlflow.tracking import MlflowClient

    uri, run = store
    client = MlflowClient(uri)
    top = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"plots", "architecture.json", "layers.json", "layers.txt"} <= top
    plots = {a.path: a.file_size for a in client.list_artifacts(run.info.run_id, "plots")}
    assert set(plots) == {"plots/loss.png", "plots/accuracy.png"}
    assert all(size > 5_000 for size in plots.values())
    local = Path(client.download_artifacts(run.info.run_id, "plots/loss.png"))
    assert local.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert Architecture.from_dict(json.loads(
        Path(client.download_artifacts(run.info.run_id, "architecture.json")).read_text())) == ARCH
    # Artifacts live beside the SQLite database, not in the current directory's mlruns/.
    assert Path(run.info.artifact_uri.removeprefix("file://")).is_relative_to(
        Path(uri.removeprefix("sqlite:///")).parent)


@pytest.mark.slow
def test_model_loads_and_reproduces_logged_accuracy(store, mnist_dir: Path) -> None:
    import mlflow

    uri, run = store
    mlflow.set_tracking_uri(uri)
    model_uri = f"runs:/{run.info.run_id}/model"
    info = mlflow.models.get_model_info(model_uri)
    assert info.signature.inputs.to_dict()[0]["tensor-spec"]["shape"] == (-1, 28, 28, 1)
    model = mlflow.keras.load_model(model_uri)
    assert model.count_params() == int(run.data.params["total_params"])
    val = data.load_mnist(mnist_dir, train_size=TRAIN, val_size=VAL).validation
    # In batches of fit's validation (the training batch size), so that the same kernels run.
    probs = model.predict(val.x, batch_size=256, verbose=0)
    assert probs.shape == (VAL, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    accuracy = float((probs.argmax(axis=1) == val.y).mean())
    assert accuracy == pytest.approx(run.data.metrics["val_accuracy"], abs=1e-6)


@pytest.mark.parametrize("bad", [
    ["--conv", "4:29"],                   # Kernel larger than the image.
    ["--data-dir", "/nonexistent/mnist"],  # No such folder.
    ["--train-size", "60000"],             # More than the 50,000 training images.
])
def test_bad_input_leaves_no_store(bad: list[str], tmp_path: Path, capsys) -> None:
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    assert cli.main(["train", *bad, "--epochs", "1", "--tracking-uri", uri]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnlab train: error: ") and "\n" not in err
    assert not (tmp_path / "mlruns").exists()


def test_shapes_command(capsys) -> None:
    assert cli.main(["shapes"]) == 0
    out = capsys.readouterr().out
    assert "total params: 361,322" in out
    assert cli.main(["shapes", *ARGS]) == 0
    assert f"total params: {ARCH.layer_table().total_params:,}" in capsys.readouterr().out
    assert cli.main(["shapes", "--conv", "2:3", "--dense", "", "--input", "30,28,3"]) == 0
    assert "(None, 28, 26, 2)" in capsys.readouterr().out


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


@pytest.mark.slow
def test_ui_serves_the_store(store) -> None:
    uri, run = store
    with ui_server(uri) as (base, _):
        got = json.loads(_get(f"{base}/api/2.0/mlflow/runs/get?run_id={run.info.run_id}"))
        assert got["run"]["info"]["run_name"] == run.info.run_name
        png = _get(f"{base}/get-artifact?path=plots/accuracy.png&run_uuid={run.info.run_id}")
        assert png[:4] == b"\x89PNG"


@pytest.mark.slow
def test_ui_answers_the_host_names_it_is_given(store) -> None:
    """Workers on other machines reach the tracking server by its name: MLflow's host check
    refuses any Host header but localhost's and those --allowed-hosts names (one server: a
    name it was not given refused, the one it was given answered)."""
    import urllib.error
    import urllib.request

    uri, run = store
    path = f"/api/2.0/mlflow/runs/get?run_id={run.info.run_id}"

    def status(base: str, host: str) -> int:
        port = base.rsplit(":", 1)[1]
        request = urllib.request.Request(base + path, headers={"Host": f"{host}:{port}"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as err:
            return err.code

    with ui_server(uri, "--allowed-hosts", "trackinghost,trackinghost:*") as (base, _):
        assert status(base, "otherhost") == 403
        assert status(base, "trackinghost") == 200


@pytest.mark.slow
def test_run_architecture_json_trains_again(store, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    uri, run = store
    path = MlflowClient(uri).download_artifacts(run.info.run_id, "architecture.json", tmp_path)
    assert Architecture.from_file(path) == ARCH
