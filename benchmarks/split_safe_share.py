"""How paper-shaped is each dataset's Table 3 split? The safe share of the unlabelled set, how
well the trivial rule (rank by negative return) finds its safe trajectories, and how many
unlabelled trajectories earn what the demonstrations earn (within their return range), and of
those how many are safe: the data DSPO's generation conditions ask for (safe, at the
demonstrations' returns), beyond the demonstrations themselves. Per split seed.

    python benchmarks/split_safe_share.py --task CarCircle --task AntRun --seeds 0 1 2
    DSRL_DATASET_DIR=/path/to/built python benchmarks/split_safe_share.py --task PointGoal1

The datasets are found as every run finds them (``find_dataset``: $DSRL_DATASET_DIR, the shipped
packs, the build cache). Reads the hidden truth: a description of the data, never a selection.
Prints a markdown table (``--out F`` also writes it).
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import time

import numpy as np
from dspo_ray.data import SplitConfig, find_dataset, load_task_data
from dspo_ray.dspo.discriminator import ranking_metrics
from dspo_ray.io import write_bytes_atomic
from dspo_ray.tasks import TASKS


def split_row(task: str, seed: int, demo_selection: str = "top_return") -> str:
    data, truth = load_task_data(task, split=SplitConfig(seed=seed, demo_selection=demo_selection))
    unlabelled_safe = truth.is_safe[len(data.safe_demos):]
    returns = np.array([t.reward_return for t in data.unlabelled])
    auroc, _ = ranking_metrics(-returns, unlabelled_safe)  # the rule every stage-1 table shows
    demo_returns = [t.reward_return for t in data.safe_demos]
    at_demo_returns = (returns >= min(demo_returns)) & (returns <= max(demo_returns))
    return (f"| {task} | {find_dataset(task).name} | {seed} | {len(data.safe_demos)} + {len(data.unlabelled)} "
            f"| {unlabelled_safe.mean():.3f} | {auroc:.3f} "
            f"| {(at_demo_returns & unlabelled_safe).sum()} / {at_demo_returns.sum()} |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", action="append", choices=list(TASKS), required=True)
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2], help="split seeds")
    p.add_argument("--demo-selection", choices=["top_return", "random"], default="top_return",
                   help="which safe trajectories become demonstrations (split.demo_selection)")
    p.add_argument("--out", help="also write the table to this file")
    args = p.parse_args()
    rows = ["| task | file | split seed | demos + unlabelled | unlabelled safe share | negative-return AUROC "
            "| unlabelled at the demos' returns: safe / all |",
            "|---|---|---|---|---|---|---|"]
    for task in args.task:
        for seed in args.seeds:
            rows.append(split_row(task, seed, args.demo_selection))
            print(rows[-1], flush=True)
    if args.out:
        header = [f"- command: `python benchmarks/split_safe_share.py {shlex.join(sys.argv[1:])}`",
                  f"- machine: {platform.node()}, {platform.machine()}; "
                  f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
                  "- reads the hidden truth: a description of the data, never a selection", ""]
        write_bytes_atomic(args.out, ("\n".join(header + rows) + "\n").encode())


if __name__ == "__main__":
    main()
