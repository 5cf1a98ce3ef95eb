"""Train one baseline on one task, save its policy, evaluate it and print the metrics as JSON.

    dspo-train --method iql --task CarCircle          (= python experiments/train.py ...)
    dspo-train --method cdtv --task CarCircle --steps 2000 --set batch_size=256
    dspo-train --method bc_safe --task CarCircle --dataset path/to/file.hdf5 --out runs/x

Methods: bc_all, bc_safe, td3bc, iql, cql, dwbc, rgm, cdtv. The run folder (--out) receives
policy.pt and result.json (written atomically). The data is the task's cost-label-free split
(found as dspo_ray.data.load_task_data finds it); no method ever sees a cost.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from dspo_ray.baselines.common import (METHODS, ConfigError, config_from_dict,
                                       get_method, run_method)
from dspo_ray.cli import positive_int, run_cli, yaml_override
from dspo_ray.data import SplitConfig
from dspo_ray.io import removed_on_failure, write_json_atomic
from dspo_ray.tasks import TASKS, get_task


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", required=True, help=f"one of: {', '.join(METHODS)}")
    parser.add_argument("--task", required=True, help=f"one of: {', '.join(TASKS)}")
    parser.add_argument("--dataset", default=None,
                        help="a DSRL file or a folder holding one (default: $DSRL_DATASET_DIR, "
                             "then the shipped datasets/)")
    parser.add_argument("--seed", type=int, default=0,
                        help="training seed; the evaluation episodes are seeded from it "
                             "(dspo_ray.evaluation.evaluation_seed)")
    parser.add_argument("--steps", type=int, default=None, help="training steps (default: the method's)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], type=yaml_override,
                        metavar="KEY=VALUE", help="any other config option; repeatable")
    parser.add_argument("--n-safe", type=positive_int, default=None,
                        help="safe demonstrations in the split (default: the paper's, 15)")
    parser.add_argument("--n-unlabelled", type=positive_int, default=None,
                        help="unlabelled trajectories in the split (default: the paper's Table 3)")
    parser.add_argument("--eval-episodes", type=positive_int, default=20, help="final evaluation episodes (DSRL: 20)")
    parser.add_argument("--eval-workers", type=positive_int, default=None,
                        help="processes for evaluation episodes, this one included (default: all CPUs where that pays)")
    parser.add_argument("--threads", type=positive_int, default=1,
                        help="torch CPU threads (default 1: several threads on a shared or busy "
                             "machine are much slower than one; raise it on a dedicated one)")
    parser.add_argument("--out", default=None,
                        help="run folder (default: runs/baselines/<method>/<task>/seed<seed>)")
    args = parser.parse_args(argv)

    overrides = dict(args.overrides)
    if args.steps is not None:
        overrides["steps"] = args.steps
    config_cls, _ = get_method(args.method)
    spec = get_task(args.task)
    if "seed" in overrides:
        raise ConfigError("seed: use --seed, not --set seed=...")
    config_from_dict(config_cls, {**overrides, "seed": args.seed})  # every setting, before any work
    split = SplitConfig(n_safe=args.n_safe, n_unlabelled=args.n_unlabelled)
    import torch

    torch.set_num_threads(args.threads)
    out = Path(args.out) if args.out else Path("runs/baselines") / args.method / spec.name / f"seed{args.seed}"
    with removed_on_failure(out):  # a failed or interrupted run leaves no folder behind
        metrics = run_method(args.method, spec.name, args.seed, overrides, dataset=args.dataset,
                             workdir=out, eval_episodes=args.eval_episodes,
                             eval_workers=args.eval_workers, split=split)
        metrics["run_dir"] = str(out)
        write_json_atomic(out / "result.json", metrics)
    print(json.dumps(metrics, indent=2, sort_keys=True))
    return 0


def cli() -> int:
    """The ``dspo-train`` command."""
    return run_cli(main)


if __name__ == "__main__":
    sys.exit(cli())
