"""The package's shape: layers that import one way, no import cycle, a framework-free spec.

Every ``import`` in ``cnnlab/`` is read from the source (those inside functions too), so that an
import placed in a function to hide a cycle is found as well.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cnnlab"
LAYERS = ["errors", "names", "spec", "train", "search", "tracking", "study", "results", "cli"]
"""cnnlab's layers, lowest first: a module imports from its own layer and the ones before it."""
FRAMEWORKS = ("tensorflow", "keras", "mlflow", "optuna", "optuna_integration")


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name: str, path: Path) -> set[str]:
    """The cnnlab modules that ``name`` imports, anywhere in its source (but for type checkers
    only, under ``if TYPE_CHECKING:``)."""
    modules = _modules()
    out = set()
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        out.update(t for t in targets if t in modules and t.startswith("cnnlab"))
    out.discard(name)
    return out


def _layer(module: str) -> int:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 else -1


def _graph() -> dict[str, set[str]]:
    return {name: _imports(name, path) for name, path in _modules().items()}


def test_layers_import_downwards_only():
    upward = [f"{m} imports {t}" for m, targets in _graph().items() if m != "cnnlab"
              for t in sorted(targets) if t != "cnnlab" and _layer(t) > _layer(m)]
    assert not upward, upward


def test_there_is_no_import_cycle():
    graph = _graph()
    graph.pop("cnnlab")  # The public API re-exports from everywhere and is imported by none.
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt == "cnnlab" or nxt.count(".") == 1 and nxt.split(".")[1] in LAYERS[2:-1] \
                    and nxt not in graph:
                continue
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, cycles


def test_the_spec_layer_imports_no_framework():
    spec = [m for m in _modules() if m.startswith("cnnlab.spec")]
    code = (f"import sys; import {', '.join(spec)}; "
            f"found = sorted(m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r}); "
            "assert not found, found")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr


def test_every_layer_is_a_package_of_the_list():
    layers = {p.name for p in PACKAGE.iterdir() if p.is_dir() and not p.name.startswith("_")}
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert layers | modules == set(LAYERS)


def test_the_public_api_resolves_and_importing_it_imports_no_framework():
    code = ("import sys, cnnlab; "
            f"found = sorted(m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r}); "
            "assert not found, found; "
            "missing = [n for n in cnnlab.__all__ if getattr(cnnlab, n, None) is None]; "
            "assert not missing, missing; "
            "from cnnlab import trials_frame, run_study, NOTEBOOK_CNN; "
            "assert NOTEBOOK_CNN.layer_table().total_params == 361_322")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_a_study_s_configuration_visits_each_module_once_on_its_way_to_a_trial(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """From the command line to a trained trial, the configuration is handed down: the cnnlab
    modules on the call stack when a trial's network is fitted appear once each, in layer
    order from the top (no module is re-entered after another one was): today cnnlab.cli,
    cnnlab.study.runner, cnnlab.study.objective, then cnnlab.train.fit."""
    import inspect

    from cnnlab.train import fit
    from tests.studies import TINY, Stores

    stacks: list[list[str]] = []
    real = fit.train

    def spy(*args: Any, **kwargs: Any) -> Any:
        frames = reversed(inspect.stack()[1:])
        names = [f.frame.f_globals.get("__name__", "") for f in frames]
        stacks.append([n for n in names if n.startswith("cnnlab.")])
        return real(*args, **kwargs)

    monkeypatch.setattr(fit, "train", spy)
    monkeypatch.chdir(tmp_path)
    stores = Stores(tmp_path, TINY.replace("n_trials = 3", "n_trials = 1"))
    assert stores.run() == 0
    assert stacks, "no trial was trained"
    path = [m for i, m in enumerate(stacks[0]) if i == 0 or stacks[0][i - 1] != m]
    assert len(path) == len(set(path)), path
    # The spy stands in for cnnlab.train.fit.train: its caller is the last module on the way.
    assert path[0] == "cnnlab.cli" and path[-1] == "cnnlab.study.objective", path
    layers = [_layer(m) for m in path]
    assert layers == sorted(layers, reverse=True), path


OPTUNA_PRIVATE = ("_storage", "_study_id", "_trial_id", "_thread_local", "_stop_flag",
                  "_cached_frozen_trial")
"""Private attributes of Optuna's studies and trials (what ``study.optimize`` keeps to itself)."""


def test_the_study_loop_uses_no_private_optuna_attribute_nor_optuna_s_messages():
    """The study and its records (``cnnlab/study/``, ``cnnlab/tracking/``) reach Optuna through
    its public API: no private attribute of a study or trial is read, and no error of Optuna's
    is recognised by its words (a lost trial is found by its state)."""
    found = []
    for folder in ("study", "tracking"):
        for path in sorted((PACKAGE / folder).glob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Attribute) and node.attr in OPTUNA_PRIVATE:
                    found.append(f"{path.name}:{node.lineno} .{node.attr}")
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and \
                        node.value.startswith(("Cannot tell a ", "Should not reach")):
                    found.append(f"{path.name}:{node.lineno} {node.value!r}")
    assert not found, found


MLFLOW_WRITE = re.compile(r"^(log_|set_|create_|delete_|restore_|update_|rename_|transition_|"
                          r"copy_|start_run$|end_run$|register_model$|autolog$)")
"""How the names of MLflow's writing functions and client methods begin."""


def test_only_the_tracking_layer_writes_to_mlflow():
    """Every MLflow write (a run, a metric, a tag, an artifact, a registered model, the store's
    address) is made in ``cnnlab/tracking/``: no other module calls a function of ``mlflow`` or
    a method of ``MlflowClient`` that writes. Issue 32: they were spread over study/, tracking/
    and results/."""
    import mlflow

    writes = {name for name in {*dir(mlflow), *dir(mlflow.MlflowClient)}
              if MLFLOW_WRITE.match(name)}
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "tracking" in path.relative_to(PACKAGE).parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr in writes:
                found.append(f"{path.relative_to(PACKAGE)}:{node.lineno} "
                             f"{ast.unparse(node.func)}")
    assert not found, found
