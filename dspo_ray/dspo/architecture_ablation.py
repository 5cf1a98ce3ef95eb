"""The paper's Figure 4 protocol: SafetyTransformer vs MLP as supervised safe/unsafe classifiers.

Section 4.2 of the paper separates a task's safe and unsafe trajectories, trains each backbone to
classify them, and scores it on held-out trajectories. This isolates the architecture question
(can the backbone read trajectory-wise safety at all?) from the positive-unlabelled problem of
stage 1: here every training trajectory carries its true label.

The classifier is stage 1's own discriminator and trainer (:func:`train_discriminator`) with the
true safe trajectories as positives and the unsafe ones as negatives (its balanced batches handle
the class imbalance) and no return-agnostic term. Reading cost labels is the point of this
diagnostic; it is never part of DSPO's cost-label-free runs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split

from dspo_ray.data import CostedTrajectory
from dspo_ray.dspo.config import DiscriminatorConfig
from dspo_ray.dspo.discriminator import load_discriminator, score_trajectories, train_discriminator
from dspo_ray.dspo.windows import RaggedTrajectories
from dspo_ray.tasks import TaskSpec
from dspo_ray.training import LocalContext

BACKBONES = ("safety_transformer", "mlp")


@dataclass(frozen=True)
class AblationResult:
    task: str
    backbone: str
    seed: int
    n_train: int
    n_train_safe: int
    n_test: int
    n_test_safe: int
    accuracy: float
    """At signal 0.5 (the classifier is trained on balanced batches)."""
    balanced_accuracy: float
    """The mean of the per-class recalls: calling everything unsafe scores 0.5."""
    auroc: float
    train_seconds: float


def labelled_trajectories(trajectories: list[CostedTrajectory], is_safe: np.ndarray) -> RaggedTrajectories:
    """Trajectories with their true safety in ``is_demo`` (the trainer's positive class)."""
    return RaggedTrajectories(
        observations=np.concatenate([t.observations for t in trajectories]).astype(np.float32),
        actions=np.concatenate([t.actions for t in trajectories]).astype(np.float32),
        lengths=np.array([len(t) for t in trajectories], dtype=np.int64),
        returns=np.array([t.reward_return for t in trajectories], dtype=np.float64),
        is_demo=np.asarray(is_safe, dtype=bool))


def split_labelled(is_safe: np.ndarray, seed: int, test_fraction: float = 0.3,
                   max_train: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Stratified train / held-out indices; at most ``max_train`` training trajectories (a
    stratified subsample, for the CPU budget)."""
    idx = np.arange(len(is_safe))
    train, test = train_test_split(idx, test_size=test_fraction, random_state=seed,
                                   stratify=is_safe)
    if max_train is not None and len(train) > max_train:
        train, _ = train_test_split(train, train_size=max_train, random_state=seed,
                                    stratify=is_safe[train])
    return np.sort(train), np.sort(test)


def run_architecture_ablation(trajectories: list[CostedTrajectory], task: TaskSpec, backbone: str,
                              config: DiscriminatorConfig, seed: int = 0,
                              test_fraction: float = 0.3,
                              max_train: int | None = 600) -> AblationResult:
    """Train ``backbone`` on labelled trajectories of ``task``, score the held-out ones."""
    import time

    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}, got {backbone!r}")
    is_safe = np.array([t.cost_return <= task.cost_limit for t in trajectories])
    if is_safe.sum() < 4 or (~is_safe).sum() < 4:
        raise ValueError(f"{task.name}: {int(is_safe.sum())} safe and {int((~is_safe).sum())} "
                         "unsafe trajectories; the ablation needs at least 4 of each")
    train, test = split_labelled(is_safe, seed, test_fraction, max_train)
    config = replace(config, variant=backbone, return_agnostic=False, gradient_penalty=0.0)
    train_set = labelled_trajectories([trajectories[i] for i in train], is_safe[train])
    test_set = labelled_trajectories([trajectories[i] for i in test], is_safe[test])
    start = time.perf_counter()
    artefact = train_discriminator(LocalContext(), train_set, config, task.max_episode_steps,
                                   seed=seed)
    seconds = time.perf_counter() - start
    signal = score_trajectories(load_discriminator(artefact), test_set, config.window)
    truth = is_safe[test]
    predicted = signal > 0.5
    return AblationResult(
        task=task.name, backbone=backbone, seed=seed, n_train=len(train),
        n_train_safe=int(is_safe[train].sum()), n_test=len(test), n_test_safe=int(truth.sum()),
        accuracy=float(accuracy_score(truth, predicted)),
        balanced_accuracy=float(balanced_accuracy_score(truth, predicted)),
        auroc=float(roc_auc_score(truth, signal)), train_seconds=seconds)
