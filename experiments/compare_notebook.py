"""The notebook's last exercise, answered from the stores: how do validation accuracy and the
parameter count change with filters, kernel size, stride and padding?

    python experiments/compare_notebook.py [STUDY ...] [--storage URL] [--tracking-uri URI]
                                           [--out DIR]

Default studies: filters-kernels and strides-padding (run them first with `cnnlab study run`),
or whichever studies are named. Prints groupby tables and writes one figure,
``notebook_comparison.png``, to --out (default: the current directory).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
from matplotlib.figure import Figure

from cnnlab.compare import study_names, trials_frame

FACTORS = ("filters", "kernel_size", "strides", "padding")


def per_layer_long(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (trial, conv layer): the layer's filters, kernel, stride and padding beside
    the trial's score and size -- the shape groupby wants."""
    layers = sorted({int(c[4:].split("_")[0]) for c in frame.columns
                     if c.startswith("conv") and c.endswith("_filters")})
    parts = []
    for i in layers:
        columns = {f"conv{i}_{f}": f for f in FACTORS}
        present = [c for c in columns if c in frame.columns]
        part = frame[["study", "trial", "value", "n_params", *present]].rename(columns=columns)
        part = part.dropna(subset=["filters"]).assign(layer=i)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def tables(frame: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Mean and best validation accuracy and the median parameter count, per choice."""
    complete = frame[frame["state"] == "COMPLETE"]
    long = per_layer_long(complete)
    out = {}
    for factor in FACTORS:
        if factor in long:
            out[factor] = (long.groupby(["layer", factor], observed=True)
                           .agg(trials=("trial", "nunique"), mean_val_accuracy=("value", "mean"),
                                best_val_accuracy=("value", "max"),
                                median_params=("n_params", "median"))
                           .round(4))
    return out


def figure(frame: pd.DataFrame) -> Figure:
    complete = frame[frame["state"] == "COMPLETE"]
    long = per_layer_long(complete)
    fig = Figure(figsize=(12, 8), layout="constrained")
    axes = fig.subplots(2, 2)
    for ax, factor in zip(axes.flat, FACTORS, strict=True):
        if factor not in long:
            ax.set_visible(False)
            continue
        for value, group in long.groupby(factor, observed=True):
            ax.scatter(group["n_params"], group["value"], label=f"{factor} = {value}", alpha=0.7)
        ax.set_xscale("log")
        ax.set_xlabel("parameters")
        ax.set_ylabel("validation accuracy")
        ax.set_title(f"by each layer's {factor}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Validation accuracy against parameter count: "
                 + ", ".join(sorted(complete["study"].astype(str).unique())))
    return fig


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="*")
    parser.add_argument("--storage")
    parser.add_argument("--tracking-uri")
    parser.add_argument("--out", type=Path, default=Path("."))
    args = parser.parse_args(argv)
    names = args.studies or [n for n in study_names(args.storage)
                             if n in ("filters-kernels", "strides-padding")]
    if not names:
        parser.error("no studies named and neither filters-kernels nor strides-padding has run; "
                     "run them with `cnnlab study run experiments/filters_kernels.toml`.")
    frame = trials_frame(names, storage=args.storage, tracking_uri=args.tracking_uri)
    print(frame.groupby(["study", "state"], observed=True).size().rename("trials").to_string())
    for factor, table in tables(frame).items():
        print(f"\nValidation accuracy and size by each conv layer's {factor}:")
        print(table.to_string())
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "notebook_comparison.png"
    figure(frame).savefig(path, dpi=100)
    print(f"\nwrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
