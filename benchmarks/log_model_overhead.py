"""Per-trial overhead of logging a model to MLflow: with and without cnnlab's pinned requirements.

    python benchmarks/log_model_overhead.py [--repeats 3]

MLflow infers a model's pip requirements by loading it in a subprocess unless they are given.
cnnlab gives them (``cnnlab.tracking.runs.model_pip_requirements``); this prints the median time of
``mlflow.keras.log_model`` both ways, side by side, and their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    import mlflow
    import numpy as np
    from mlflow.models import infer_signature

    from cnnlab.spec.architecture import NOTEBOOK_CNN
    from cnnlab.tracking.runs import model_pip_requirements
    from cnnlab.train.model import build_model

    model = build_model(NOTEBOOK_CNN, seed=0)
    x = np.zeros((2, 28, 28, 1), np.float32)
    signature = infer_signature(x, model.predict(x, verbose=0))
    with tempfile.TemporaryDirectory() as tmp:
        mlflow.set_tracking_uri(f"sqlite:///{tmp}/mlflow.db")
        mlflow.set_experiment("bench")
        times: dict[str, list[float]] = {"inferred": [], "pinned": []}
        for _ in range(args.repeats):
            for label, reqs in (("inferred", None), ("pinned", model_pip_requirements())):
                with mlflow.start_run():
                    start = time.perf_counter()
                    mlflow.keras.log_model(model, name="model", signature=signature,
                                           pip_requirements=reqs)
                    times[label].append(time.perf_counter() - start)
    inferred, pinned = (statistics.median(times[k]) for k in ("inferred", "pinned"))
    print(f"log_model of the notebook CNN, median of {args.repeats}:")
    print(f"  requirements inferred by MLflow: {inferred:.2f} s")
    print(f"  requirements given by cnnlab:    {pinned:.2f} s")
    print(f"  ratio: {inferred / pinned:.0f}x")


if __name__ == "__main__":
    main()
