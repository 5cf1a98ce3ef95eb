"""Can the label-free metric choose how a trained discriminator scores trajectories?

    python benchmarks/stage1_scoring_choice.py <sweep work folder> [<another> ...] [--variants mlp ...]

Scoring (DiscriminatorConfig.score_reduction / score_window) changes no training, so every
trained stage-1 artefact of a Table 2 sweep can be rescored both ways: the mean of z_t over the
trajectory (the paper), or its least safe window of 10, 25 or 50 steps. For each trial this
prints the hidden-truth AUROC on the unlabelled trajectories (reported only) and the label-free
held-out demonstrations' return-matched AUROC (`stage1/heldout_demo_auroc_return_matched`, what
the sweeps select on) for each scoring, and per task and variant which scoring the label-free
metric would choose (mean over seeds) against the one the truth prefers. An analysis, never part
of a run. Output: docs/results/stage1_matched/scoring_choice.txt.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import roc_auc_score

from dspo_ray.data import load_task_data
from dspo_ray.dspo.config import load_dspo_config
from dspo_ray.dspo.discriminator import (heldout_demo_metrics, load_discriminator,
                                         score_trajectories)
from dspo_ray.dspo.windows import ragged_from_data
from stage1_selection_check import variant_name  # benchmarks/, this script's folder

SCORINGS = {"mean": ("mean", None), "min-10": ("min_window", 10), "min-25": ("min_window", 25),
            "min-50": ("min_window", 50)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("work", nargs="+", help="sweep work folders, read as one set of trials")
    p.add_argument("--variants", nargs="*", help="only these variant names (default: all)")
    args = p.parse_args()
    torch.set_num_threads(1)
    rows, data_cache = [], {}
    for d in sorted(p for folder in args.work for p in Path(folder).glob("*")):
        if not (d / "labels.npz").exists() or not (d / "discriminator.pt").exists():
            continue
        cfg = load_dspo_config(json.loads((d / "config.json").read_text()))
        name = variant_name(cfg.discriminator)
        if args.variants and name not in args.variants:
            continue
        key = (cfg.task, cfg.split)
        if key not in data_cache:
            data, truth = load_task_data(cfg.task, cfg.dataset, cfg.split)
            data_cache[key] = (ragged_from_data(data), truth)
        traj, truth = data_cache[key]
        with np.load(d / "labels.npz") as f:
            heldout = f["heldout_demo"]
        model = load_discriminator(torch.load(d / "discriminator.pt", map_location="cpu",
                                              weights_only=False))
        unl = ~traj.is_demo
        for scoring, (reduction, window) in SCORINGS.items():
            s = score_trajectories(model, traj, window or cfg.discriminator.window,
                                   reduction=reduction)
            label_free = heldout_demo_metrics(s, traj.is_demo, heldout, traj.returns)[
                "stage1/heldout_demo_auroc_return_matched"]
            rows.append((cfg.task, name, cfg.seed, scoring,
                         roc_auc_score(truth.unlabelled_is_safe, s[unl]), label_free))
    for task in sorted({r[0] for r in rows}):
        print(task)
        for name in sorted({r[1] for r in rows if r[0] == task}):
            t = [r for r in rows if r[0] == task and r[1] == name]
            means = {sc: (np.mean([r[4] for r in t if r[3] == sc]),
                          np.mean([r[5] for r in t if r[3] == sc])) for sc in SCORINGS}
            cells = "  ".join(f"{sc} {m[0]:.3f}/{m[1]:.3f}" for sc, m in means.items())
            chosen = max(means, key=lambda sc: means[sc][1])
            best = max(means, key=lambda sc: means[sc][0])
            print(f"  {name:<16} (truth/label-free, {len({r[2] for r in t})} seeds) {cells}")
            print(f"  {'':<16} label-free chooses {chosen} (truth {means[chosen][0]:.3f}); "
                  f"truth prefers {best} ({means[best][0]:.3f}); mean scoring {means['mean'][0]:.3f}")


if __name__ == "__main__":
    main()
