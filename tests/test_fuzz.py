"""Every input is accepted and works, or is refused in one line with exit code 2 before anything
is written: a property, checked on inputs that Hypothesis makes, not on a list of cases.

- study files: any TOML value at any known key (and unknown keys), odd names (quotes,
  backslashes, newlines, non-ASCII, very long), numbers at and past every limit, bytes that are
  not UTF-8; each through `cnnlab study check`, and the cheap ones through `cnnlab study run`
  against empty stores;
- command lines for every command;
- data folders: IDX headers and `.npz` contents (dtypes, NaN, shapes, huge dimensions).

CI runs a bounded number of examples; `pytest tests/test_fuzz.py --fuzz-examples 500` runs more.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import math
import os
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import pytest
import tomli_w
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cnnlab import cli
from cnnlab.names import EVALUATION_ATTR
from cnnlab.train import data
from tests.studies import TINY

FUZZ = settings(deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
                database=None)

# -- values ------------------------------------------------------------------------------------

LIMITS = [-(2**63), -1, 0, 1, 2, 3, 20, 21, 28, 29, 200, 201, 4096, 4097, 10_000, 10_001,
          50_000, 50_001, 65535, 65536, 2**31, 2**32 - 1, 2**32, 100_000_000, 100_000_001,
          2**63 - 1]
ODD_TEXT = st.one_of(
    st.sampled_from(["", " ", "it's", 'say "hi"', "back\\slash", "new\nline", "tab\there",
                     "ünïcødé", "名前", "a/b", "../up", "x" * 201, "x" * 300, "%s{}", "\x00",
                     "valid", "same", "tpe", "random", "median", "none", "val_loss",
                     "minimize", "maximize", "rmsprop", "adam", "nope"]),
    st.text(max_size=40))
NUMBERS = st.one_of(st.sampled_from(LIMITS), st.integers(-5, 40),
                    st.sampled_from([0.0, -0.5, 0.5, 1.5, 1e-300, 1e300, math.inf, -math.inf,
                                     math.nan]))
SCALARS = st.one_of(NUMBERS, st.booleans(), ODD_TEXT)
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=4),
                   st.dictionaries(st.sampled_from(["low", "high", "step", "log", "x"]),
                                   SCALARS, max_size=4))

BASE = tomllib.loads(TINY.replace("n_trials = 3", "n_trials = 1").replace(
    "epochs = 2", "epochs = 1").replace("train_size = 512", "train_size = 64").replace(
    "val_size = 256", "val_size = 32"))
KEYS = [("name",), ("description",), ("seed",), ("n_trials",), ("timeout",), ("metric",),
        ("direction",), ("max_params",), ("allow_repeats",), ("colour",),
        ("sampler",), ("sampler", "name"), ("sampler", "n_startup_trials"),
        ("sampler", "multivariate"), ("sampler", "gamma"), ("sampler", "warmup"),
        ("pruner",), ("pruner", "name"), ("pruner", "n_warmup_steps"), ("pruner", "lower"),
        ("training",), ("training", "epochs"), ("training", "batch_size"),
        ("training", "optimizer"), ("training", "learning_rate"), ("training", "train_size"),
        ("training", "val_size"), ("training", "dropout"),
        ("search",), ("search", "n_conv"), ("search", "filters"), ("search", "kernel_size"),
        ("search", "strides"), ("search", "padding"), ("search", "n_dense"),
        ("search", "dense_units"), ("search", "conv1"), ("search", "conv2", "filters"),
        ("search", "conv9", "strides"), ("search", "width")]


@st.composite
def study_files(draw) -> bytes:
    """A study file: the tiny study with one to three keys set to anything."""
    doc = tomllib.loads(tomli_w.dumps(BASE))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(KEYS))
        node = doc
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        node[path[-1]] = draw(VALUES)
    text = tomli_w.dumps(doc).encode()
    if draw(st.integers(0, 19)) == 0:
        text = b"\xff\xfe" + text  # Not UTF-8.
    return text


# -- running a command ------------------------------------------------------------------------


def _call(argv: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(argv)  # Any exception here is a traceback, and fails the test.
    out, err = capsys.readouterr()
    return code, out, err


def _refused_cleanly(code: int, err: str, folder: Path, before: set[Path]) -> None:
    assert code == 2, err
    assert err.count("\n") == 1 and err.startswith("cnnlab") and "Traceback" not in err, err
    assert set(folder.rglob("*")) == before, "a refused command wrote files"


@contextlib.contextmanager
def _scratch(monkeypatch) -> Path:
    with tempfile.TemporaryDirectory() as name, monkeypatch.context() as mp:
        folder = Path(name)
        mp.chdir(folder)
        for var in ("MLFLOW_TRACKING_URI", "CNNLAB_STORAGE"):
            mp.delenv(var, raising=False)
        yield folder


def _cheap(text: bytes) -> bool:
    """Whether `study run` on this file trains little enough for the test (one trial of at
    most 3 epochs on at most 2,048 images)."""
    doc = tomllib.loads(text.decode())
    training = doc.get("training", {})
    small = lambda v: isinstance(v, int) and not isinstance(v, bool) and v <= 2048  # noqa: E731
    return (training.get("epochs", 10) in (1, 2, 3) and small(training.get("train_size"))
            and small(training.get("val_size")) and doc.get("n_trials") == 1
            and doc.get("timeout") is None)


QUOTES = "\\'\"`"
"""Backslash, single and double quote, backtick: what a query language quotes or escapes with."""
QUOTED_NAMES = st.text(alphabet="a -" + QUOTES, min_size=1, max_size=8)
"""Names made of quotes and backslashes, mixed."""


def named_study(name: str, seed: int = 5) -> bytes:
    doc = tomllib.loads(tomli_w.dumps(BASE))
    doc["name"], doc["seed"] = name, seed
    return tomli_w.dumps(doc).encode()


@st.composite
def named_study_files(draw) -> bytes:
    """The tiny study, valid but for what matters at run time: its name and its seed."""
    return named_study(draw(st.one_of(ODD_TEXT, QUOTED_NAMES, st.text(min_size=1, max_size=250))),
                       draw(st.sampled_from([v for v in LIMITS if v >= -1])))


@pytest.mark.slow
@pytest.mark.parametrize("files", ["any_key", "names"])
def test_study_files_are_accepted_and_work_or_refused_in_one_line(files, fuzz_examples,
                                                                  monkeypatch, capsys) -> None:
    """A name that runs, and holds a quote or a backslash, goes on to every query cnnlab
    makes of the stores for a study: a second `study run` (the study is finished: its runs
    reconciled with Optuna, its evaluation records looked up), `compare` and `evaluate`, and a
    third `study run`, refused. Names of quotes and backslashes are tried first (``a\\\\``
    once ended in a traceback from MLflow's filter parser)."""
    examples = fuzz_examples if files == "any_key" else max(fuzz_examples // 2, 1)
    names = files == "names"

    @settings(FUZZ, max_examples=examples)
    @given(text=study_files() if not names else named_study_files())
    @(example(text=named_study("a\\\\")) if names else lambda f: f)
    @(example(text=named_study("'a\\\" `b\\'")) if names else lambda f: f)
    def check(text: bytes) -> None:
        with _scratch(monkeypatch) as folder:
            file = folder / "study.toml"
            file.write_bytes(text)
            before = set(folder.rglob("*"))
            code, out, err = _call(["study", "check", str(file)], capsys)
            if code != 0:
                _refused_cleanly(code, err, folder, before)
                return
            assert "the file is valid; nothing was written." in out
            if not _cheap(text):
                return
            storage = f"sqlite:///{folder / 'optuna.db'}"
            tracking = f"sqlite:///{folder / 'mlruns' / 'mlflow.db'}"
            code, out, err = _call(["study", "run", str(file), "--storage", storage,
                                    "--tracking-uri", tracking], capsys)
            if code == 2:
                _refused_cleanly(code, err, folder, before)
                return
            assert code in (0, 1), err  # 1: the space ran out of trainable draws, said so.
            import optuna

            name = tomllib.loads(text.decode())["name"]
            study = optuna.load_study(study_name=name, storage=storage)
            assert study.trials, "a study that ran has trials"
            assert "MLflow: experiment" in out
            if not names or code != 0 or not set(name) & set(QUOTES):
                return  # The first run made the queries that need no evaluation; cheap.
            stores = ["--storage", storage, "--tracking-uri", tracking]
            code, out, err = _call(["study", "run", str(file), *stores], capsys)
            assert code == 0 and "is finished" in out, err
            code, out, err = _call(["compare", *stores, "--", name], capsys)
            assert code == 0 and "Traceback" not in err, err
            code, out, err = _call(["evaluate", *stores, "--", name], capsys)
            assert code == 0, err
            study = optuna.load_study(study_name=name, storage=storage)
            assert EVALUATION_ATTR in study.user_attrs
            code, out, err = _call(["study", "run", str(file), *stores], capsys)
            assert code == 2 and "evaluated on the test set" in err, err

    check()


# -- command lines ------------------------------------------------------------------------------

FLAGS = ["--conv", "--dense", "--input", "--epochs", "--batch-size", "--train-size",
         "--val-size", "--seed", "--data-dir", "--experiment", "--run-name", "--tracking-uri",
         "--storage", "--n-trials", "--timeout", "--workers", "--from-study", "--trial",
         "--max-params", "--complete", "--sort", "--top", "--state", "--columns", "--csv",
         "--port", "--host", "--allowed-hosts", "--help", "--bogus"]
TOKENS = st.one_of(st.sampled_from(FLAGS), ODD_TEXT,
                   st.sampled_from([str(v) for v in LIMITS] + ["8:3", "8:3:2:same", "32:29",
                                                               "0:3", "28,28,1", "1x1x1"]))


@st.composite
def command_lines(draw) -> list[str]:
    command = draw(st.sampled_from([["shapes"], ["train"], ["study", "run"], ["study", "check"],
                                    ["evaluate"], ["compare"], ["ui"], ["study"], [], ["fly"]]))
    return command + draw(st.lists(TOKENS, max_size=6))


@pytest.mark.slow
def test_command_lines_are_accepted_or_refused_in_one_line(fuzz_examples, monkeypatch,
                                                           capsys) -> None:
    """Every command, any arguments, against empty stores. Commands that would train or serve
    get a guard appended (argparse keeps the last value): a tiny `train`, a study file that
    does not exist for `study run`, a store that does not exist for `ui`."""

    @settings(FUZZ, max_examples=fuzz_examples * 4)
    @given(argv=command_lines())
    def check(argv: list[str]) -> None:
        with _scratch(monkeypatch) as folder:
            guard = {"train": ["--epochs", "1", "--train-size", "64", "--val-size", "32",
                               "--conv", "2:3:2", "--dense", "4"],
                     "ui": ["--tracking-uri", f"sqlite:///{folder / 'none' / 'mlflow.db'}"]}
            argv = argv + guard.get(argv[0] if argv else "", [])
            if argv[:2] == ["study", "run"]:
                argv = argv[:2] + [str(folder / "missing.toml")] + argv[2:]
            before = set(folder.rglob("*"))
            code, out, err = _call(argv, capsys)
            if code == 0:
                return  # A working result: help, a table, a tiny tracked run.
            _refused_cleanly(code, err, folder, before) if "--help" not in argv else None

    check()


# -- data folders -------------------------------------------------------------------------------


def _idx(magic: bytes, dims: list[int], body: bytes) -> bytes:
    return magic + b"".join(d.to_bytes(4, "big") for d in dims) + body


@st.composite
def idx_files(draw) -> bytes:
    magic = draw(st.sampled_from([b"\0\0\x08\x03", b"\0\0\x08\x01", b"\0\0\x09\x03",
                                  b"\0\0\x08\x05", b"\x1f\x8b\x08\x00", b"", b"\0"]))
    dims = draw(st.lists(st.sampled_from([0, 1, 28, 60_000, 2**31, 2**32 - 1]), max_size=4))
    body = draw(st.binary(max_size=64))
    return _idx(magic, dims, body)


@st.composite
def npz_files(draw) -> bytes:
    dtype = draw(st.sampled_from(["uint8", "int64", "float32", "float64", "bool", "<U1"]))
    # Full-size arrays in uint8 only (47 MB): a wrong dtype is refused before sizes are read.
    shapes = [(10, 28, 28), (60000, 28), (0,), ()] + ([(60000, 28, 28)] if dtype == "uint8"
                                                       else [])
    shape = draw(st.sampled_from(shapes))
    labels = draw(st.sampled_from(["int", "float", "nan", "negative", "ten", "2d", "missing"]))
    size = int(np.prod(shape))
    x = np.zeros(shape, dtype=dtype) if size < 10**8 else None
    n = shape[0] if shape else 1
    y = {"int": np.zeros(n, np.int64), "float": np.zeros(n, np.float32),
         "nan": np.full(n, np.nan), "negative": np.full(n, -1), "ten": np.full(n, 10),
         "2d": np.zeros((n, 1), np.int64), "missing": None}[labels]
    arrays = {"x_train": x, "x_test": x, "y_train": y, "y_test": y}
    buffer = io.BytesIO()
    np.savez(buffer, **{k: v for k, v in arrays.items() if v is not None})
    return buffer.getvalue()


@pytest.mark.slow
def test_data_folders_are_read_or_refused_in_one_sentence(fuzz_examples, monkeypatch) -> None:
    @settings(FUZZ, max_examples=fuzz_examples * 2)
    @given(kind=st.sampled_from(["idx", "idx.gz", "npz"]), images=idx_files(),
           labels=idx_files(), npz=npz_files())
    def check(kind: str, images: bytes, labels: bytes, npz: bytes) -> None:
        data._raw_train.cache_clear() if hasattr(data._raw_train, "cache_clear") else None
        with tempfile.TemporaryDirectory() as name:
            folder = Path(name)
            if kind == "npz":
                (folder / "mnist.npz").write_bytes(npz)
            else:
                for file, raw in (("train-images-idx3-ubyte", images),
                                  ("train-labels-idx1-ubyte", labels)):
                    if kind == "idx.gz":
                        (folder / f"{file}.gz").write_bytes(gzip.compress(raw))
                    else:
                        (folder / file).write_bytes(raw)
            before = set(folder.rglob("*"))
            try:
                splits = data.load_mnist(folder, train_size=16, val_size=16)
            except data.DataError as err:
                assert "\n" not in str(err) and str(err), err
            else:  # Well-formed: images in [0, 1] of the right shape, integer labels 0-9.
                for split in (splits.train, splits.validation):
                    assert split.x.shape == (16, 28, 28, 1) and split.x.dtype == np.float32
                    assert np.isfinite(split.x).all() and 0 <= split.x.min() <= 1
                    assert split.y.dtype == np.int64 and set(split.y) <= set(range(10))
            assert set(folder.rglob("*")) == before

    check()


def test_a_float_or_nan_label_file_is_refused(tmp_path: Path) -> None:
    x = np.zeros((60000, 28, 28), np.uint8)
    for y in (np.full(60000, np.nan), np.zeros(60000, np.float32)):
        np.savez(tmp_path / "mnist.npz", x_train=x, y_train=y, x_test=x[:10000],
                 y_test=np.zeros(10000, np.int64))
        with pytest.raises(data.DataError, match="labels must be integers 0-9"):
            data.load_mnist(tmp_path, train_size=16, val_size=16)
        if hasattr(data._raw_train, "cache_clear"):
            data._raw_train.cache_clear()


@pytest.fixture
def fuzz_examples(request) -> int:
    return request.config.getoption("--fuzz-examples")


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
