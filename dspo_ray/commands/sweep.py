"""Hyperparameter sweeps of DSPO (and the baselines) on Ray: Tune + Optuna TPE + ASHA.

With no arguments: the quick sweep (experiments/configs/quick.yaml) on an embedded local Ray that
this script starts and stops, over the shipped datasets; it finishes in about 5 minutes on 2 CPU
cores and prints, per task, the best configuration with its normalised reward and cost and
whether it is safe, its best policy file (for dspo-evaluate), then where the results and logs
are.

  dspo-sweep                                        # quick, local (= python experiments/sweep.py)
  dspo-sweep --config experiments/configs/paper.yaml --address auto
  dspo-sweep --resume                               # continue an interrupted one
  dspo-sweep --storage s3://my-bucket/sweeps        # results to S3
  dspo-sweep --check                                # validate the config only
  dspo-sweep --task easydense --build-missing       # build a missing dataset from its recipe first

Each (method, task) cell gets ``num_samples`` configurations from a seeded TPE study; each
configuration runs once per seed (one Tune trial each); the objective is lexicographic: normalised
reward if the normalised cost is <= 1, else minus the cost (every safe result beats every unsafe
one). See docs/cluster.md for running on AWS.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from dspo_ray.cli import UsageError, add_repeatable, positive_int, run_cli
from dspo_ray.distributed.config import load_sweep_config

# the checkout's quick sweep (a non-editable install has no experiments/ folder: pass --config)
DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "experiments" / "configs" / "quick.yaml"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", type=Path, default=DEFAULT_CONFIG,
                   help="sweep YAML: tasks, seeds, methods, search space, resources, storage "
                        "(default: %(default)s)")
    p.add_argument("--address", default=None,
                   help="Ray cluster to join: 'auto' (the cluster this machine belongs to, e.g. "
                        "under 'ray job submit'/'ray exec'), 'host:6379' or 'ray://host:10001'. "
                        "Default: start an embedded local Ray for this run and stop it after")
    p.add_argument("--resume", action="store_true",
                   help="continue the experiment <storage>/<name> (without --name: the newest "
                        "run of the config's name) after Ctrl-C or a killed driver: finished "
                        "trials are kept, unfinished and errored ones run again from their last "
                        "finished stage; starts fresh if there is none. Without --resume a new "
                        "run whose name is taken is named <name>-<date>-<time>")
    p.add_argument("--storage", default=None,
                   help="where results, logs and checkpoints go: a folder, file://, s3://, gs:// "
                        "or any pyarrow filesystem URI (overrides the config's 'storage')")
    p.add_argument("--name", default=None,
                   help="experiment name, the folder under the storage (overrides 'name')")
    p.add_argument("--workdir", default=None,
                   help="where trials keep stage artefacts; on a cluster a path every node sees "
                        "(overrides 'workdir')")
    p.add_argument("--no-stage-cache", dest="stage_cache", action="store_const", const=False,
                   default=None,
                   help="every DSPO trial trains every stage (overrides 'stage_cache'; default: "
                        "trials share stages with the same settings through <workdir>/stage_cache)")
    add_repeatable(p, "--task", "--tasks", help="a task; repeat for several (overrides 'tasks')")
    add_repeatable(p, "--seed", "--seeds", type=int,
                   help="a seed; repeat for several (overrides 'seeds')")
    add_repeatable(p, "--method", "--methods",
                   help="dspo or a baseline; repeat for several (overrides 'methods')")
    p.add_argument("--num-samples", type=positive_int, default=None,
                   help="configurations per (method, task) (overrides 'num_samples')")
    p.add_argument("--max-concurrent", type=positive_int, default=None,
                   help="trials at once (overrides 'max_concurrent_trials'; default: what the "
                        "cluster's CPUs/GPUs hold)")
    p.add_argument("--num-cpus", type=positive_int, default=None,
                   help="CPUs of the embedded local Ray (default: all of this machine's)")
    p.add_argument("--check", action="store_true",
                   help="validate the config and each task's dataset (found, header checked), "
                        "print the plan and exit without starting Ray")
    p.add_argument("--build-missing", action="store_true",
                   help="first build, on this machine, each task's missing dataset that has a "
                        "recipe (dspo-collect --build; dspo_ray/data/recipes.py), with progress, "
                        "then run the sweep (on a cluster of several machines every node needs "
                        "the built file: point $DSRL_DATASET_DIR at a shared folder instead)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    overrides = {"storage": args.storage, "name": args.name, "workdir": args.workdir,
                 "tasks": args.tasks, "seeds": args.seeds, "methods": args.methods,
                 "num_samples": args.num_samples, "stage_cache": args.stage_cache}
    config = load_sweep_config(args.config, **overrides)
    print(f"sweep {config.name!r}: {len(config.methods)} method(s) x {len(config.tasks)} task(s) "
          f"x {len(config.seeds)} seed(s) -> {config.total_trials()} trials; "
          f"storage {config.storage_uri()}")
    if args.build_missing:
        build_missing(config, num_cpus=args.num_cpus)
    if args.check:
        if not all(":" in m for m in config.methods):  # custom methods bring their own data
            from dspo_ray.data import check_task_datasets

            check_task_datasets(config.tasks, config.dataset_dir)
        print("config OK")
        return 0

    from dspo_ray.distributed.sweep import choose_experiment, format_summary, run_sweep

    if args.name is None:
        # the config's name: --resume continues its newest run; a new run never overwrites one
        chosen = choose_experiment(config, args.resume)
        if chosen.name != config.name:
            print(f"{'resuming' if args.resume else 'new experiment'}: {chosen.name}")
        config = chosen

    start = time.perf_counter()
    result = run_sweep(config, address=args.address, resume=args.resume,
                       num_cpus=args.num_cpus, max_concurrent=args.max_concurrent)
    print()
    print(format_summary(result))
    print(f"wall time: {time.perf_counter() - start:.0f} s")
    return sweep_exit_status(result)


def build_missing(config, num_cpus: int | None = None) -> None:
    """Build every missing dataset of the sweep's tasks that has a recipe, before anything else
    starts (the tasks without one are left to the dataset check, whose error says what to do)."""
    if all(":" in m for m in config.methods):
        return  # custom methods bring their own data
    if config.dataset_dir is not None:
        raise UsageError(f"--build-missing builds into the dataset cache, but the config's "
                         f"dataset_dir ({config.dataset_dir}) is the only folder searched; remove "
                         "dataset_dir, or put the files there yourself")
    from dspo_ray.commands.collect import build_datasets
    from dspo_ray.data.lookup import missing_buildable
    from dspo_ray.data.recipes import build_command

    missing = missing_buildable(config.tasks)
    if missing:
        print(f"building the missing datasets first: {build_command(missing)}", flush=True)
        build_datasets(missing, num_cpus=num_cpus)


def sweep_exit_status(result) -> int:
    """0 if at least one trial finished (was evaluated, or ran to the stage its config stops after:
    a stage-1-only Table 2 sweep); else 1, with the reason on stderr."""
    status = result.trials["status"] if "status" in result.trials else []
    finished = int(status.isin(["finished", "stopped_as_configured"]).sum()) if len(status) else 0
    if finished:
        return 0
    errored = int((status == "error").sum()) if len(status) else 0
    print(f"error: no trial finished ({errored} of {len(status)} errored); each trial's "
          f"error.txt under {result.experiment_path} says why", file=sys.stderr)
    return 1


def _sweep_errors() -> tuple[type[BaseException], ...]:
    from dspo_ray.distributed.sweep import ExperimentExistsError, MissingDatasetError

    return ExperimentExistsError, MissingDatasetError


def cli() -> int:
    """The ``dspo-sweep`` command."""
    return run_cli(main, resume_hint="rerun with --resume to continue the sweep", extra=_sweep_errors)


if __name__ == "__main__":
    sys.exit(cli())
