"""Gather sweep results and write the paper's tables and plots.

    dspo-tables --results results/quick [--results s3://bucket/sweeps/paper]
                [--format md|latex|html|csv] [--out DIR]      (= python analysis/make_tables.py ...)

Prints Table 1 and writes, in --out (default: ./analysis_out): table1.<ext>, table2.<ext> (stage 1
per task), oracle.<ext> (only when the results hold oracle-signal runs: DSPO learned vs oracle vs
BC-Safe, a diagnostic kept out of Table 1), provenance.<ext> (each task's dataset by content
digest and the machines, with their numbers of trials), hyperparameters.<ext> (Optuna
importances), trials.csv (the tidy DataFrame) and the PNG plots (reward vs cost per task,
learning curves, objective vs each swept parameter).
A --results that is a trials.csv written here before (e.g. a committed one) adds its trials, so
more seeds can join a table whose sweep folders are gone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dspo_ray.analysis import (FORMATS, hyperparameter_plots, learning_curves,
                               load_results, oracle_table, parameter_importances, provenance_table,
                               reward_cost_plots, table1, table2)
from dspo_ray.cli import add_repeatable, run_cli
from dspo_ray.io import write_bytes_atomic

EXTENSIONS = {"md": "md", "latex": "tex", "html": "html", "csv": "csv"}


def _write(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_repeatable(parser, "--results", required=True,
                   help="a sweep's results folder or URI, or a trials.csv this command wrote "
                        "(it stands in for sweep folders that are gone; no learning curves "
                        "from it); repeat to combine")
    parser.add_argument("--format", choices=FORMATS, default="md", help="table format")
    parser.add_argument("--out", default="analysis_out", help="folder for tables, CSV and plots")
    parser.add_argument("--no-plots", action="store_true", help="tables only")
    args = parser.parse_args(argv)

    trials, reports = load_results(args.results)  # ResultsError: exit 2 (run_cli)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ext = EXTENSIONS[args.format]
    t1 = table1(trials, args.format)
    _write(out / f"table1.{ext}", t1)
    _write(out / f"table2.{ext}", table2(trials, args.format))
    oracle = oracle_table(trials, args.format)
    if oracle is not None:
        _write(out / f"oracle.{ext}", oracle)
    _write(out / f"provenance.{ext}", provenance_table(trials, args.format))
    importances = parameter_importances(trials)
    _write(out / "hyperparameters.csv", importances.to_csv(index=False))
    _write(out / "trials.csv", trials.to_csv(index=False))
    plots = []
    if not args.no_plots:
        plots += reward_cost_plots(trials, out)
        plots += learning_curves(reports, out)
        plots += hyperparameter_plots(trials, out)
    print(t1)
    counts = trials["status"].value_counts().to_dict()
    print(f"{len(trials)} trials ({', '.join(f'{v} {k}' for k, v in counts.items())})")
    print(f"tables, trials.csv, hyperparameters.csv and {len(plots)} plots written to {out.resolve()}")
    return 0


def cli() -> int:
    """The ``dspo-tables`` command."""
    return run_cli(main)


if __name__ == "__main__":
    sys.exit(cli())
