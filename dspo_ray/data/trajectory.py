"""Trajectories: the unit of data in DSPO (the safety signal is trajectory-wise)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np


@dataclass(frozen=True, eq=False)
class Trajectory:
    """One episode as a learner sees it: states, actions and rewards, never costs."""

    observations: np.ndarray
    """(T, obs_dim) float32"""
    actions: np.ndarray
    """(T, act_dim) float32"""
    rewards: np.ndarray
    """(T,) float32"""
    next_observations: np.ndarray
    """(T, obs_dim) float32"""
    terminals: np.ndarray
    """(T,) bool: the episode ended in a terminal state at this step"""
    timeouts: np.ndarray
    """(T,) bool: the episode was cut by the time limit at this step"""

    def __len__(self) -> int:
        return len(self.rewards)

    @property
    def reward_return(self) -> float:
        return float(np.sum(self.rewards, dtype=np.float64))


@dataclass(frozen=True, eq=False)
class CostedTrajectory(Trajectory):
    """A trajectory with its per-step costs: what a collector records and a DSRL file holds.

    Only data preparation and evaluation handle these; learners get :class:`Trajectory`.
    """

    costs: np.ndarray
    """(T,) float32, the step costs"""

    @property
    def cost_return(self) -> float:
        return float(np.sum(self.costs, dtype=np.float64))

    def without_costs(self) -> Trajectory:
        return Trajectory(**{f.name: getattr(self, f.name) for f in fields(Trajectory)})


def stack_transitions(trajectories: list[Trajectory] | tuple[Trajectory, ...]) -> dict[str, np.ndarray]:
    """Concatenate trajectories into transition arrays (for BC and offline RL).

    Keys: observations, actions, rewards, next_observations, terminals, timeouts, and
    ``trajectory_index`` (which trajectory each row came from). Costs are never included.
    """
    if not trajectories:
        raise ValueError("no trajectories to stack")
    out = {f.name: np.concatenate([getattr(t, f.name) for t in trajectories])
           for f in fields(Trajectory)}
    out["trajectory_index"] = np.concatenate(
        [np.full(len(t), i, dtype=np.int64) for i, t in enumerate(trajectories)])
    return out
