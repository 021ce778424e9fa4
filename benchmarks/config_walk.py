"""The walk from ``cnnlab study run`` to a trial's MLflow run: how many of cnnlab's functions a
study's configuration passes through before its first trial's run is opened, and how often the
walk climbs back up the layers. Counted, not timed.

    python benchmarks/config_walk.py [--before REV]

Runs ``cnnlab study run`` of a one-trial study (1 epoch on 512 images, as the tests' ``TINY``)
in a fresh process with a profiling hook (``sys.setprofile``) that watches every call into a
cnnlab function from the start of the command until MLflow is first asked to open a run while
the trial's objective is on the stack (``mlflow.start_run`` or ``MlflowClient.create_run``: the
trial's run). It prints

- **stops**: the distinct cnnlab functions entered on the way (a function called many times
  counts once; comprehensions and lambdas are their function's);
- **climbs**: the distinct (caller, callee) pairs where a function calls one of a higher layer
  than its own (``LAYERS`` of ``tests/test_architecture.py``: errors, names, spec, train,
  search, tracking, study, results, cli), which only a callback or hook handed down can do;
- **modules**: the distinct cnnlab modules on the way.

``--before REV`` counts cnnlab at that git revision too (its files by ``git archive``), in the
same run. The count depends on the code only, not on the machine or its load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

CONFIGURATION = {"StudyConfig", "TrialSpec", "TrainConfig", "SearchSpace", "Fidelity", "Stores"}
"""What a study's configuration is made of and handed down as (classes of cnnlab's)."""
STUDY = """
name = "walk"
seed = 5
n_trials = 1

[sampler]
name = "random"

[pruner]
name = "none"

[training]
epochs = 1
train_size = 512
val_size = 256

[search]
n_conv = [1, 2]
filters = [4, 8]
kernel_size = [3, 5]
strides = [1, 2]
padding = ["valid", "same"]
dense_units = [16, 32]
"""


def child(tmp: str, source: str) -> None:
    sys.path.insert(0, source)
    from cnnlab import cli

    assert cli.__file__.startswith(source), (cli.__file__, source)  # The code to count.
    stops: dict[str, None] = {}  # The configuration's stops, in the order first reached.
    climbs: list[tuple[str, str]] = []
    state: dict = {"on": False, "done": False, "last": None}

    def name(frame) -> str:
        return f"{frame.f_globals['__name__']}.{frame.f_code.co_qualname}"

    def carries_configuration(frame) -> bool:
        code = frame.f_code
        arguments = code.co_varnames[:code.co_argcount + code.co_kwonlyargcount]
        return any(type(frame.f_locals.get(a)).__name__ in CONFIGURATION and
                   type(frame.f_locals.get(a)).__module__.startswith("cnnlab.")
                   for a in arguments)

    def hook(frame, event, arg) -> None:
        if event != "call" or state["done"]:
            return
        code, module = frame.f_code, frame.f_globals.get("__name__", "")
        if code.co_name == "cmd_study_run" and module == "cnnlab.cli":
            state["on"] = True
        if not state["on"]:
            return
        if code.co_name in ("start_run", "create_run") and module.startswith("mlflow"):
            up = frame.f_back
            while up is not None:
                if up.f_globals.get("__name__") == "cnnlab.study.objective":
                    state["done"] = True
                    return
                up = up.f_back
            return
        if not module.startswith("cnnlab.") or code.co_name.startswith("<") or \
                not carries_configuration(frame):
            return
        here = name(frame)
        if here in stops:
            return
        last = state["last"]
        if last is not None:  # A climb: the stop before has returned, the walk goes on above.
            up, on_stack = frame.f_back, False
            while up is not None and not on_stack:
                on_stack = up is last
                up = up.f_back
            if not on_stack:
                climbs.append((name(last), here))
        stops.setdefault(here)
        state["last"] = frame

    path = os.path.join(tmp, "walk.toml")
    with open(path, "w") as f:
        f.write(STUDY)
    os.chdir(tmp)
    sys.setprofile(hook)
    try:
        code = cli.main(["study", "run", path, "--storage", f"sqlite:///{tmp}/optuna.db",
                         "--tracking-uri", f"sqlite:///{tmp}/mlruns/mlflow.db"])
    finally:
        sys.setprofile(None)
    if code != 0 or not state["done"]:
        sys.exit(f"the study ended with {code} before a trial's run was opened")
    print(json.dumps({"stops": list(stops), "climbs": climbs,
                      "modules": sorted({s.rsplit(".", 1)[0] for s in stops})}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", help="a git revision of cnnlab to count beside this one")
    parser.add_argument("--verbose", action="store_true", help="list each climb")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    here = os.path.dirname(os.path.abspath(__file__))
    sources = {"cnnlab": os.path.dirname(here)}
    with tempfile.TemporaryDirectory() as tmp:
        if args.before:
            import revision

            sources[f"cnnlab@{args.before}"] = revision.extract(args.before,
                                                                os.path.join(tmp, "src"))
        for label, source in sources.items():
            work = tempfile.mkdtemp(dir=tmp)
            result = subprocess.run([sys.executable, __file__, "--child", work, source],
                                    capture_output=True, text=True)
            if result.returncode != 0:
                sys.exit(f"{label} failed:\n{result.stderr[-3000:]}")
            walk = json.loads(result.stdout.strip().splitlines()[-1])
            print(f"{label:<18} stops {len(walk['stops']):>4}  climbs {len(walk['climbs']):>3}  "
                  f"modules {len(walk['modules']):>3}", flush=True)
            if args.verbose:
                climbs = dict(walk["climbs"][::-1])
                for stop in walk["stops"]:
                    print(f"    {stop}" + (" (climbed back up)" if stop in climbs.values()
                                           else ""))


if __name__ == "__main__":
    main()
