"""Do the label-free stage-1 metrics track the hidden-truth AUROC across a sweep's trials, and
which stage-1 variant would each of them choose?

    python benchmarks/stage1_selection_check.py <sweep work folder> [<another> ...]
    (e.g. results/sweeps/table2_quick/work; several folders are read as one set of trials)

Reads each trial's labels.npz (signals, returns, which demonstrations were held out) and config,
and the split's hidden truth: an analysis of the selection metric, never part of a run. Per task:
every trial's true AUROC beside the two label-free metrics (held-out demonstrations vs all
unlabelled trajectories; vs the unlabelled ones earning at least the lowest held-out return), their
Spearman correlation with the truth over the task's trials, and, per label-free metric, the variant
it ranks first (mean over seeds) with that variant's true AUROC beside the best variant's and the
negative-return rule's. Output of the Table 2 sweeps: docs/results/stage1.md.
"""
import json
import sys
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from dspo_ray.data import load_task_data
from dspo_ray.dspo.config import load_dspo_config
from dspo_ray.dspo.discriminator import heldout_demo_metrics


def variant_name(d) -> str:
    """A short name of a discriminator config: backbone, return-agnostic, gp, the options."""
    name = ("mlp" if d.variant == "mlp" else "st") + ("" if d.return_agnostic else "-noRA")
    name += "-gp" if d.gradient_penalty > 0 else ""
    name += "-matched" if d.negatives == "return_matched" else ""
    name += "-batchvclub" if d.return_agnostic and d.vclub_samples == "batch" else ""
    name += "-nnpu" if d.pu_loss == "nnpu" else ""
    name += "-minwin" if d.score_reduction == "min_window" else ""
    name += {"none": "", "within_return": "-rerank", "within_return_if_rising": "-rerank-if-rising"}[
        d.signal_rerank]
    return name


def main(folders: list[str]) -> None:
    rows = []
    truths = {}
    for d in sorted(p for folder in folders for p in Path(folder).glob("*")):
        if not (d / "labels.npz").exists():
            continue
        cfg = load_dspo_config(json.loads((d / "config.json").read_text()))
        key = (cfg.task, cfg.split)
        if key not in truths:
            truths[key] = load_task_data(cfg.task, cfg.dataset, cfg.split)[1]
        truth = truths[key]
        with np.load(d / "labels.npz") as f:
            s, r, demo, held = f["safety_signal"], f["returns"], f["is_demo"], f["heldout_demo"]
        unl = ~demo
        safe = truth.unlabelled_is_safe
        a_truth = roc_auc_score(safe, s[unl])
        a_rule = roc_auc_score(safe, -r[unl])
        label_free = heldout_demo_metrics(s, demo, held, r)  # what the runs reported
        n_matched = int((unl & (r >= r[held].min())).sum())
        rows.append((cfg.task, variant_name(cfg.discriminator), cfg.seed, a_truth,
                     label_free["stage1/heldout_demo_auroc"],
                     label_free["stage1/heldout_demo_auroc_return_matched"], n_matched, a_rule))
    for task in sorted({r[0] for r in rows}):
        t = [r for r in rows if r[0] == task]
        print(f"{task}: {len(t)} trials; negative-return rule AUROC {t[0][7]:.3f}")
        for r in sorted(t, key=lambda r: (r[1], r[2])):
            print(f"  {r[1]:<16} seed {r[2]}  truth AUROC {r[3]:.3f}  heldout AUROC {r[4]:.3f}  "
                  f"return-matched heldout AUROC {r[5]:.3f} (vs {r[6]} unlabelled)")
        means = {v: np.mean([[r[3], r[4], r[5]] for r in t if r[1] == v], axis=0)
                 for v in sorted({r[1] for r in t})}
        best = max(means, key=lambda v: means[v][0])
        for name, i in (("heldout", 4), ("return-matched", 5)):
            rho = spearmanr([r[3] for r in t], [r[i] for r in t]).correlation
            chosen = max(means, key=lambda v: np.nan_to_num(means[v][i - 3], nan=-1))
            print(f"  {name}: Spearman with the truth over trials = {rho:.2f}; chooses {chosen} "
                  f"(true AUROC {means[chosen][0]:.3f}; best variant {best} {means[best][0]:.3f}; "
                  f"rule {t[0][7]:.3f})")


if __name__ == "__main__":
    main(sys.argv[1:])
