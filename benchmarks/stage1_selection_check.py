"""Do the label-free stage-1 metrics track the hidden-truth AUROC across a sweep's trials?

    python benchmarks/stage1_selection_check.py <sweep work folder, e.g. results/sweeps/table2_quick/work>

Reads each trial's labels.npz (signals, returns, which demonstrations were held out) and config,
and the split's hidden truth: an analysis of the selection metric, never part of a run.
Output of the reduced Table 2 sweep: docs/results/stage1.md.
"""
import json, sys
from pathlib import Path
import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score
from dspo_ray.data import load_task_data
from dspo_ray.dspo.config import load_dspo_config

root = Path(sys.argv[1])
rows = []
truths = {}
for d in sorted(root.glob("*")):
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
    a_held = roc_auc_score(np.r_[np.ones(held.sum()), np.zeros(unl.sum())], np.r_[s[held], s[unl]])
    hi = unl & (r >= r[held].min())
    a_matched = (roc_auc_score(np.r_[np.ones(held.sum()), np.zeros(hi.sum())], np.r_[s[held], s[hi]])
                 if hi.any() else np.nan)
    d_ = cfg.discriminator
    variant = ("mlp" if d_.variant == "mlp" else "st") + ("" if d_.return_agnostic else "-noRA") + (
        "-gp" if d_.gradient_penalty > 0 else "")
    rows.append((cfg.task, variant, cfg.seed, a_truth, a_held, a_matched, int(hi.sum())))
for task in sorted({r[0] for r in rows}):
    t = [r for r in rows if r[0] == task]
    print(f"{task}: {len(t)} trials")
    for r in sorted(t, key=lambda r: (r[1], r[2])):
        print(f"  {r[1]:<10} seed {r[2]}  truth AUROC {r[3]:.3f}  heldout AUROC {r[4]:.3f}  "
              f"return-matched heldout AUROC {r[5]:.3f} (vs {r[6]} unlabelled)")
    for name, i in (("heldout", 4), ("return-matched", 5)):
        rho = spearmanr([r[3] for r in t], [r[i] for r in t]).correlation
        print(f"  Spearman(truth AUROC, {name} AUROC) over trials = {rho:.2f}")
