"""The paper's Figure 4: SafetyTransformer vs MLP as supervised safe/unsafe trajectory classifiers.

For each task and seed: the task's trajectories (its dataset, found as everywhere else) split into
70% training / 30% held-out, stratified by true safety; each backbone trained on the training part
with the true labels (stage 1's trainer, no return-agnostic term); accuracy, balanced accuracy and
AUROC on the held-out part. Writes ``figure4.csv`` (one row per run), ``figure4.md`` (per task,
mean +- std over seeds, with the command) and ``figure4.png`` to ``--out``.

This diagnostic reads cost labels by design (it asks whether a backbone CAN see safety); DSPO's
own runs never do.

    dspo-figure4 --out docs/results/figure4        (= python experiments/figure4.py ...)
"""

from __future__ import annotations

import argparse
import datetime
import platform
import shlex
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path

import pandas as pd
import torch

from dspo_ray.cli import add_repeatable, nonnegative_int, positive_int, run_cli
from dspo_ray.data import find_dataset, load_trajectories
from dspo_ray.dspo.architecture_ablation import BACKBONES, run_architecture_ablation
from dspo_ray.dspo.config import profile_config
from dspo_ray.io import atomic_path, write_bytes_atomic
from dspo_ray.tasks import get_task

# the datasets shipped as packs in datasets/ (datasets/DATASETS.md); the built ones need --task
SHIPPED = ["CarCircle", "AntRun", "DroneRun", "hardsparse", "SwimmerVel"]


def table(runs: pd.DataFrame) -> str:
    lines = ["| task | backbone | seeds | held-out (safe) | accuracy | balanced accuracy | AUROC |",
             "|---|---|---|---|---|---|---|"]
    for (task, backbone), g in runs.groupby(["task", "backbone"], sort=False):
        def cell(c):
            return f"{g[c].mean():.3f} ± {g[c].std(ddof=0):.3f}"
        lines.append(f"| {task} | {backbone} | {len(g)} | {int(g['n_test'].iloc[0])} "
                     f"({int(g['n_test_safe'].iloc[0])}) | {cell('accuracy')} | "
                     f"{cell('balanced_accuracy')} | {cell('auroc')} |")
    return "\n".join(lines)


def plot(runs: pd.DataFrame, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(dict.fromkeys(runs["task"]))
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    width = 0.38
    for ax, metric in zip(axes, ["balanced_accuracy", "auroc"]):
        for k, backbone in enumerate(BACKBONES):
            g = runs[runs["backbone"] == backbone].groupby("task", sort=False)[metric]
            mean, std = g.mean().reindex(tasks), g.std(ddof=0).reindex(tasks)
            xs = [i + (k - 0.5) * width for i in range(len(tasks))]
            ax.bar(xs, mean, width, yerr=std, capsize=3,
                   label="SafetyTransformer" if backbone == "safety_transformer" else "MLP")
        ax.axhline(0.5, color="grey", lw=0.8, ls="--")
        ax.set_xticks(range(len(tasks)), tasks, fontsize=8)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"held-out {metric.replace('_', ' ')}", fontsize=10)
    axes[0].legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_repeatable(p, "--task", "--tasks", help="a task; repeat for several (default: the five shipped as packs)")
    add_repeatable(p, "--seed", "--seeds", type=nonnegative_int,
                   help="a seed; repeat for several (default: 0, 1 and 2)")
    p.add_argument("--profile", default="quick", choices=["quick", "paper"],
                   help="discriminator settings of this DSPO profile (default: quick)")
    p.add_argument("--steps", type=positive_int, default=None,
                   help="training steps (default: the profile's)")
    p.add_argument("--max-train", type=positive_int, default=600,
                   help="at most this many training trajectories (stratified; CPU budget)")
    p.add_argument("--dataset", default=None, help="a folder of DSRL files (default: as elsewhere)")
    p.add_argument("--out", type=Path, default=Path("docs/results/figure4"),
                   help="folder for figure4.csv, figure4.md and figure4.png")
    args = p.parse_args(argv)
    args.tasks = args.tasks or SHIPPED
    args.seeds = args.seeds or [0, 1, 2]
    specs = [get_task(t) for t in args.tasks]
    paths = {s.name: find_dataset(s, args.dataset) for s in specs}  # all found before any training
    torch.set_num_threads(1)
    config = profile_config(args.profile).discriminator
    if args.steps is not None:
        config = replace(config, steps=args.steps, warmup_steps=min(config.warmup_steps, args.steps // 10))
    command = "python experiments/figure4.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    start = time.perf_counter()
    rows = []
    for spec in specs:
        trajectories = load_trajectories(paths[spec.name], spec)
        for seed in args.seeds:
            for backbone in BACKBONES:
                r = run_architecture_ablation(trajectories, spec, backbone, config, seed,
                                              max_train=args.max_train)
                rows.append(asdict(r))
                print(f"{spec.name:>12} seed {seed} {backbone:>18}: accuracy {r.accuracy:.3f}, "
                      f"balanced {r.balanced_accuracy:.3f}, AUROC {r.auroc:.3f} "
                      f"({r.train_seconds:.0f} s)", flush=True)
    runs = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(args.out / "figure4.csv", runs.to_csv(index=False).encode())
    plot(runs, args.out / "figure4.png")
    note = (f"# Figure 4 protocol: SafetyTransformer vs MLP, supervised, held-out trajectories\n\n"
            f"Command: `{command.strip()}`  \n"
            f"Machine: {platform.machine()}, {torch.get_num_threads()} torch thread(s); "
            f"date {datetime.date.today()}; wall time {(time.perf_counter() - start) / 60:.1f} min.  \n"
            f"Discriminator: the `{args.profile}` profile's ({config.steps} steps, window "
            f"{config.window}, batch {config.batch_size}, lr {config.learning_rate:g}), "
            f"no return-agnostic term; at most {args.max_train} training trajectories.\n\n"
            f"{table(runs)}\n\n![figure 4](figure4.png)\n")
    write_bytes_atomic(args.out / "figure4.md", note.encode())
    print(f"figure4.csv, figure4.md and figure4.png written to {args.out.resolve()}")
    return 0


def cli() -> int:
    """The ``dspo-figure4`` command."""
    return run_cli(main)


if __name__ == "__main__":
    sys.exit(cli())
