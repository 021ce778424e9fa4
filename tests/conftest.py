"""Shared fixtures: the real MNIST folder and throwaway MLflow stores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPO.parent / "shared" / "data" / "mnist"
# Every test, module-scoped fixtures included, reads the real MNIST from this folder.
os.environ.setdefault("CNNLAB_MNIST_DIR", str(SHARED_MNIST))


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST IDX folder: $CNNLAB_MNIST_DIR, else ../shared/data/mnist."""
    folder = Path(os.environ.get("CNNLAB_MNIST_DIR") or SHARED_MNIST)
    found = any((folder / name).exists() for name in ("train-images-idx3-ubyte.gz", "mnist.npz"))
    if not found:
        pytest.fail(f"the tests need the real MNIST files; set CNNLAB_MNIST_DIR "
                    f"(looked in {folder}).")
    return folder


@pytest.fixture
def tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SQLite MLflow store in a temp dir, made the current one for this test."""
    import mlflow

    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    # Runs' artifacts and anything relative land in the temp dir, never in the repository.
    monkeypatch.chdir(tmp_path)
    yield uri
    while mlflow.active_run() is not None:
        mlflow.end_run()
    mlflow.set_tracking_uri(None)
    mlflow.set_registry_uri(None)  # cnnlab keeps the registry in the tracking store.
    os.environ.pop("MLFLOW_REGISTRY_URI", None)


HEAVIEST_FIRST = (
    "tests/study/test_faults.py",
    "tests/study/test_interrupts.py",
    "tests/study/test_study.py",
    "tests/tracking/test_store_faults.py",
    "tests/study/test_script_study.py",
    "tests/study/test_tracking_server.py",
    "tests/results/test_evaluate.py",
    "tests/study/test_front_study.py",
    "tests/search/test_search.py",
    "tests/results/test_compare_ui.py",
    "tests/test_console.py",
    "tests/study/test_rungs.py",
    "tests/test_anytime.py",
    "tests/study/test_edited.py",
    "tests/study/test_postgres.py",
)
"""The test files that took longest (their tests' wall seconds summed, ``--cpu-report``, at
issue 32's third stop; docs/development.md), longest first."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Test files in the order that keeps the processes busy to the end (pytest-xdist hands
    out one file at a time, in this order, with ``--no-loadscope-reorder``): the longest
    known first, then the other files by how many slow tests they hold, files of quick tests
    last, to fill in beside the long ones. Within a file the order is kept."""
    slow: dict[str, int] = {}
    for item in items:
        slow[item.nodeid.split("::")[0]] = slow.get(item.nodeid.split("::")[0], 0) + (
            item.get_closest_marker("slow") is not None)

    def rank(item: pytest.Item) -> tuple[int, int]:
        path = item.nodeid.split("::")[0]
        known = HEAVIEST_FIRST.index(path) if path in HEAVIEST_FIRST else len(HEAVIEST_FIRST)
        return known, -slow[path]

    items.sort(key=rank)  # Stable: the collection's order among equals.


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    """With ``--cpu-report FILE``: a line per test appended to FILE (tab-separated: the test,
    its wall seconds, the CPU seconds of the test's process and of the processes it started
    and waited for), from ``getrusage``; each xdist worker appends its own tests."""
    report = item.config.getoption("--cpu-report")
    if report is None:
        yield
        return
    import resource
    import time

    def cpu(who: int) -> float:
        usage = resource.getrusage(who)
        return usage.ru_utime + usage.ru_stime

    wall, own, children = time.monotonic(), cpu(resource.RUSAGE_SELF), \
        cpu(resource.RUSAGE_CHILDREN)
    yield
    line = (f"{item.nodeid}\t{time.monotonic() - wall:.2f}\t"
            f"{cpu(resource.RUSAGE_SELF) - own:.2f}\t"
            f"{cpu(resource.RUSAGE_CHILDREN) - children:.2f}\n")
    with open(report, "a") as out:
        out.write(line)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--cpu-report", metavar="FILE",
                     help="append each test's wall and CPU seconds (its own and its child "
                          "processes') to FILE, a tab-separated line per test")
    parser.addoption("--fuzz-examples", type=int, default=20,
                     help="examples per property in tests/test_fuzz.py (default 20; CI's)")
