"""Record episodes from a simulator into CostedTrajectory objects (collector and test data)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from dspo_ray.data.trajectory import CostedTrajectory


class EpisodeRecorder:
    """Accumulates one environment's steps and hands back a CostedTrajectory when it ends.

    The last step is marked terminal when the simulator ended the episode, and timeout when it was
    cut (by the simulator's time limit or the caller's step budget), so that every trajectory is
    well terminated in the DSRL format.
    """

    KEYS = ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts", "costs")

    def __init__(self):
        self.columns: dict[str, list] = {k: [] for k in self.KEYS}

    def add(self, obs, action, reward, next_obs, terminated: bool, truncated: bool,
            cost: float) -> CostedTrajectory | None:
        """Record one step; returns the finished trajectory (and starts afresh) when it ends."""
        timeout = truncated and not terminated
        for k, v in zip(self.KEYS, (obs, action, reward, next_obs, terminated, timeout, cost)):
            self.columns[k].append(v)
        if not (terminated or truncated):
            return None
        dtypes = {"terminals": bool, "timeouts": bool}
        trajectory = CostedTrajectory(**{k: np.asarray(v, dtype=dtypes.get(k, np.float32))
                                         for k, v in self.columns.items()})
        self.columns = {k: [] for k in self.KEYS}
        return trajectory


def record_episode(env, act: Callable[[np.ndarray], np.ndarray], seed: int | None,
                   max_steps: int) -> CostedTrajectory:
    """Run one episode with ``act`` and keep every step, costs included."""
    obs, _ = env.reset(seed=seed)
    recorder = EpisodeRecorder()
    for step in range(max_steps):
        action = np.asarray(act(obs), dtype=np.float32)
        next_obs, reward, terminated, truncated, info = env.step(action)
        trajectory = recorder.add(obs, action, reward, next_obs, terminated,
                                  truncated or step == max_steps - 1, info["cost"])
        if trajectory is not None:
            return trajectory
        obs = next_obs
    raise ValueError(f"max_steps must be >= 1, got {max_steps}")
