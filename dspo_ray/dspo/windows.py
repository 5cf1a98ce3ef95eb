"""Trajectories as plain arrays for the stage trainers, and windows cut from them.

Stage trainers take picklable plain data (they may run in Ray workers), so trajectories travel as
one ragged set of arrays: observations and actions of every trajectory concatenated, with the
trajectory lengths. Both stages learn on windows: the discriminator on segments of up to
``window`` steps (padded and masked), the diffusion model on full windows of ``horizon`` steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dspo_ray.data import CostLabelFreeData


@dataclass(frozen=True)
class RaggedTrajectories:
    """Trajectories concatenated: rows of trajectory i are ``starts[i] : starts[i] + lengths[i]``."""

    observations: np.ndarray
    """(sum of lengths, obs_dim) float32"""
    actions: np.ndarray
    """(sum of lengths, act_dim) float32"""
    lengths: np.ndarray
    """(n,) int64"""
    returns: np.ndarray
    """(n,) float64 reward returns"""
    is_demo: np.ndarray
    """(n,) bool: a safe demonstration (True) or unlabelled (False)"""

    @property
    def starts(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(np.int64)

    def __len__(self) -> int:
        return len(self.lengths)

    def observations_of(self, which: np.ndarray) -> np.ndarray:
        """Every state of the trajectories where ``which`` (n,) is True."""
        return self.observations[np.repeat(which, self.lengths)]

    def to_dict(self) -> dict[str, np.ndarray]:
        return {k: getattr(self, k) for k in ("observations", "actions", "lengths", "returns", "is_demo")}


def ragged_from_data(data: CostLabelFreeData) -> RaggedTrajectories:
    """All trajectories of the learner's data, demonstrations first (HiddenTruth's order)."""
    trajs = data.all_trajectories
    return RaggedTrajectories(
        observations=np.concatenate([t.observations for t in trajs]).astype(np.float32),
        actions=np.concatenate([t.actions for t in trajs]).astype(np.float32),
        lengths=np.array([len(t) for t in trajs], dtype=np.int64),
        returns=np.array([t.reward_return for t in trajs], dtype=np.float64),
        is_demo=np.array([True] * len(data.safe_demos) + [False] * len(data.unlabelled)),
    )


def windows_as_trajectories(observations: np.ndarray, actions: np.ndarray) -> RaggedTrajectories:
    """(n, horizon, dim) windows (generated ones, or cut from real trajectories) as n trajectories
    of ``horizon`` steps, for :func:`dspo_ray.dspo.discriminator.score_trajectories`."""
    n, horizon, obs_dim = observations.shape
    return RaggedTrajectories(observations.reshape(n * horizon, obs_dim).astype(np.float32),
                              actions.reshape(n * horizon, actions.shape[2]).astype(np.float32),
                              np.full(n, horizon, np.int64), np.zeros(n), np.zeros(n, bool))


def sample_windows(traj: RaggedTrajectories, which: np.ndarray, horizon: int,
                   rng: np.random.Generator, count: int = 400) -> RaggedTrajectories:
    """``count`` windows of ``horizon`` steps at random places of random trajectories among
    ``which`` (a mask; those shorter than ``horizon`` are skipped), each as a trajectory."""
    long_enough = np.flatnonzero(which & (traj.lengths >= horizon))
    if len(long_enough) == 0:
        raise ValueError(f"no trajectory of the chosen ones has {horizon} steps or more")
    picks = rng.choice(long_enough, count)
    starts = traj.starts[picks] + rng.integers(0, traj.lengths[picks] - horizon + 1)
    rows = starts[:, None] + np.arange(horizon)
    return windows_as_trajectories(traj.observations[rows], traj.actions[rows])


@dataclass
class WindowBatch:
    observations: np.ndarray
    """(B, W, obs_dim), zero where padded"""
    actions: np.ndarray
    """(B, W, act_dim)"""
    timesteps: np.ndarray
    """(B, W) int64, the step within the episode"""
    mask: np.ndarray
    """(B, W) bool, True on real steps"""


def cut_windows(traj: RaggedTrajectories, indices: np.ndarray, starts_in_traj: np.ndarray,
                window: int) -> WindowBatch:
    """Windows of up to ``window`` steps of trajectories ``indices`` from the given offsets."""
    b = len(indices)
    obs = np.zeros((b, window, traj.observations.shape[1]), np.float32)
    act = np.zeros((b, window, traj.actions.shape[1]), np.float32)
    steps = np.zeros((b, window), np.int64)
    mask = np.zeros((b, window), bool)
    row0 = traj.starts
    for j, (i, s) in enumerate(zip(indices, starts_in_traj)):
        n = int(min(window, traj.lengths[i] - s))
        rows = slice(row0[i] + s, row0[i] + s + n)
        obs[j, :n], act[j, :n] = traj.observations[rows], traj.actions[rows]
        steps[j, :n] = np.arange(s, s + n)
        mask[j, :n] = True
    return WindowBatch(obs, act, steps, mask)


def random_windows(traj: RaggedTrajectories, indices: np.ndarray, window: int,
                   rng: np.random.Generator) -> WindowBatch:
    """One random segment per trajectory (the whole trajectory, padded, when it is shorter)."""
    room = np.maximum(traj.lengths[indices] - window, 0)
    starts = rng.integers(0, room + 1)
    return cut_windows(traj, indices, starts, window)


def tiling_windows(traj: RaggedTrajectories, window: int) -> tuple[np.ndarray, np.ndarray]:
    """(trajectory index, offset) of windows that tile every trajectory exactly once."""
    idx, off = [], []
    for i, n in enumerate(traj.lengths):
        starts = np.arange(0, n, window)
        idx.append(np.full(len(starts), i))
        off.append(starts)
    return np.concatenate(idx), np.concatenate(off)
