"""Confirmed networks of several studies against one study's notebook-CNN baseline, seed by seed.

README's "How small can it be and as good?" table:

    python experiments/against_baseline.py recipe-five-percent recipe-smallest

``cnnlab confirm`` re-trains a study's leaders over seeds derived from the study's seed, and with
``baseline = true`` the notebook's CNN over the same seeds. ``recipe_smallest.toml`` has the seed of
``recipe_five_percent.toml`` and no baseline of its own, so its confirmed networks share the
seeds of the five-percent study's notebook CNN; this script pairs them. For every confirmed
entry of the named studies (the record ``cnnlab confirm`` keeps on each Optuna study) it prints
the mean over its seeds with the 95% Student-t interval (``cnnlab.spec.ranking.summarize``, as
``cnnlab confirm`` prints it) and its score minus the baseline's, seed by seed (mean and t
interval of the differences). The baseline is the first study's that has one, or
``--baseline-study``. A confirmed entry whose seeds are not the baseline's is refused by name:
differences between different seeds are not paired.
"""

from __future__ import annotations

import argparse
import sys

import optuna

from cnnlab.names import CONFIRMED_ATTR
from cnnlab.results.confirm import BASELINE, paired_difference
from cnnlab.spec.ranking import summarize


def records(storage: str, names: list[str]) -> dict[str, dict]:
    """Each named study's confirmation record, in order; SystemExit naming a study without one."""
    found = {}
    for name in names:
        try:
            study = optuna.load_study(study_name=name, storage=storage)
        except KeyError:
            raise SystemExit(f"no study '{name}' in {storage}.") from None
        record = study.user_attrs.get(CONFIRMED_ATTR)
        if not record:
            raise SystemExit(f"study '{name}' has no confirmation: run cnnlab confirm {name}.")
        found[name] = record
    return found


def table(found: dict[str, dict], baseline_study: str | None = None) -> list[str]:
    """The lines: the baseline, then every confirmed entry with its paired difference."""
    owners = [baseline_study] if baseline_study else [n for n in found if BASELINE in
                                                       found[n]["entries"]]
    if not owners or BASELINE not in found.get(owners[0], {}).get("entries", {}):
        raise SystemExit("no named study has a notebook-CNN baseline ([confirm] baseline = true).")
    base = found[owners[0]]["entries"][BASELINE]
    base_by_seed = dict(zip(base["seeds"], base["values"], strict=True))
    b = summarize("notebook", base["values"])
    lines = [f"notebook CNN ({owners[0]})  {base['n_params']:>8,} params  mean {b.mean:.4f} "
             f"[{b.ci_low:.4f}, {b.ci_high:.4f}] over {b.n} seeds"]
    for name, record in found.items():
        for key, entry in record["entries"].items():
            if key == BASELINE:
                continue
            d = paired_difference(entry, base)
            if d is None:
                missing = next(s for s in entry["seeds"] if s not in base_by_seed)
                raise SystemExit(f"{name} trial {key}: seed {missing} is not one of the "
                                 "baseline's seeds; its differences would not be paired.")
            s = summarize(key, entry["values"])
            share = entry["n_params"] / base["n_params"]
            above = sum(v >= base_by_seed[seed]
                        for seed, v in zip(entry["seeds"], entry["values"], strict=True))
            lines.append(f"{name} trial {key}  {entry['n_params']:>8,} params ({share:.2%})  "
                         f"mean {s.mean:.4f} [{s.ci_low:.4f}, {s.ci_high:.4f}]  minus the "
                         f"notebook CNN {d.mean:+.4f} [{d.ci_low:+.4f}, {d.ci_high:+.4f}], "
                         f"above it on {above} of {s.n} seeds  {entry['architecture']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("studies", nargs="+", metavar="STUDY")
    parser.add_argument("--storage", default="sqlite:///mlruns/optuna.db")
    parser.add_argument("--baseline-study", metavar="STUDY",
                        help="whose notebook CNN to pair with (default: the first that has one)")
    args = parser.parse_args(argv)
    names = list(dict.fromkeys([*args.studies, *filter(None, [args.baseline_study])]))
    for line in table(records(args.storage, names), args.baseline_study):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
