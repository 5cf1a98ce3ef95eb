"""Record episodes from a simulator into CostedTrajectory objects (collector and test data)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from dspo_ray.data.trajectory import CostedTrajectory


def record_episode(env, act: Callable[[np.ndarray], np.ndarray], seed: int | None,
                   max_steps: int) -> CostedTrajectory:
    """Run one episode with ``act`` and keep every step, costs included.

    The last step is marked terminal when the simulator ended the episode, and timeout when the
    step budget ran out, so that the trajectory is well terminated in the DSRL format.
    """
    obs, _ = env.reset(seed=seed)
    columns: dict[str, list] = {k: [] for k in (
        "observations", "actions", "rewards", "next_observations", "terminals", "timeouts", "costs")}
    for step in range(max_steps):
        action = np.asarray(act(obs), dtype=np.float32)
        next_obs, reward, terminated, truncated, info = env.step(action)
        timeout = (truncated or step == max_steps - 1) and not terminated
        for k, v in (("observations", obs), ("actions", action), ("rewards", reward),
                     ("next_observations", next_obs), ("terminals", terminated),
                     ("timeouts", timeout), ("costs", info["cost"])):
            columns[k].append(v)
        obs = next_obs
        if terminated or timeout:
            break
    dtypes = {"terminals": bool, "timeouts": bool}
    return CostedTrajectory(**{k: np.asarray(v, dtype=dtypes.get(k, np.float32))
                               for k, v in columns.items()})
