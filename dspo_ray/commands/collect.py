"""Collect tasks' datasets in the DSRL format with our own online agents (no download).

    dspo-collect --task CarCircle                 # 3 runs on a local Ray (= python experiments/collect.py)
    dspo-collect --task CarCircle --task DroneRun --runs 4 --episodes-per-run 1000
    dspo-collect --task DroneRun --runs 1 --episodes 4000 --keep 600 --ship
    dspo-collect --task CarCircle --no-ray --episodes 300 --out /tmp/d
    dspo-collect --task CarCircle --address auto  # on a running cluster
    dspo-collect --task hardsparse --ship         # MetaDrive: rule-based driver, 600 episodes
    dspo-collect --task PointGoal1 --driver rule --min-safe-share 0.3   # navigation controller
    dspo-collect --build easydense                # a task's recipe into the cache (dspo_ray/data/recipes.py)

Each task gets ``--runs`` PPO-Lagrangian runs (seeds ``--seed``, ``--seed``+1, ...; cost limit moved
from DSRL's max cost down to an end target that differs per run). EVERY episode of a run is saved to
``<out>/runs/<task>/run-<k>-seed<s>.hdf5`` (+ .json, written last), so rerunning the same command
after a crash or Ctrl-C skips the finished runs (a run on Ray logs to run-<k>-seed<s>.log there). Then all runs' episodes are merged, those above
DSRL's max cost dropped, and a (cost, reward) grid filter keeps ``--keep`` of them:
``<out>/<EnvId>-<max cost>-<count>.hdf5`` with a JSON summary and a scatter plot (.png)
(see dspo_ray/data/collect.py). With ``--ray`` (default) the runs of all tasks run in parallel as
Ray tasks, one CPU each. Point $DSRL_DATASET_DIR at --out, or use --ship to replace the
repository's shipped file.

MetaDrive tasks are collected as DSRL did, with no RL: ``--driver rule`` (the default for them;
``idm`` is the same) drives ``--episodes`` episodes with MetaDrive's rule-based IDM driver, each with
its own settings (target speed, following distance, lane-change eagerness, action noise)
(dspo_ray/data/metadrive_driver.py). For PointGoal1/PointGoal2, ``--driver rule`` drives
the Point robot with a potential-field controller, each episode with its own speed, hazard
avoidance and action noise (dspo_ray/data/nav_driver.py; PPO stays their default). Every episode
is saved to ``<out>/runs/<task>/`` in chunks of 25, and the same grid filter (with
``--min-safe-share``), file, summary and plot follow. With ``--ray`` (default) the chunks are driven
in parallel as Ray tasks, one CPU each; ``--no-ray`` drives them one after the other in this
process. ``--runs`` and the PPO options do not apply.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path


# the options that shape the data: with --build they come from the task's recipe
_RECIPE_OPTIONS = ("task", "runs", "episodes", "episodes_per_run", "keep", "min_safe_share",
                   "driver", "seed", "n_envs", "cost_limit_start", "cost_limit_end", "lr", "gamma", "out",
                   "ship")


def build_parser() -> argparse.ArgumentParser:
    from dspo_ray.cli import add_deprecated_alias, add_repeatable
    from dspo_ray.tasks import TASKS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_repeatable(p, "--task", choices=list(TASKS),
                   help="a task to collect; repeat for several (required unless --build, --table)")
    add_repeatable(p, "--build", metavar="TASK",
                   help="build the task's dataset from its recipe (dspo_ray/data/recipes.py) into "
                        "the cache where find_dataset finds it, $DSPO_CACHE_DIR/datasets/built/<task> "
                        "(default ~/.cache/dspo-ray); repeat for several; resumable. Only --ray/"
                        "--no-ray, --address, --num-cpus and --no-progress go with it")
    p.add_argument("--table", action="store_true",
                   help="print the markdown table of the shipped datasets (from their sidecars) and exit")
    p.add_argument("--plot-shipped", action="store_true",
                   help="draw datasets/<file>.png for every shipped dataset from its file and exit")
    p.add_argument("--runs", type=int, default=3, help="behaviour-agent runs per task")
    p.add_argument("--episodes", type=int, default=None,
                   help="training episodes per task, all runs together (split evenly over the runs; "
                        "default 2000); with --driver rule the episodes driven (default 600)")
    add_deprecated_alias(p, "--budget", "--episodes", type=int)
    p.add_argument("--driver", choices=("auto", "ppo", "rule", "idm"), default="auto",
                   help="behaviour policy: ppo (our PPO-Lagrangian); rule (the task's rule-based "
                        "driver with varied settings: MetaDrive's IDM for MetaDrive, as DSRL, a "
                        "potential-field controller for PointGoal1/2); idm: rule, MetaDrive only; "
                        "auto: rule for MetaDrive, else ppo")
    p.add_argument("--episodes-per-run", type=int, default=None,
                   help="training episodes of each run (overrides --episodes)")
    p.add_argument("--keep", type=int, default=None,
                   help="trajectories in the file (default: 1.25 x Table 3's N_safe + N_unlabelled)")
    p.add_argument("--min-safe-share", type=float, default=0.0,
                   help="at least this share of the kept trajectories safe, when the recorded ones "
                        "allow it (the paper's setting needs many safe unlabelled ones; default 0: "
                        "the plain grid filter)")
    p.add_argument("--seed", type=int, default=0, help="seed of the first run (run k uses seed + k)")
    p.add_argument("--n-envs", type=int, default=8,
                   help="environments each PPO run steps at once (default 8)")
    p.add_argument("--cost-limit-start", type=float, default=None,
                   help="the PPO-Lagrangian cost limit at the start of each run (default: DSRL's "
                        "max cost of the task)")
    p.add_argument("--cost-limit-end", type=float, default=None,
                   help="one end target for every run (default: spread from limit/4 to the limit)")
    p.add_argument("--lr", type=float, default=None, help="PPO learning rate (default: CollectConfig's)")
    p.add_argument("--gamma", type=float, default=None,
                   help="PPO discount (default: CollectConfig's 0.99; Swimmer needs a longer horizon, "
                        "e.g. 0.999, to learn to swim fast in our budget)")
    p.add_argument("--out", default=None,
                   help="folder for the runs and the dataset file (default: runs/datasets)")
    p.add_argument("--ray", action=argparse.BooleanOptionalAction, default=True,
                   help="run the runs in parallel as Ray tasks (default) or one after another here")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join (e.g. auto); default: start a local Ray with --num-cpus")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--ship", action="store_true",
                   help="also pack the file into datasets/ (dspo_ray/data/shipping.py), replacing that task's shipped file")
    return p


def checked_args(p: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """The parsed command line, every value checked (``p.error``, exit 2, on a bad one)."""
    from dspo_ray.data.scripted import NAV_TASKS, rule_driver
    from dspo_ray.tasks import TASKS

    args = p.parse_args(argv)
    if args.table or args.plot_shipped or args.build:
        return args
    if not args.task:
        p.error("--task is required (or --build / --table / --plot-shipped)")
    for name in ("runs", "episodes", "episodes_per_run", "keep", "n_envs", "num_cpus"):
        value = getattr(args, name)
        if value is not None and value < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.gamma is not None and not 0.0 < args.gamma <= 1.0:
        p.error(f"--gamma must be in (0, 1], got {args.gamma}")
    if not 0.0 <= args.min_safe_share <= 1.0:
        p.error(f"--min-safe-share must be in [0, 1], got {args.min_safe_share}")
    if args.address and not args.ray:
        p.error("--address needs --ray (it names the Ray cluster to run on)")
    args.task = list(dict.fromkeys(args.task))
    bad = [t for t in args.task if args.driver == "idm" and TASKS[t].suite != "MetaDrive"]
    if bad:
        p.error(f"--driver idm drives MetaDrive only, not {', '.join(bad)}")
    bad = [t for t in args.task if args.driver == "rule" and rule_driver(t) is None]
    if bad:
        p.error(f"--driver rule: no rule-based driver for {', '.join(bad)} "
                f"(there is one for the MetaDrive tasks and {', '.join(NAV_TASKS)})")
    # ppo, or the task's rule-based driver: "idm" (MetaDrive) or "nav" (Point Goal)
    args.drivers = {t: ("ppo" if args.driver == "ppo"
                        or (args.driver == "auto" and TASKS[t].suite != "MetaDrive") else rule_driver(t))
                    for t in args.task}
    episodes = args.episodes if args.episodes is not None else 2000
    args.per_run = args.episodes_per_run or episodes // args.runs
    if args.per_run < 1:
        p.error(f"--episodes {episodes} is fewer than --runs {args.runs}: "
                "every run needs at least one episode")
    if args.cost_limit_start is not None and args.cost_limit_start < 0:
        p.error(f"--cost-limit-start must be >= 0, got {args.cost_limit_start}")
    if args.cost_limit_end is not None and args.cost_limit_end < 0:
        p.error(f"--cost-limit-end must be >= 0, got {args.cost_limit_end}")
    args.out = args.out if args.out is not None else "runs/datasets"
    return args


def main(argv=None) -> int:
    p = build_parser()
    args = checked_args(p, argv)
    if args.table:
        print(shipped_table())
        return 0
    if args.plot_shipped:
        for path in plot_shipped():
            print(path)
        return 0
    if args.build:
        given = [f"--{name.replace('_', '-')}" for name in _RECIPE_OPTIONS
                 if getattr(args, name) != p.get_default(name)]
        if given:
            p.error(f"--build takes {', '.join(given)} from the task's recipe "
                    "(dspo_ray/data/recipes.py); give only --ray/--no-ray, --address, --num-cpus "
                    "and --no-progress with it, or collect with --task instead")
        build_datasets(args.build, ray=args.ray, address=args.address, num_cpus=args.num_cpus,
                       progress=not args.no_progress)
        return 0
    try:
        results = collect(args)
    except ValueError as e:  # e.g. --out holds runs made with other settings
        print(f"error: {e}", file=sys.stderr)
        return 2
    from dspo_ray.data.collect import collection_reset_seeds
    from dspo_ray.data.shipping import SHIPPED_DATASET_DIR, can_replay, pack_dataset
    from dspo_ray.io import write_bytes_atomic

    for task in args.task:
        result = results[task]
        print(json.dumps({k: v for k, v in result.to_dict().items() if k != "config"}, indent=1))
        if args.ship:
            # replayable simulators ship as actions + initial states (dspo_ray/data/shipping.py)
            seeds = (collection_reset_seeds(json.loads(result.path.with_suffix(".json").read_text()))
                     if can_replay(task) and args.drivers[task] == "ppo" else None)
            shipped = pack_dataset(result.path, task, SHIPPED_DATASET_DIR, reset_seeds=seeds)
            new = {shipped}
            for suffix in (".json", ".png"):
                new.add(SHIPPED_DATASET_DIR / result.path.with_suffix(suffix).name)
                write_bytes_atomic(SHIPPED_DATASET_DIR / result.path.with_suffix(suffix).name,
                                   result.path.with_suffix(suffix).read_bytes())
            # one shipped file (and sidecar) per task, as find_dataset takes the biggest count;
            # the old ones go only once the new ones are in place
            prefix = result.path.name.rsplit("-", 1)[0] + "-"
            for old in set(SHIPPED_DATASET_DIR.glob(f"{prefix}*")) - new:
                old.unlink()
            print(f"shipped {shipped} ({shipped.stat().st_size / 1e6:.1f} MB)")
    return 0


def collect(args: argparse.Namespace, log=None) -> dict:
    """Collect every task of checked arguments (:func:`checked_args`) into ``args.out``; the
    tasks' ``CollectResult``. Raises ValueError when ``args.out`` holds runs of other settings."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch
    torch.set_num_threads(1)
    from dspo_ray.data.collect import CollectConfig, collect_task, plan_runs

    log = log or (lambda m: print(m, flush=True))
    plans = {}
    for task in (t for t in args.task if args.drivers[t] == "ppo"):
        base = CollectConfig(task=task, keep=args.keep, n_envs=args.n_envs,
                             cost_limit_start=args.cost_limit_start, cost_limit_end=args.cost_limit_end,
                             **{name: getattr(args, name) for name in ("lr", "gamma")
                                if getattr(args, name) is not None})
        plans[task] = plan_runs(task, args.runs, args.per_run, seed=args.seed, base=base)
    results = {}
    if any(d == "idm" for d in args.drivers.values()):
        from dspo_ray.data.metadrive_driver import DriverConfig, collect_metadrive

        for task in (t for t in args.task if args.drivers[t] == "idm"):
            cfg = DriverConfig(task=task, keep=args.keep, seed=args.seed,
                               min_safe_share=args.min_safe_share,
                               **({"episodes": args.episodes} if args.episodes else {}))
            results[task] = collect_metadrive(cfg, args.out, log=log, run=chunk_runner("idm", cfg, args))
    if any(d == "nav" for d in args.drivers.values()):
        from dspo_ray.data.nav_driver import NavConfig, collect_nav

        for task in (t for t in args.task if args.drivers[t] == "nav"):
            cfg = NavConfig(task=task, keep=args.keep, seed=args.seed,
                            min_safe_share=args.min_safe_share,
                            **({"episodes": args.episodes} if args.episodes else {}))
            results[task] = collect_nav(cfg, args.out, log=log, run=chunk_runner("nav", cfg, args))
    if plans and args.ray:
        from dspo_ray.distributed.collect import collect_on_ray

        results |= collect_on_ray(plans, args.out, keep=args.keep, address=args.address,
                                  num_cpus=args.num_cpus, progress=not args.no_progress, log=log,
                                  min_safe_share=args.min_safe_share)
    elif plans:
        results |= {task: collect_task(runs, args.out, keep=args.keep, log=log,
                                       min_safe_share=args.min_safe_share)
                    for task, runs in plans.items()}
    return results


def chunk_runner(driver: str, cfg, args: argparse.Namespace):
    """How a rule-based collection drives its chunks: as Ray tasks in parallel with ``--ray``
    (dspo_ray/distributed/collect.py), else one after the other in this process (None)."""
    if not args.ray:
        return None
    from dspo_ray.distributed.collect import chunks_on_ray

    return chunks_on_ray(driver, cfg.resolved(), address=args.address, num_cpus=args.num_cpus,
                         progress=not args.no_progress)


def recipe_args(task: str, ray: bool = True, address: str | None = None,
                num_cpus: int | None = None, progress: bool = True) -> argparse.Namespace:
    """The checked ``dspo-collect`` arguments of the task's recipe, into its build folder."""
    from dspo_ray.data.recipes import built_dataset_dir, recipe_for

    argv = [*recipe_for(task).collect_args(), "--out", str(built_dataset_dir(task)),
            "--ray" if ray else "--no-ray"]
    argv += (["--address", address] if address else []) + (["--num-cpus", str(num_cpus)] if num_cpus else [])
    return checked_args(build_parser(), argv + ([] if progress else ["--no-progress"]))


def build_datasets(tasks, ray: bool = True, address: str | None = None,
                   num_cpus: int | None = None, progress: bool = True, log=None) -> dict:
    """Build each task's dataset from its recipe into the cache (``dspo-collect --build``); the
    tasks' files. A task built before is not built again; an interrupted build resumes (finished
    runs are kept). Every task is checked to have a recipe before anything runs."""
    from dspo_ray.data import DatasetError, check_task_dataset
    from dspo_ray.data.recipes import BUILD_RECORD, built_dataset_dir, built_with, recipe_for
    from dspo_ray.io import write_json_atomic
    from dspo_ray.tasks import get_task

    log = log or (lambda m: print(m, flush=True))
    tasks = list(dict.fromkeys(get_task(t).name for t in tasks))
    recipes = {t: recipe_for(t) for t in tasks}  # raises for a task without a recipe
    built = {}
    for task, recipe in recipes.items():
        folder = built_dataset_dir(task)
        before = built_with(task)  # the recipe of a finished build there, or None
        if before is not None:
            if before["collect_args"] != recipe.collect_args():
                raise DatasetError(f"{task}: {folder} was built with another recipe "
                                   f"({' '.join(before['collect_args'])}); delete that folder to "
                                   "build it from the current one")
            built[task] = folder / before["file"]
            log(f"{task}: already built: {built[task]}")
            continue
        log(f"{task}: building with dspo-collect {' '.join(recipe.collect_args())} into {folder} "
            f"({recipe.time_text}; rerun the same command to resume)")
        try:
            result = collect(recipe_args(task, ray, address, num_cpus, progress), log=log)[task]
        except ValueError as e:  # the folder holds runs of another recipe
            raise DatasetError(f"{task}: {e}; or delete {folder} to build it again from the "
                               "recipe") from None
        check_task_dataset(task, result.path)  # the final file's columns, row counts, widths
        # written last, once the file is checked: find_dataset takes a built file only then
        write_json_atomic(folder / BUILD_RECORD, {"collect_args": recipe.collect_args(),
                                                  "file": result.path.name})
        log(f"{task}: built {result.path} ({result.kept} trajectories, {result.safe_kept} safe)")
        built[task] = result.path
    return built


def plot_shipped() -> list[Path]:
    """Scatter plots of the shipped files (their kept episodes; the full recordings are not shipped)."""
    from dspo_ray.data import load_trajectories
    from dspo_ray.data.collect import scatter_plot
    from dspo_ray.data.shipping import PACK_SUFFIX, SHIPPED_DATASET_DIR, unpacked
    from dspo_ray.tasks import TASKS

    out = []
    for spec in TASKS.values():
        for pack in sorted(SHIPPED_DATASET_DIR.glob(f"{spec.dsrl_filename_prefix}*{PACK_SUFFIX}")):
            trajs = load_trajectories(unpacked(pack), spec)
            png = pack.with_name(pack.name.replace(PACK_SUFFIX, ".png"))
            out.append(scatter_plot(png, spec, None, [(t.cost_return, t.reward_return) for t in trajs]))
    return out


def shipped_table() -> str:
    """One row per shipped dataset, then one per dataset built on demand whose summary is kept in
    ``datasets/built/`` (see DATASETS.md); every figure read from the JSON sidecar."""
    from dspo_ray.data.shipping import PACK_SUFFIX, SHIPPED_DATASET_DIR
    from dspo_ray.evaluation import normalized_reward
    from dspo_ray.tasks import TASKS

    rows = ["| task | file | trajectories (steps) | safe / unsafe (cost <= limit) "
            "| cost return min / median / max | reward return min / median / max "
            "| best safe reward (normalised) | best reward overall (normalised) | training episodes "
            "(runs) | wall time | pack MB |", "|" + "---|" * 11]
    for folder in (SHIPPED_DATASET_DIR, SHIPPED_DATASET_DIR / "built"):
        for spec in TASKS.values():
            for sidecar in sorted(folder.glob(f"{spec.dsrl_filename_prefix}*.json")):
                d = json.loads(sidecar.read_text())
                k = d["stats"]["kept"]
                c, r = k["cost_return_quantiles"], k["reward_return_quantiles"]
                best = k["best_safe_reward_return"]
                pack = sidecar.with_suffix(PACK_SUFFIX)
                size = (f"{pack.stat().st_size / 1e6:.1f}" if pack.exists()
                        else f"built: `dspo-collect --build {spec.name}`")
                rows.append(
                    f"| {spec.name} | `{pack.name if pack.exists() else sidecar.with_suffix('.hdf5').name}` "
                    f"| {k['trajectories']} ({k['transitions']}) "
                    f"| {k['safe']} / {k['trajectories'] - k['safe']} (<= {spec.cost_limit:g}) "
                    f"| {c[0]:g} / {c[2]:g} / {c[4]:g} | {r[0]:.1f} / {r[2]:.1f} / {r[4]:.1f} "
                    f"| {best:.1f} ({normalized_reward(spec, best):.2f}) "
                    f"| {r[4]:.1f} ({normalized_reward(spec, r[4]):.2f}) "
                    f"| {d['recorded']} ({d['config'].get('runs', 1)}) | {d['seconds'] / 60:.0f} min "
                    f"| {size} |")
    return "\n".join(rows)


def cli() -> int:
    """The ``dspo-collect`` command."""
    from dspo_ray.cli import run_cli

    return run_cli(main, resume_hint="rerun the same command to resume the collection")


if __name__ == "__main__":
    sys.exit(cli())
