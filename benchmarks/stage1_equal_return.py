"""Is the stage-1 signal wrong about safety, or right about safety and confounded by the return?

    python benchmarks/stage1_equal_return.py <sweep work folder> [<another> ...] > out.md
    (e.g. results/sweeps/table2_matched/work; several folders are read as one set of trials)

Reads each finished stage-1 run's labels.npz (signals, returns, which are demonstrations) and
config, and the split's hidden truth: an analysis for reporting, never part of a run. Per task and
stage-1 variant (mean over seeds), on the unlabelled set:

* AUROC: the signal against true safety (Table 2's first column);
* AUROC at equal return (``dspo_ray.dspo.discriminator.auroc_at_equal_return``): the same, over
  pairs of near-equal return only: whether the signal tells the safe one of two trajectories of the
  same return, which is what DSPO's (return, safety)-conditioned generation needs of it;
* the signal's correlation with the return (label-free; the return-agnostic aim is 0);
* AUROC after the signal is re-ranked within its return (``discriminator.signal_rerank:
  within_return``, ``dspo_ray.dspo.discriminator.rerank_within_return``): each trajectory's signal
  replaced by its percentile among the unlabelled trajectories of near-equal return, from signals
  and returns alone. It removes the signal's return dependence by construction; the column shows
  what that does to the plain AUROC. And ``within_return_if_rising``: re-ranked only where the
  signal rises with the return (per run, from signals and returns alone).

and the negative-return rule's AUROC and AUROC at equal return beside them. Output:
docs/results/stage1_equal_return.md.
"""
import json
import sys
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score
from stage1_selection_check import variant_name

from dspo_ray.data import load_task_data
from dspo_ray.dspo.config import load_dspo_config
from dspo_ray.dspo.discriminator import auroc_at_equal_return, rerank_signals


def main(folders: list[str]) -> None:
    rows, truths = [], {}
    for d in sorted(p for folder in folders for p in Path(folder).glob("*")):
        if not (d / "labels.npz").exists():
            continue
        cfg = load_dspo_config(json.loads((d / "config.json").read_text()))
        if cfg.stage1_oracle:
            continue
        key = (cfg.task, cfg.split)
        if key not in truths:
            data, truth = load_task_data(cfg.task, cfg.dataset, cfg.split)
            truths[key] = (np.array([t.rewards.sum() for t in data.all_trajectories]), truth)
        returns, truth = truths[key]
        safe = truth.unlabelled_is_safe
        with np.load(d / "labels.npz") as f:
            demo, all_s, all_r = f["is_demo"], f["safety_signal"], f["returns"]
        s, r = all_s[~demo], all_r[~demo]
        if all_r.shape != returns.shape or not np.allclose(all_r, returns, rtol=1e-4, atol=1e-3):
            print(f"skipped {d}: made on another file of {cfg.task} than the current one",
                  file=sys.stderr)
            continue
        if any(r["task"] == cfg.task and r["variant"] == variant_name(cfg.discriminator)
               and r["seed"] == cfg.seed for r in rows):
            # a second run of the same settings (a trial restarted after its labels were made)
            print(f"skipped {d}: a run of the same task, variant and seed is counted", file=sys.stderr)
            continue
        rows.append({"task": cfg.task, "variant": variant_name(cfg.discriminator), "seed": cfg.seed,
                     "auroc": roc_auc_score(safe, s),
                     "equal": auroc_at_equal_return(s, safe, r),
                     "corr": float(np.corrcoef(s, r)[0, 1]),
                     # the labels stage's discriminator.signal_rerank
                     **{name: roc_auc_score(safe, rerank_signals(all_s, all_r, demo, mode)[~demo])
                        for name, mode in (("reranked", "within_return"),
                                           ("if_rising", "within_return_if_rising"))},
                     "rule": roc_auc_score(safe, -r),
                     "rule_equal": auroc_at_equal_return(-r, safe, r),
                     "safe_share": float(safe.mean())})
    print("| task (unlabelled safe share) | stage-1 variant | seeds | AUROC | AUROC at equal return | "
          "signal-return corr. | AUROC re-ranked within return | AUROC re-ranked if rising |")
    print("|---|---|---|---|---|---|---|---|")
    for task in sorted({r["task"] for r in rows}):
        t = [r for r in rows if r["task"] == task]
        for variant in sorted({r["variant"] for r in t}):
            v = [r for r in t if r["variant"] == variant]
            cells = [f"{np.mean([r[k] for r in v]):.3f}" for k in ("auroc", "equal", "corr", "reranked", "if_rising")]
            print(f"| {task} ({t[0]['safe_share']:.0%}) | {variant} | {len(v)} | "
                  + " | ".join(cells) + " |")
        print(f"| {task} ({t[0]['safe_share']:.0%}) | negative-return rule | - | {t[0]['rule']:.3f} | "
              f"{t[0]['rule_equal']:.3f} | -1 | - | - |")


if __name__ == "__main__":
    main(sys.argv[1:])
