"""Which reported metrics read the hidden truth. Plain Python (no torch, no Ray): config
validation uses it.

The learner's data has no cost labels; the truth (the unlabelled trajectories' cost returns) is
kept apart (``dspo_ray.data.HiddenTruth``) and read only to *report* how good the stage-1 signal is.
Every metric computed from it is named under one of :data:`HIDDEN_TRUTH_PREFIXES`; those are
reported columns only: no scheduler, searcher, early stopping or choice of a configuration may
read them (``dspo_ray.distributed.config`` refuses a sweep that would).

* ``discriminator/...``: the stage-1 signal against the truth (AUROC, average precision,
  recall/precision/accuracy/F1/Pearson at 0.5 and at the demo-min rule);
* ``neg_return/...``: the negative-return rule (score = -return) against the truth;
* ``diagnostic/...``: diagnostics built from the truth (``diagnostic/oracle_signal``: the run
  used the hidden truth as its signal).

Label-free stage-1 numbers (from the learner's data alone) are under ``stage1/``; the one the
sweeps select on is :data:`LABEL_FREE_STAGE1_METRIC`. The final simulator evaluation
(``eval/...``) measures the policy's real cost: it is the sweep's final objective (what Optuna is
told), never a training input.
"""

from __future__ import annotations

HIDDEN_TRUTH_PREFIXES = ("discriminator/", "neg_return/", "diagnostic/")
LABEL_FREE_STAGE1_METRIC = "stage1/heldout_demo_auroc_return_matched"
"""AUROC of the demonstrations held out of stage-1 training vs the unlabelled trajectories that
earn at least the lowest held-out demonstration's return. Chosen over the plain held-out AUROC
(``stage1/heldout_demo_auroc``, vs every unlabelled trajectory) because the demonstrations are
the highest-return safe trajectories: the plain one rewards a signal that merely follows the
return. Measured (docs/results/stage1.md): Spearman with the hidden-truth AUROC over a task's
stage-1 variants +0.80 / +0.93 / +0.03 (hardsparse / DroneRun / AntRun) vs -0.82 / +0.85 / -0.45
for the plain one. NaN when no unlabelled trajectory earns that much."""
EVALUATION_PREFIX = "eval/"


def reads_hidden_truth(metric: str) -> bool:
    """Whether ``metric`` is computed from the hidden truth (see HIDDEN_TRUTH_PREFIXES)."""
    return metric.startswith(HIDDEN_TRUTH_PREFIXES)
