"""Table 1, column (b), checked on fresh seeds: is each method's tuned configuration better than its
defaults on seeds the tuning never saw?

Column (b) (``experiments/configs/table1_tuned.yaml``) keeps, per method and task, the best of
several configurations by the mean evaluation over the seeds it ran on. That evaluation is also what
the column reports, so the column is optimistic by construction (the best of six noisy means). This
script measures by how much, in two steps:

1. ``config``: read the tuned sweep, take each method's chosen configuration on one task and write a
   sweep YAML that runs, on fresh seeds, two groups per method: ``<method>/<task>/0`` its defaults
   (column (a)'s configuration) and ``<method>/<task>/1`` the chosen configuration::

       python benchmarks/confirm_tuned.py config results/sweeps/table1_tuned_CarCircle \\
           --base experiments/configs/table1_tuned.yaml --seeds 3 4 \\
           --out experiments/configs/table1_tuned_confirm_CarCircle.yaml
       python experiments/sweep.py --config experiments/configs/table1_tuned_confirm_CarCircle.yaml

2. ``table``: per method, the defaults and the chosen configuration on the tuning seeds (column (a)
   from ``--fixed``, e.g. Table 1's ``trials.csv``) and on the fresh seeds::

       python benchmarks/confirm_tuned.py table results/sweeps/table1_tuned_CarCircle \\
           --confirm results/sweeps/table1_tuned_confirm_CarCircle \\
           --fixed docs/results/table1/trials.csv --out docs/results/table1/column_b_CarCircle/confirm.md

   The three sources must have run on one dataset of the task (``data/sha256``): a rebuilt dataset
   is other data, so its column (a) comes from its runs on the rebuilt file (``--fixed
   docs/results/table1/five_seeds_built/trials.csv``); a source that names none (results older
   than 2026-12-03) is noted under the table as not checked.

   With ``--out``, the fresh-seed trials themselves (method, configuration, seed, reward, cost) go
   to ``<out stem>_trials.csv`` beside it, so that any other summary of them can be recomputed.

Everything here reads the simulator's evaluation, costs included: the choice it checks is column
(b)'s, which sees costs, and the tables say so. The fresh seeds choose nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import yaml

from dspo_ray.analysis.results import (COST, REWARD, ResultsError, check_sources_share_dataset,
                                       load_results, objective)
from dspo_ray.analysis.tables import TUNED_SUFFIX, _method_order, choose_configurations, is_oracle
from dspo_ray.config import ConfigError, load_yaml
from dspo_ray.distributed.config import DSPO, load_sweep_config, sweep_config_from_dict
from dspo_ray.io import write_bytes_atomic

DEFAULTS, CHOSEN = 0, 1
"""The confirmation sweep's grid groups per method: its defaults, then the chosen configuration."""


def chosen_configurations(tuned: list[str], task: str | None, methods: list[str] | None = None,
                          expected: dict[str, int] | None = None
                          ) -> tuple[str, pd.DataFrame, list[int]]:
    """The task; per method (all of the sweep's, or ``methods``), the tuned sweep's chosen
    configuration (``choose_configurations``' rows with ``params``: the sampled hyperparameters as
    a dict); and the seeds it was tuned on. ``expected`` (method -> its number of tuning trials:
    configurations x seeds): refuse a method whose tuning is not over, as its choice could still
    change."""
    trials = load_results(tuned)[0]
    tasks = sorted(trials["task"].unique())
    if task is None:
        if len(tasks) != 1:
            raise ResultsError(f"the tuned sweep holds tasks {tasks}; choose one with --task")
        task = tasks[0]
    if task not in tasks:
        raise ResultsError(f"--task {task}: the tuned sweep holds {tasks}")
    trials = trials[trials["task"] == task]
    if methods:
        unknown = sorted(set(methods) - set(trials["method"]))
        if unknown:
            raise ResultsError(f"--method {unknown[0]}: not in the tuned sweep on {task} "
                               f"(it holds {sorted(trials['method'].unique())})")
        trials = trials[trials["method"].isin(methods)]
    if expected is not None:
        for method, cell in trials.groupby("method"):
            done = int(cell["status"].isin(["finished", "error"]).sum())
            if done < expected.get(method, 0):
                raise ResultsError(f"{method} on {task}: {done} of {expected[method]} tuning "
                                   "trials done, so its choice may still change; wait for the "
                                   "tuned sweep, or choose the finished methods with --method")
    chosen = choose_configurations(trials)
    missing = chosen[chosen["group"].isna()]["method"].tolist()
    if missing:
        raise ResultsError(f"no evaluated configuration yet for {', '.join(missing)} on {task}; "
                           "let the tuned sweep finish (or --resume it)")
    chosen = chosen.assign(method=chosen["method"].str.removesuffix(TUNED_SUFFIX),
                           params=[json.loads(c) for c in chosen["config"]])
    return task, chosen, sorted(trials["seed"].unique())


def confirmation_config(base_path: Path, task: str, chosen: pd.DataFrame, seeds: list[int],
                        name: str | None = None) -> dict:
    """The confirmation sweep: the base config's fixed settings, one task, the fresh seeds, and a
    grid of two groups per method (defaults, chosen), validated as any sweep config."""
    base = load_yaml(base_path)
    # DSPO, the slowest by far, first: its trials start first and the sweep's tail is short
    methods = sorted((m for m in _method_order(chosen["method"]) if m in set(base.get("methods", []))),
                     key=lambda m: m != DSPO)
    params = dict(zip(chosen["method"], chosen["params"]))
    overrides = {m: o for m, o in (base.get("overrides") or {}).items() if m in methods}
    data = {"name": name or f"{base.get('name', 'tuned')}_confirm_{task}", "tasks": [task],
            "seeds": list(seeds), "methods": methods, "overrides": overrides,
            "search": {"grid": {m: [{}, params[m]] for m in methods}}}
    data.update({key: value for key, value in base.items()
                 if key not in ("num_samples", *data)})
    sweep_config_from_dict(data)  # refuse to write a config the sweep would refuse
    return data


def confirmation_table(tuned: list[str], confirm: list[str], fixed: list[str],
                       task: str | None) -> tuple[str, pd.DataFrame]:
    """Per method: defaults and the chosen configuration, on the tuning seeds and on fresh seeds;
    and the fresh-seed trials the table summarises. ``task`` None: the tuned sweep's one task."""
    task, chosen, tuning_seeds = chosen_configurations(tuned, task)
    trials = load_results(confirm)[0]
    trials = trials[(trials["task"] == task) & (trials["status"] == "finished") & trials[REWARD].notna()]
    if trials.empty:
        raise ResultsError(f"{', '.join(confirm)}: no evaluated trial on {task} yet")
    trials = trials.assign(configuration=trials["group"].str.rsplit("/", n=1).str[-1].astype(int))
    fixed_trials = load_results(fixed)[0] if fixed else pd.DataFrame()
    if not fixed_trials.empty:
        fixed_trials = fixed_trials[fixed_trials["task"] == task]
    tuned_trials = load_results(tuned)[0]
    # a rebuilt dataset is other data: the three sources must have run on one
    unchecked = check_sources_share_dataset(
        {"the tuned sweep": tuned_trials[tuned_trials["task"] == task], "--confirm": trials,
         "--fixed": fixed_trials},
        fix="pass results of one dataset (for a rebuilt task, --fixed from its runs on the rebuilt data)")
    fresh_seeds = sorted(trials["seed"].unique())
    if set(tuning_seeds) & set(fresh_seeds):
        raise ResultsError(f"the confirmation seeds {fresh_seeds} overlap the tuning seeds "
                           f"{tuning_seeds}: they are not fresh")

    def cell(rows: pd.DataFrame) -> tuple[str, float]:
        if rows.empty:
            return "n/a", float("nan")
        reward, cost = rows[REWARD].astype(float).mean(), rows[COST].astype(float).mean()
        return _pair(reward, cost), objective(reward, cost)

    lines = [f"| method | chosen configuration | defaults, seeds {_seeds(tuning_seeds)} (column (a)) "
             f"| chosen, seeds {_seeds(tuning_seeds)} (column (b), tuned on eval) "
             f"| fresh seeds | defaults, fresh seeds | chosen, fresh seeds "
             f"| chosen better on fresh seeds? |", "|---|---|---|---|---|---|---|---|"]
    for method in _method_order(chosen["method"]):
        row = chosen[chosen["method"] == method].iloc[0]
        mine = trials[trials["method"] == method]
        column_a = (fixed_trials[(fixed_trials["method"] == method) & (fixed_trials["task"] == task)
                                 & fixed_trials["seed"].isin(tuning_seeds)
                                 & (fixed_trials["status"] == "finished")]
                    if not fixed_trials.empty else fixed_trials)
        a, _ = cell(column_a[~is_oracle(column_a)])
        b = _pair(row.reward_mean, row.cost_mean)
        fresh_default, default_objective = cell(mine[mine["configuration"] == DEFAULTS])
        fresh_chosen, chosen_objective = cell(mine[mine["configuration"] == CHOSEN])
        verdict = ("n/a" if pd.isna(default_objective) or pd.isna(chosen_objective) else
                   "yes" if chosen_objective > default_objective else "no")
        config = ", ".join(f"{k}={_short(v)}" for k, v in sorted(row.params.items()))
        lines.append(f"| {method} | {config} | {a} | {b} | {_seeds(sorted(mine['seed'].unique()))} "
                     f"| {fresh_default} | {fresh_chosen} | {verdict} |")
    text = (f"Normalised reward / cost, mean over seeds; safe (cost <= 1) in bold. \"Better\" compares "
            f"the objective of the seed means (safe: reward; unsafe: minus the cost; "
            f"`dspo_ray.analysis.results.objective`).\n\n" + "\n".join(lines) + "\n"
            + "".join(f"\nNot checked: {note}.\n" for note in unchecked))
    fresh = trials[["method", "configuration", "seed", REWARD, COST]].sort_values(
        ["method", "configuration", "seed"]).reset_index(drop=True)
    return text, fresh


def _pair(reward: float, cost: float) -> str:
    """``reward / cost``, in bold when safe (cost <= 1)."""
    value = f"{reward:.2f} / {cost:.2f}"
    return f"**{value}**" if cost <= 1.0 else value


def _seeds(seeds: list[int]) -> str:
    return ", ".join(str(s) for s in seeds)


def _short(value) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("config", help="write the confirmation sweep's YAML")
    c.add_argument("tuned", nargs="+", help="the tuned sweep's results folders (or its trials.csv)")
    c.add_argument("--base", type=Path, required=True, help="the tuned sweep's YAML (its fixed settings)")
    c.add_argument("--task", default=None, help="the task (needed when the sweep holds several)")
    c.add_argument("--method", action="append", default=None,
                   help="only this method (repeat); default: every method of the tuned sweep")
    c.add_argument("--seeds", type=int, nargs="+", required=True, help="fresh seeds")
    c.add_argument("--name", default=None,
                   help="the confirmation sweep's name (default: <the base's name>_confirm_<task>)")
    c.add_argument("--out", type=Path, required=True, help="the YAML to write")
    t = sub.add_parser("table", help="defaults against the chosen configuration, tuning and fresh seeds")
    t.add_argument("tuned", nargs="+", help="the tuned sweep's results folders (or its trials.csv)")
    t.add_argument("--confirm", nargs="+", required=True, help="the confirmation sweep's folders")
    t.add_argument("--fixed", nargs="*", default=[],
                   help="column (a) at the tuning seeds: results folders or a trials.csv")
    t.add_argument("--task", default=None, help="the task (needed when the sweep holds several)")
    t.add_argument("--out", type=Path, default=None, help="also write the table to this file")
    args = p.parse_args(argv)
    try:
        if args.command == "config":
            if not args.base.is_file():
                raise ResultsError(f"--base {args.base}: no such file")
            base = load_sweep_config(args.base)
            task, chosen, _ = chosen_configurations(args.tuned, args.task, args.method,
                                                 expected={m: base.samples_per_cell(m) * len(base.seeds)
                                                           for m in base.methods})
            data = confirmation_config(args.base, task, chosen, args.seeds, args.name)
            only = "".join(f" --method {m}" for m in args.method or [])
            header = (f"# Column (b)'s chosen configurations on {task}, beside the defaults, on fresh "
                      f"seeds (benchmarks/confirm_tuned.py).\n# Written by: python "
                      f"benchmarks/confirm_tuned.py config {' '.join(args.tuned)} --base {args.base}"
                      f"{only} --seeds {' '.join(map(str, args.seeds))}"
                      f"{f' --name {args.name}' if args.name else ''} --out {args.out}\n"
                      f"# Per method, group 0: the defaults (column (a)); group 1: the configuration "
                      f"chosen on the simulator's evaluation (sees costs).\n")
            write_bytes_atomic(args.out, (header + yaml.safe_dump(data, sort_keys=False)).encode())
            print(f"confirm_tuned: wrote {args.out} ({len(data['methods'])} methods x 2 "
                  f"configurations x {len(args.seeds)} seeds on {task})")
        else:
            text, fresh = confirmation_table(args.tuned, args.confirm, args.fixed, args.task)
            sys.stdout.write(text)
            if args.out is not None:
                write_bytes_atomic(args.out, text.encode())
                write_bytes_atomic(args.out.with_name(f"{args.out.stem}_trials.csv"),
                                   fresh.to_csv(index=False).encode())
    except (ResultsError, ConfigError) as e:
        print(f"confirm_tuned: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
