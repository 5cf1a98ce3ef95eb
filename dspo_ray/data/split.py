"""The paper's problem setup as an object: cost-label-free task data and the hidden truth.

From a full dataset (episodes with costs) we build what a learner receives: N_S safe demonstrations
and N_U unlabelled trajectories, with no costs anywhere in them. The truth about each trajectory
(cost return, safe or not) goes into a separate object for evaluation and discriminator metrics only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from dspo_ray.config import bounded
from dspo_ray.data.trajectory import CostedTrajectory, Trajectory
from dspo_ray.tasks import TaskSpec, get_task

DemoSelection = Literal["top_return", "random"]


class SplitError(ValueError):
    """The dataset cannot provide the split that was asked for."""


@dataclass(frozen=True)
class CostLabelFreeData:
    """Everything a learner may see: safe demonstrations and unlabelled trajectories, no costs."""

    task: TaskSpec
    safe_demos: tuple[Trajectory, ...]
    unlabelled: tuple[Trajectory, ...]

    @property
    def all_trajectories(self) -> tuple[Trajectory, ...]:
        """Demonstrations first, then unlabelled: the order HiddenTruth.is_safe follows."""
        return self.safe_demos + self.unlabelled


@dataclass(frozen=True)
class HiddenTruth:
    """Cost returns of the learner's trajectories, in the order of ``all_trajectories``.

    Only evaluation and discriminator metrics may read this.
    """

    cost_limit: float
    demo_cost_returns: np.ndarray
    unlabelled_cost_returns: np.ndarray

    @property
    def unlabelled_is_safe(self) -> np.ndarray:
        return self.unlabelled_cost_returns <= self.cost_limit

    @property
    def is_safe(self) -> np.ndarray:
        """Safety of every trajectory, demonstrations first (all True) then unlabelled."""
        return np.concatenate([self.demo_cost_returns, self.unlabelled_cost_returns]) <= self.cost_limit


@dataclass(frozen=True)
class SplitConfig:
    n_safe: int | None = bounded(None, ge=1)
    """Number of safe demonstrations; None takes the task's Table 3 value (15)."""
    n_unlabelled: int | None = bounded(None, ge=1)
    """Number of unlabelled trajectories; None takes Table 3's (800 / 500 / 400 by suite)."""
    demo_selection: DemoSelection = "top_return"
    """Which safe trajectories become demonstrations: the highest-return ones or a random draw."""
    cost_limit: float | None = bounded(None, ge=0)
    """Safety threshold on the cost return; None takes the task's (paper Table 3)."""
    seed: int = bounded(0, ge=0)
    """Seeds the draw of unlabelled trajectories (and of demonstrations when random)."""


def make_cost_label_free_split(
    trajectories: list[CostedTrajectory],
    task: str | TaskSpec,
    config: SplitConfig = SplitConfig(),
) -> tuple[CostLabelFreeData, HiddenTruth]:
    spec = get_task(task)
    n_safe = spec.n_safe if config.n_safe is None else config.n_safe
    n_unlabelled = spec.n_unlabelled if config.n_unlabelled is None else config.n_unlabelled
    cost_limit = spec.cost_limit if config.cost_limit is None else config.cost_limit
    if n_safe < 1 or n_unlabelled < 1:
        raise SplitError(f"n_safe and n_unlabelled must be >= 1, got {n_safe} and {n_unlabelled}")
    rng = np.random.default_rng(config.seed)

    cost_returns = np.array([t.cost_return for t in trajectories])
    reward_returns = np.array([t.reward_return for t in trajectories])
    safe_idx = np.flatnonzero(cost_returns <= cost_limit)
    if len(safe_idx) < n_safe:
        raise SplitError(
            f"task {spec.name}: only {len(safe_idx)} of {len(trajectories)} trajectories are safe "
            f"(cost return <= {cost_limit:g}) but {n_safe} safe demonstrations were asked for; "
            "lower n_safe or collect more safe data")
    if config.demo_selection == "top_return":
        # stable sort so that equal returns keep file order: the split is reproducible
        demo_idx = safe_idx[np.argsort(-reward_returns[safe_idx], kind="stable")[:n_safe]]
    elif config.demo_selection == "random":
        demo_idx = rng.choice(safe_idx, size=n_safe, replace=False)
    else:
        raise SplitError(f"demo_selection must be 'top_return' or 'random', got {config.demo_selection!r}")

    rest = np.setdiff1d(np.arange(len(trajectories)), demo_idx)
    if len(rest) < n_unlabelled:
        raise SplitError(
            f"task {spec.name}: {len(rest)} trajectories remain after the demonstrations but "
            f"{n_unlabelled} unlabelled ones were asked for; lower n_unlabelled or collect more data")
    unlabelled_idx = np.sort(rng.choice(rest, size=n_unlabelled, replace=False))

    data = CostLabelFreeData(
        task=spec,
        safe_demos=tuple(trajectories[i].without_costs() for i in demo_idx),
        unlabelled=tuple(trajectories[i].without_costs() for i in unlabelled_idx),
    )
    truth = HiddenTruth(cost_limit=cost_limit, demo_cost_returns=cost_returns[demo_idx],
                        unlabelled_cost_returns=cost_returns[unlabelled_idx])
    return data, truth
