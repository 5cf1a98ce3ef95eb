"""Gather sweep results and write the paper's tables and plots.

    dspo-tables --results results/quick [--results s3://bucket/sweeps/paper]
                [--format md|latex|html|csv] [--out DIR]      (= python analysis/make_tables.py ...)
    dspo-tables --regenerate docs/results/table1 [--check]

Prints Table 1 and writes, in --out (default: ./analysis_out): table1.<ext>, table2.<ext> (stage 1
per task), oracle.<ext> (only when the results hold oracle-signal runs: DSPO learned vs oracle vs
BC-Safe, a diagnostic kept out of Table 1), provenance.<ext> (each task's dataset by content
digest and the machines, with their numbers of trials), hyperparameters.<ext> (Optuna
importances), trials.csv (the tidy DataFrame) and the PNG plots (reward vs cost per task,
learning curves, objective vs each swept parameter).
A --results that is a trials.csv written here before (e.g. a committed one) adds its trials, so
more seeds can join a table whose sweep folders are gone.

--regenerate DIR remakes, from committed files alone, every folder under DIR that this command
wrote: a folder holding a trials.csv written here, or a sources.txt naming (one per line,
relative to the folder) the trials.csv files it gathers, a line perhaps keeping some methods or
tasks only (``../column_b_AntRun/trials.csv method=dspo``, ``task=AntRun,CarCircle``); a new
folder holding only its sources.txt gets every table. The Markdown tables, hyperparameters.csv
and trials.csv that the folder holds, and, where it has them, its reward-vs-cost and
hyperparameter plots, are written again in place; learning curves stay as they are (they need the
sweeps' training rows).
With --check nothing is written: each table that would change is named and the exit status is
1, so a committed table that the code no longer makes from its trials is found.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dspo_ray.analysis import (FORMATS, SOURCES, ResultsError, committed_trials,
                               hyperparameter_plots, learning_curves, load_results, oracle_table,
                               parameter_importances, provenance_table, reward_cost_plots, table1,
                               table2)
from dspo_ray.cli import UsageError, add_repeatable, run_cli
from dspo_ray.io import write_bytes_atomic

EXTENSIONS = {"md": "md", "latex": "tex", "html": "html", "csv": "csv"}


def _write(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode())


def table_texts(trials, fmt: str) -> dict[str, str]:
    """Every text file the tables write, by file name."""
    ext = EXTENSIONS[fmt]
    texts = {f"table1.{ext}": table1(trials, fmt), f"table2.{ext}": table2(trials, fmt)}
    oracle = oracle_table(trials, fmt)
    if oracle is not None:
        texts[f"oracle.{ext}"] = oracle
    texts[f"provenance.{ext}"] = provenance_table(trials, fmt)
    texts["hyperparameters.csv"] = parameter_importances(trials).to_csv(index=False)
    texts["trials.csv"] = trials.to_csv(index=False)
    return texts


def _same(name: str, committed: str, made: str) -> bool:
    """Whether a committed file says what the code makes now. Byte for byte, except the
    importances (hyperparameters.csv): a random forest's, equal to ~1e-9 (its last digits may
    follow the CPU's floating-point paths; a real change moves them by far more)."""
    if committed == made or name != "hyperparameters.csv":
        return committed == made
    import io

    import numpy as np
    import pandas as pd

    a, b = (pd.read_csv(io.StringIO(text), float_precision="round_trip") for text in (committed, made))
    if list(a.columns) != list(b.columns) or len(a) != len(b):
        return False
    keys = [c for c in a.columns if c != "importance"]
    return (a[keys].equals(b[keys])
            and np.allclose(a["importance"], b["importance"], rtol=1e-9, atol=1e-12))


def regenerate(root: Path, check: bool, plots: bool) -> int:
    if not root.is_dir():
        raise UsageError(f"--regenerate {root}: no such folder; pass a folder of committed results, "
                         "e.g. docs/results/table1")
    # every folder's trials read before anything is written: a bad source stops it all
    folders = {f: committed_trials(f) for f in sorted([root, *root.rglob("*")]) if f.is_dir()}
    folders = {f: sources for f, sources in folders.items() if sources is not None}
    if not folders:
        raise UsageError(f"--regenerate {root}: no folder under it holds a trials.csv written by "
                         f"dspo-tables or a {SOURCES}; pass the folder that holds them")
    changed = []
    for i, (folder, sources) in enumerate(folders.items(), 1):
        try:
            trials, _ = load_results(sources)
        except ResultsError as e:
            raise ResultsError(f"{folder}: {e}") from None
        # the tables the folder holds: a note may keep only some (e.g. stage 1's Table 2); a
        # folder with a sources.txt and no table yet gets them all but trials.csv
        texts = table_texts(trials, "md")
        held = {name: text for name, text in texts.items() if (folder / name).is_file()}
        if not held and (folder / SOURCES).is_file():
            held = {name: text for name, text in texts.items() if name != "trials.csv"}
        texts = held
        differ = [name for name, text in texts.items()
                  if not (folder / name).is_file() or not _same(name, (folder / name).read_text(), text)]
        changed += [str(folder / name) for name in differ]
        if not check:
            for name in differ:
                _write(folder / name, texts[name])
            if plots and any(folder.glob("reward_vs_cost_*.png")):  # not one made --no-plots
                reward_cost_plots(trials, folder)
                hyperparameter_plots(trials, folder)
        verb = "differ" if check else "rewritten"
        print(f"[{i}/{len(folders)}] {folder}: {len(trials)} trials, "
              f"{len(differ)} of {len(texts)} tables {verb}" + (f" ({', '.join(differ)})" if differ else ""))
    if check:
        if changed:
            print(f"{len(changed)} committed tables are not what the code makes of their trials; "
                  f"rerun without --check to rewrite them:\n  " + "\n  ".join(changed))
            return 1
        print(f"all {len(folders)} folders' tables are what the code makes of their trials")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_repeatable(parser, "--results",
                   help="a sweep's results folder or URI, or a trials.csv this command wrote "
                        "(it stands in for sweep folders that are gone; no learning curves "
                        "from it); repeat to combine")
    parser.add_argument("--format", choices=FORMATS, default="md", help="table format")
    parser.add_argument("--out", default="analysis_out", help="folder for tables, CSV and plots")
    parser.add_argument("--no-plots", action="store_true", help="tables only")
    parser.add_argument("--regenerate", metavar="DIR", type=Path,
                        help="remake every folder under DIR that this command wrote, from its "
                             f"committed trials.csv (or {SOURCES}), in place")
    parser.add_argument("--check", action="store_true",
                        help="with --regenerate: write nothing, name each table that would "
                             "change, exit 1 if any")
    args = parser.parse_args(argv)
    if args.regenerate is not None:
        if args.results:
            raise UsageError("--regenerate takes no --results: each folder's own trials.csv "
                             f"(or {SOURCES}) is its input; pass one of the two")
        return regenerate(args.regenerate, args.check, plots=not args.no_plots)
    if args.check:
        raise UsageError("--check goes with --regenerate DIR; pass both")
    if not args.results:
        raise UsageError("pass --results (a sweep's results folder, or a trials.csv) or --regenerate DIR")

    trials, reports = load_results(args.results)  # ResultsError: exit 2 (run_cli)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    texts = table_texts(trials, args.format)
    for name, text in texts.items():
        _write(out / name, text)
    plots = []
    if not args.no_plots:
        plots += reward_cost_plots(trials, out)
        plots += learning_curves(reports, out)
        plots += hyperparameter_plots(trials, out)
    print(texts[f"table1.{EXTENSIONS[args.format]}"])
    counts = trials["status"].value_counts().to_dict()
    print(f"{len(trials)} trials ({', '.join(f'{v} {k}' for k, v in counts.items())})")
    print(f"tables, trials.csv, hyperparameters.csv and {len(plots)} plots written to {out.resolve()}")
    return 0


def cli() -> int:
    """The ``dspo-tables`` command."""
    return run_cli(main)


if __name__ == "__main__":
    sys.exit(cli())
