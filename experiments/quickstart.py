"""Quickstart as a study script: the search of quickstart.toml written in Python, Optuna-style.

    cnnlab study run experiments/quickstart.py        (or: python experiments/quickstart.py)
    cnnlab study check experiments/quickstart.py      (or: python experiments/quickstart.py check)

The same study as experiments/quickstart.toml, under its own name: the same settings, and a
search function that asks Optuna for the same parameters in the same order, so that the same
seed draws the same trials. Where a study file lists choices, a script can branch and loop:
the function below is the place to make a choice depend on another.
"""

import sys

import cnnlab
from cnnlab import Architecture, ConvLayer


def search(trial):
    """One trial's network, drawn by Optuna: 1 to 3 conv layers, each with its own filters,
    kernel size, strides and padding and batch normalization, then one Dense layer. The
    parameter names are the ones a study file's paths give (conv2_strides for conv2.strides),
    so that `cnnlab compare` lines this study up with its TOML twin."""
    layers = []
    for i in range(1, trial.suggest_categorical("n_conv", [1, 2, 3]) + 1):
        layers.append(ConvLayer(
            filters=trial.suggest_categorical(f"conv{i}_filters", [8, 16, 32]),
            kernel_size=trial.suggest_categorical(f"conv{i}_kernel_size", [3, 5]),
            strides=trial.suggest_categorical(f"conv{i}_strides", [1, 2]),
            padding=trial.suggest_categorical(f"conv{i}_padding", ["valid", "same"]),
            batchnorm=True))
    units = trial.suggest_categorical("dense1_units", [32, 64, 128])
    return Architecture(conv=tuple(layers), dense=(units,))


study = cnnlab.StudyScript(
    search,
    name="quickstart-script",
    description="quickstart.toml as a script: depth, filters, kernel sizes, strides, padding.",
    seed=0,
    n_trials=10,
    max_params=500_000,                    # Anything bigger is refused before it is built.
    sampler={"name": "tpe", "n_startup_trials": 4},      # Random architectures first, then TPE.
    pruner={"name": "median", "n_startup_trials": 3,     # Prune once three trials finished...
            "n_warmup_steps": 2},                        # ...never on the first epoch.
    training={"epochs": 3, "batch_size": 128, "optimizer": "adam", "learning_rate": 0.003,
              "schedule": "cosine", "warmup": 0.1, "bn_momentum": 0.9,  # The recipe.
              "train_size": 10_000, "val_size": 10_000},
)

if __name__ == "__main__":
    sys.exit(cnnlab.study_main(__file__))
