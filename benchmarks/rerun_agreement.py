"""Do two runs of the same method, task, seed and configuration give the same result?

Table 1's cells are merged from sweeps made on different commits (and the column-(b)
confirmations reran the defaults on fresh seeds). When the same (method, task, seed) at its
defaults is in both, this pairs them and prints, per pair, the two normalised rewards and costs
and whether they agree within ``--tolerance``::

    python benchmarks/rerun_agreement.py --new results/sweeps/s17_dspo results/sweeps/s17_bc_safe ... \\
        --earlier CarCircle=docs/results/table1/column_b_CarCircle/confirm_trials.csv \\
                  AntRun=docs/results/table1/column_b_AntRun/confirm_trials.csv \\
        --out docs/results/table1/five_seeds/rerun_agreement.md

``--new``: sweep folders or ``trials.csv`` files (``dspo_ray.analysis.results.load_results``),
one configuration per (method, task). ``--earlier``: ``TASK=FILE`` for a ``confirm_trials.csv``
of ``benchmarks/confirm_tuned.py`` (one task per file; configuration 0 is the defaults), or a
``trials.csv`` of the tables (``FILE`` alone: its rows at one configuration per method and task).
It reads the simulator's evaluation: a report, never a choice.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from dspo_ray.analysis.results import COST, REWARD, ResultsError, load_results
from dspo_ray.analysis.tables import is_oracle
from dspo_ray.cli import run_cli
from dspo_ray.io import write_bytes_atomic

KEYS = ["method", "task", "seed"]


def defaults_rows(trials: pd.DataFrame, source: str) -> pd.DataFrame:
    """The evaluated learned-signal rows of ``trials``, refusing a cell with several
    configurations (which one is the defaults would be a guess)."""
    trials = trials[~is_oracle(trials) & trials[COST].notna()]
    groups = trials.groupby(["method", "task"])["group"].nunique()
    if (groups > 1).any():
        (method, task), count = next(iter(groups[groups > 1].items()))
        raise ResultsError(f"{source}: {method} on {task} has {count} configurations; "
                           "pass sweeps that run one configuration per method and task")
    return trials[KEYS + [REWARD, COST]]


def earlier_rows(spec: str) -> pd.DataFrame:
    """``TASK=confirm_trials.csv`` (its configuration 0) or a tables ``trials.csv``."""
    task, _, path = spec.rpartition("=")
    if not task:
        return defaults_rows(load_results(spec)[0], spec)
    try:
        rows = pd.read_csv(path)
    except OSError as e:
        raise ResultsError(f"--earlier {spec}: cannot read it ({e})") from None
    if "configuration" not in rows:
        raise ResultsError(f"--earlier {spec}: no 'configuration' column; TASK=FILE takes a "
                           "confirm_trials.csv of benchmarks/confirm_tuned.py")
    rows = rows[rows["configuration"] == 0].assign(task=task)
    return rows[KEYS + [REWARD, COST]]


def agreement(new: pd.DataFrame, earlier: pd.DataFrame, tolerance: float) -> pd.DataFrame:
    """One row per (method, task, seed) in both: the two results and whether they agree."""
    pairs = new.merge(earlier, on=KEYS, suffixes=("_new", "_earlier"))
    pairs["agree"] = ((pairs[f"{REWARD}_new"] - pairs[f"{REWARD}_earlier"]).abs() <= tolerance) & (
        (pairs[f"{COST}_new"] - pairs[f"{COST}_earlier"]).abs() <= tolerance)
    return pairs.sort_values(["task", "method", "seed"]).reset_index(drop=True)


def render(pairs: pd.DataFrame, tolerance: float) -> str:
    lines = [f"{int(pairs['agree'].sum())} of {len(pairs)} reruns agree with the earlier run "
             f"within {tolerance} in both normalised reward and cost.", "",
             "| task | method | seed | earlier reward / cost | new reward / cost | agree |",
             "|---|---|---|---|---|---|"]
    for _, r in pairs.iterrows():
        lines.append(f"| {r['task']} | {r['method']} | {r['seed']} | "
                     f"{r[REWARD + '_earlier']:.3f} / {r[COST + '_earlier']:.3f} | "
                     f"{r[REWARD + '_new']:.3f} / {r[COST + '_new']:.3f} | "
                     f"{'yes' if r['agree'] else 'no'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--new", nargs="+", required=True, help="sweep folders or trials.csv files")
    parser.add_argument("--earlier", nargs="+", required=True,
                        help="TASK=confirm_trials.csv, or a tables trials.csv")
    parser.add_argument("--tolerance", type=float, default=0.01)
    parser.add_argument("--out", help="write the table here (Markdown) as well as printing it")
    args = parser.parse_args(argv)
    new = defaults_rows(load_results(args.new)[0], "--new")
    earlier = pd.concat([earlier_rows(s) for s in args.earlier], ignore_index=True)
    pairs = agreement(new, earlier, args.tolerance)
    if pairs.empty:
        raise ResultsError("no (method, task, seed) is in both --new and --earlier")
    pairs = pairs[KEYS + [f"{REWARD}_earlier", f"{COST}_earlier", f"{REWARD}_new", f"{COST}_new",
                          "agree"]]
    text = render(pairs, args.tolerance)
    print(text, end="")
    if args.out:
        write_bytes_atomic(Path(args.out), text.encode())
        print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
