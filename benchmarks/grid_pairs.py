"""A sweep's fixed configurations (``search.grid``) side by side, paired by seed: does a setting
change a method's result on the same tasks and seeds?

For a diagnostic sweep that runs each (task, seed) at a few fixed configurations, e.g.
``experiments/configs/stage2_consistency.yaml`` (DSPO as in Table 1, and with
``generation.consistency: dynamics_rollout``)::

    python benchmarks/grid_pairs.py results/sweeps/stage2_consistency \\
        --reference docs/results/table1/trials.csv --reference-method bc_safe dspo \\
        --metric generation/rollout_state_change --out docs/results/stage2_variants/consistency.md

Per task, one row per configuration (its settings away from the sweep's defaults): normalised
reward and cost (mean ± std over seeds), each seed's cost, and, against the first configuration,
the mean change of cost over the seeds both ran and on how many of them the cost fell. Reference
rows (``--reference``: a ``trials.csv`` written by ``analysis/make_tables.py``, or a committed
results folder: its ``trials.csv`` or the files its ``sources.txt`` names) show other methods
or earlier runs of the same task, each at its configuration in that file; a reference that ran on
another dataset of the task (``data/sha256``: a rebuilt dataset) is refused, and one that names
none (older results) is noted under the table. With ``--out``, the
sweep's trials (method, task, seed, configuration, reward, cost, the ``--metric`` columns) go to
``<out stem>_trials.csv`` beside it.

It reads the simulator's evaluation, costs included: a report, never a choice.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from dspo_ray.analysis.results import (COST, REWARD, ResultsError, check_sources_share_dataset,
                                       committed_trials, load_results, read_trials_csv)
from dspo_ray.analysis.tables import _task_order, is_oracle, oracle_names
from dspo_ray.io import write_bytes_atomic


def configuration_label(row: pd.Series, digits: int = 3) -> str:
    """A trial's settings away from the defaults, ``key=value`` joined (floats to ``digits``
    significant digits); ``defaults`` for none."""
    params = {k[len("params/"):]: v for k, v in row.items() if k.startswith("params/")
              and not (v is None or (isinstance(v, float) and np.isnan(v)))}
    return ", ".join(f"{k}={v:.{digits}g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in sorted(params.items())) or "defaults"


def with_configuration(trials: pd.DataFrame) -> pd.DataFrame:
    """``trials`` with a ``configuration`` column: each trial's label, the oracle runs marked.
    A method's labels on a task get more digits until no two of its configurations (``group``s)
    share one: two sampled learning rates can agree to three digits, and must not become one row;
    the other methods keep three."""
    trials = trials.copy()
    labels = []
    for _, of_method in trials.groupby(["task", "method"], sort=False):
        for digits in (3, 6, 17):
            label = of_method.apply(configuration_label, axis=1, digits=digits)
            if "group" not in of_method or label.groupby(of_method["group"]).first().is_unique:
                break
        labels.append(label)
    trials["configuration"] = pd.concat(labels) if labels else pd.Series(dtype=str)
    oracle = is_oracle(trials)
    trials.loc[oracle, "configuration"] += " [" + oracle_names(trials[oracle]) + "]"
    return trials


def sweep_trials(folders: list[str], metrics: list[str]) -> pd.DataFrame:
    """The finished trials: method, task, seed, configuration, reward, cost and ``metrics``."""
    trials, _ = load_results(folders)
    trials = trials[trials[COST].notna()]
    if trials.empty:
        raise ResultsError(f"no evaluated trial in {', '.join(folders)}: is the sweep finished?")
    missing = [m for m in metrics if m not in trials]
    if missing:
        raise ResultsError(f"no trial reports {', '.join(missing)}; known metrics: "
                           f"{', '.join(c for c in trials.columns if '/' in c and not c.startswith('params/'))}")
    trials = with_configuration(trials)
    digest = ["data/sha256"] if "data/sha256" in trials else []  # which dataset each ran on
    return trials[["method", "task", "seed", "group", "configuration", REWARD, COST, *metrics, *digest]]


def _mean_std(values: pd.Series) -> str:
    return f"{values.mean():.2f} ± {values.std(ddof=0):.2f}"


def _row(task: str, method: str, label: str, runs: pd.DataFrame, change: str,
         metric_cells: list[str]) -> str:
    """One markdown row: the runs' reward and cost over seeds, each seed's cost (in seed order)."""
    cells = [task, method, label, str(len(runs)), _mean_std(runs[REWARD]),
             _mean_std(runs[COST]) + (" safe" if runs[COST].mean() <= 1 else ""),
             " ".join(f"{c:.2f}" for c in runs[COST]), change, *metric_cells]
    return "| " + " | ".join(cells) + " |"


def _metric(values: pd.Series) -> str:
    """The mean over the runs that report it; a dash where none does (another configuration's)."""
    return "–" if values.isna().all() else f"{values.mean():.3f}"


def pairs_table(trials: pd.DataFrame, reference: pd.DataFrame | None, metrics: list[str]) -> str:
    header = ["task", "method", "configuration", "seeds", "reward", "cost", "cost per seed",
              "cost change vs the first configuration (same seeds)", *metrics]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for task in _task_order(trials["task"].unique()):
        for method, of_method in trials[trials["task"] == task].groupby("method", sort=False):
            # configurations in the grid's order (its group number)
            order = of_method.groupby("configuration")["group"].first().map(
                lambda g: int(str(g).rsplit("/", 1)[-1]) if str(g).rsplit("/", 1)[-1].isdigit() else 0)
            first = None
            for label in order.sort_values().index:
                runs = of_method[of_method["configuration"] == label].sort_values("seed")
                costs = runs.set_index("seed")[COST]
                change = "–"
                if first is None:
                    first = costs
                else:
                    both = costs.index.intersection(first.index)
                    delta = costs[both] - first[both]
                    change = f"{delta.mean():+.2f} (lower on {(delta < 0).sum()} of {len(both)})"
                rows.append(_row(task, method, label, runs, change,
                                 [_metric(runs[m]) for m in metrics]))
        if reference is not None:
            for (method, label), runs in reference[reference["task"] == task].groupby(
                    ["method", "configuration"], sort=False):
                rows.append(_row(task, f"{method} (reference)", label, runs.sort_values("seed"),
                                 "–", ["–"] * len(metrics)))
    return "\n".join(rows) + "\n"


def reference_trials(path: Path) -> pd.DataFrame:
    """The trials of ``--reference``: a trials.csv, or a results folder's committed trials."""
    if path.is_file():
        return read_trials_csv(str(path))
    frames = committed_trials(path) if path.is_dir() else None
    if not frames:
        raise ResultsError(f"--reference {path}: no such file, nor a results folder with a "
                           f"trials.csv or sources.txt (pass a trials.csv written by "
                           f"analysis/make_tables.py)")
    return pd.concat(frames, ignore_index=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweeps", nargs="+", help="sweep folders (Tune experiment folders)")
    p.add_argument("--reference", help="a trials.csv of analysis/make_tables.py, or a committed "
                   "results folder (its trials.csv or sources.txt): rows to show beside")
    p.add_argument("--reference-method", nargs="+", default=["bc_safe"],
                   help="the reference file's methods to show (default: bc_safe)")
    p.add_argument("--metric", nargs="*", default=[], help="more trial metrics to average per row")
    p.add_argument("--out", type=Path, help="write the table here (and <stem>_trials.csv beside it)")
    args = p.parse_args(argv)
    try:
        trials = sweep_trials(args.sweeps, args.metric)
        reference, unchecked = None, []
        if args.reference:
            ref = reference_trials(Path(args.reference))
            reference = with_configuration(ref[ref["method"].isin(args.reference_method)
                                               & ref[COST].notna()
                                               & ref["task"].isin(trials["task"].unique())])
            # a rebuilt dataset is other data: a reference row must have run on the sweep's
            unchecked = check_sources_share_dataset(
                {"the sweeps": trials, "--reference": reference},
                fix="pass a --reference of the same dataset (for a rebuilt task, its runs on the rebuilt data)")
    except ResultsError as e:
        print(f"grid_pairs: {e}", file=sys.stderr)
        return 1
    table = pairs_table(trials, reference, args.metric) + "".join(
        f"\nNot checked: {note}.\n" for note in unchecked)
    print(table, end="")
    if args.out:
        write_bytes_atomic(args.out, table.encode())
        csv = args.out.with_name(args.out.stem + "_trials.csv")
        write_bytes_atomic(csv, trials.drop(columns="group").to_csv(index=False).encode())
        print(f"wrote {args.out} and {csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
