"""Budget curves (issue 14, item 1): each method's evaluated result against its training budget,
and what the Table 1 grid costs at each budget.

Reads a sweep of ``experiments/configs/budget_curves.yaml`` (one grid group per budget, in the
order of ``--budgets``) and writes, into ``--out``:

* ``README.md``'s tables (printed; ``--table`` writes them to a file): per task, every method's
  normalised reward and cost (mean ± std over seeds) at each budget, and the change from the 1x
  budget to the largest;
* ``budget_curves_<task>.png``: reward and cost against the budget, one line per method;
* the wall time of the whole Table 1 grid at each budget, from the 1x trials here and each
  budget's measured training-time ratio here; with ``--grid-trials`` (Table 1's ``trials.csv``,
  every task at the 1x budget) also from each (method, task)'s 1x trial there, and each 1x trial
  here beside the same method, task and seed there.

    python benchmarks/budget_curves.py results/sweeps/budget_curves --out docs/results/budget_curves \\
        --grid-trials docs/results/table1/trials.csv --table docs/results/budget_curves/tables.md

Everything here is read from the simulator's evaluation, costs included: it reports, it chooses
nothing. The group index -> budget mapping is the config's order, checked against the trials'
step counts (a method's first ``steps`` key must grow with the budget).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from dspo_ray.analysis.plots import _pyplot, _save
from dspo_ray.analysis.results import COST, REWARD, ResultsError, load_results
from dspo_ray.analysis.tables import _method_order, _task_order, is_oracle
from dspo_ray.io import write_bytes_atomic

EVAL_TIME = ("time/eval_s", "time/evaluation_s")  # the baselines' and DSPO's names
STEP_PARAMS = ("params/steps", "params/diffusion.steps")  # the baselines' and DSPO's main budget


def budgeted_trials(uris: list[str], budgets: list[float]) -> pd.DataFrame:
    """The evaluated trials with their ``budget`` (from the grid group's index) and their
    training wall time ``train_s`` (the trial's wall time less its evaluation)."""
    trials, _ = load_results(uris)
    if REWARD not in trials:
        raise ResultsError(f"{', '.join(uris)}: no evaluated trial yet")
    done = trials[(trials["status"] == "finished") & trials[REWARD].notna()].copy()
    index = done["group"].str.rsplit("/", n=1).str[-1].astype(int)
    if index.max() >= len(budgets):
        raise ResultsError(f"a method has {index.max() + 1} groups but --budgets lists "
                           f"{len(budgets)}; give one budget per grid entry, in order")
    done["budget"] = [budgets[i] for i in index]
    steps = done[[c for c in STEP_PARAMS if c in done]].bfill(axis=1).iloc[:, 0]
    for method, m in done.assign(_steps=steps).groupby("method"):
        order = m.groupby("budget")["_steps"].first().sort_index()
        if not order.is_monotonic_increasing:
            raise ResultsError(f"{method}: its training steps do not grow with the budget "
                               f"({dict(order)}); is --budgets in the config's order?")
    return with_wall_split(done)


def with_wall_split(trials: pd.DataFrame) -> pd.DataFrame:
    """``trials`` with ``eval_s`` (evaluation wall time) and ``train_s`` (the rest of the trial's)."""
    evaluation = trials[[c for c in EVAL_TIME if c in trials]].sum(axis=1, min_count=1)
    # copy: the frame from load_results is built column by column (pandas warns when adding more)
    return trials.copy().assign(eval_s=evaluation, train_s=trials["time/trial_s"] - evaluation)


def table1_trials(path: Path) -> pd.DataFrame:
    """Table 1's finished trials (its ``trials.csv``), the oracle diagnostic left out (not part of
    Table 1's grid)."""
    grid = pd.read_csv(path)
    return grid[(grid["status"] == "finished") & ~is_oracle(grid)]


def curves_table(done: pd.DataFrame, task: str) -> str:
    """Markdown: one row per method, reward / cost per budget, and the change 1x -> largest."""
    t = done[done["task"] == task]
    budgets = sorted(t["budget"].unique())
    top = budgets[-1]
    header = (["method"] + [f"{b:g}x: reward / cost" for b in budgets]
              + [f"1x -> {top:g}x: reward, cost", "training wall per trial (s)"])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method in _method_order(t["method"].unique()):
        m = t[t["method"] == method]
        cells = []
        for b in budgets:
            g = m[m["budget"] == b]
            cells.append("–" if g.empty else
                         f"{g[REWARD].mean():.2f} ± {g[REWARD].std(ddof=0):.2f} / "
                         f"{g[COST].mean():.2f} ± {g[COST].std(ddof=0):.2f} ({len(g)})")
        mean = m.groupby("budget")[[REWARD, COST]].mean()
        change = (f"{mean.loc[top, REWARD] - mean.loc[1.0, REWARD]:+.2f}, "
                  f"{mean.loc[top, COST] - mean.loc[1.0, COST]:+.2f}"
                  if {1.0, top} <= set(mean.index) else "–")
        wall = m.groupby("budget")["train_s"].median()
        lines.append("| " + " | ".join([method] + cells + [change, " / ".join(
            f"{wall[b]:.0f}" if b in wall else "–" for b in budgets)]) + " |")
    return "\n".join(lines)


def curves_plot(done: pd.DataFrame, task: str, out_dir: Path) -> Path:
    plt = _pyplot()
    t = done[done["task"] == task]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for method in _method_order(t["method"].unique()):
        g = t[t["method"] == method].groupby("budget")
        for ax, metric in zip(axes, (REWARD, COST)):
            mean, std = g[metric].mean(), g[metric].std(ddof=0)
            ax.errorbar(mean.index, mean.values, yerr=std.values, marker="o", capsize=3,
                        label=method, linestyle="--" if method == "dspo" else "-")
    for ax, label in zip(axes, ("normalised reward", "normalised cost")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("training budget (x table1_quick.yaml's)")
        ax.set_ylabel(label)
    axes[1].axhline(1.0, color="red", linewidth=1, linestyle=":", label="cost limit")
    axes[1].legend(fontsize=7, loc="best")
    fig.suptitle(f"{task}: every method's result against its training budget (mean ± std over seeds)")
    path = _save(fig, out_dir / f"budget_curves_{task}.png")
    plt.close(fig)
    return path


def price_table(per_cell: pd.DataFrame, ratios: pd.DataFrame, repeat: float) -> str:
    """Markdown: wall hours per method and budget of running ``per_cell``'s (method, task) cells
    (their 1x training and evaluation wall seconds) ``repeat`` times, one after the other: each
    training time scaled by the method's measured ratio train_s(budget) / train_s(1x) (fixed
    costs such as loading the data included, so the ratio is below the budget's), evaluation kept
    as at 1x."""
    budgets = list(ratios.columns)
    lines = [f"| method | " + " | ".join(f"{b:g}x" for b in budgets) + " |",
             "|---|" + "---|" * len(budgets)]
    total = dict.fromkeys(budgets, 0.0)
    for method in _method_order(per_cell.index.get_level_values(0).unique()):
        cells = per_cell.loc[method]
        row = []
        for b in budgets:
            ratio = ratios.loc[method, b] if method in ratios.index else math.nan
            hours = float((cells["train_s"] * ratio + cells["eval_s"]).sum()) * repeat / 3600
            total[b] += hours
            row.append(f"{hours:.2f}")
        lines.append(f"| {method} | " + " | ".join(row) + " |")
    lines.append("| **all** | " + " | ".join(f"**{total[b]:.1f}**" for b in budgets) + " |")
    return "\n".join(lines)


def grid_hours(done: pd.DataFrame, grid_trials: Path | None, seeds: int, slots: int,
               grid_tasks: int) -> str:
    """Markdown: the Table 1 grid's wall time at each budget, ``slots`` trials at a time, two ways.

    From this sweep alone: its 1x trials, as if each of the ``grid_tasks`` tasks cost what this
    sweep's tasks cost on average. From ``grid_trials`` (Table 1's trials.csv, every task at 1x):
    each (method, task)'s median trial there."""
    ratios = done.groupby(["method", "budget"])["train_s"].median().unstack()
    ratios = ratios.div(ratios[1.0], axis=0)
    here = done[done["budget"] == 1.0].groupby(["method", "task"])[["train_s", "eval_s"]].median()
    n_here = done["task"].nunique()
    parts = [f"Wall hours of the Table 1 grid ({grid_tasks} tasks x {seeds} seeds, {slots} trials "
             f"at a time) at each budget, from this sweep's trials ({', '.join(sorted(done['task'].unique()))} "
             f"standing for all {grid_tasks} tasks):\n\n"
             + price_table(here, ratios, grid_tasks / n_here * seeds / slots)]
    if grid_trials is not None:
        grid = with_wall_split(table1_trials(grid_trials))
        per_cell = grid.groupby(["method", "task"])[["train_s", "eval_s"]].median()
        n_tasks = per_cell.index.get_level_values(1).nunique()
        parts.append(f"The same from `{grid_trials}` (each of its {n_tasks} tasks' own median "
                     f"1x trial; measured with other jobs beside them, so an upper figure):\n\n"
                     + price_table(per_cell, ratios, seeds / slots))
    return "\n\n".join(parts)


def reproduced(done: pd.DataFrame, grid_trials: Path) -> str:
    """Markdown: each 1x trial here beside the same (method, task, seed) in ``grid_trials``
    (Table 1, which ran the 1x budget at an earlier commit): does the 1x point reproduce it?"""
    keys = ["method", "task", "seed"]
    both = done[done["budget"] == 1.0][keys + [REWARD, COST]].merge(
        table1_trials(grid_trials)[keys + [REWARD, COST]], on=keys, suffixes=("", "_then"))
    order = {m: i for i, m in enumerate(_method_order(both["method"].unique()))}
    both = both.assign(order=both["method"].map(order)).sort_values(["order", "task", "seed"])
    lines = ["| method | task | seed | reward here / there | cost here / there |", "|---|---|---|---|---|"]
    for _, r in both.iterrows():
        lines.append(f"| {r['method']} | {r['task']} | {r['seed']} | {r[REWARD]:.3f} / "
                     f"{r[REWARD + '_then']:.3f} | {r[COST]:.2f} / {r[COST + '_then']:.2f} |")
    gap = (both[REWARD] - both[REWARD + "_then"]).abs()
    return (f"The 1x trials here beside the same method, task and seed in `{grid_trials}` "
            f"(largest reward difference {gap.max():.3f}):\n\n" + "\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("results", nargs="+", help="sweep folders of experiments/configs/budget_curves.yaml")
    p.add_argument("--budgets", type=float, nargs="+", default=[0.25, 1.0, 4.0],
                   help="the budget of each grid group, in the config's order (one must be 1)")
    p.add_argument("--out", type=Path, required=True, help="folder for the plots")
    p.add_argument("--table", type=Path, default=None, help="also write the tables to this file")
    p.add_argument("--grid-trials", type=Path, default=None,
                   help="Table 1's trials.csv (1x on every task): price the grid at each budget")
    p.add_argument("--seeds", type=int, default=5, help="seeds of the priced grid (issue 14: 5)")
    p.add_argument("--slots", type=int, default=2, help="trials at a time (2 cores: 2)")
    p.add_argument("--grid-tasks", type=int, default=9, help="tasks of the priced grid (Table 1: 9)")
    p.add_argument("--no-price", action="store_true",
                   help="leave the grid's price out (when the trials' wall times are not clean, "
                        "e.g. measured beside other work)")
    args = p.parse_args(argv)
    if 1.0 not in args.budgets:
        p.error("--budgets: one budget must be 1 (table1_quick.yaml's), the reference")
    try:
        done = budgeted_trials(args.results, args.budgets)
    except ResultsError as e:
        print(f"budget_curves: {e}", file=sys.stderr)
        return 1
    sections = []
    for task in _task_order(done["task"].unique()):
        n_seeds = done.loc[done["task"] == task, "seed"].nunique()
        path = curves_plot(done, task, args.out)
        sections.append(f"### {task} ({n_seeds} seeds; `{path.name}`)\n\n"
                        f"Normalised reward / cost, mean ± std over seeds (trials); the last column "
                        f"is the median training wall time per trial (2 trials at a time on 2 "
                        f"cores).\n\n{curves_table(done, task)}")
    if 1.0 in set(done["budget"]) and not args.no_price:
        sections.append(grid_hours(done, args.grid_trials, args.seeds, args.slots, args.grid_tasks))
    if args.grid_trials is not None:
        sections.append(reproduced(done, args.grid_trials))
    text = "\n\n".join(sections) + "\n"
    sys.stdout.write(text)
    if args.table is not None:
        write_bytes_atomic(args.table, text.encode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
