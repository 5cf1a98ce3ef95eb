"""``make_env``: one gymnasium environment for any of the 23 registry tasks.

Contract (checked by ``tests/test_envs.py``): gymnasium API; float32 observations of shape
``(task.obs_dim,)``; a Box action space of shape ``(task.act_dim,)``; the step cost as a float in
``info["cost"]``; truncation at ``task.max_episode_steps``; the first ``reset()`` (without a seed) uses
the ``seed`` given to ``make_env``, and the action space is seeded with it too.

Simulators are imported lazily (MetaDrive/panda3d take seconds to import). They must have been
patched by ``scripts/patch_simulators.py`` (done by ``scripts/setup_env.sh``).
"""

from __future__ import annotations

import contextlib
import io
import sys
from typing import Any

import gymnasium
import numpy as np

from dspo_ray.tasks import TaskSpec, get_task

# DSRL's OfflineMetadrive-{easydense,mediummean,hardsparse}-v0 (dsrl/offline_metadrive/gym_envs.py):
# one procedurally generated map per task (3 blocks, fixed block sequence), no accidents, traffic
# density 0.2 / 0.15 / 0.1 for dense / mean / sparse, horizon 1000.
_METADRIVE_CONFIGS: dict[str, dict[str, Any]] = {
    "easydense": dict(start_seed=0, traffic_density=0.2, block_sequence="SCS"),
    "mediummean": dict(start_seed=100, traffic_density=0.15, block_sequence="XST"),
    "hardsparse": dict(start_seed=200, traffic_density=0.1, block_sequence="TRO"),
}


def make_env(task: str | TaskSpec, seed: int) -> gymnasium.Env:
    """A fresh environment for ``task`` whose first ``reset()`` is seeded with ``seed``."""
    spec = get_task(task)
    import_simulator(spec)
    if spec.suite == "MetaDrive":
        env: gymnasium.Env = _MetaDriveEnv(spec)
    else:
        with _process_std_streams():
            # gymnasium.make registers nothing, so calling make_env many times is harmless.
            env = gymnasium.make(spec.env_id, max_episode_steps=spec.max_episode_steps,
                                 disable_env_checker=True)
    return _Contract(env, spec, seed)


def import_simulator(task: str | TaskSpec) -> None:
    """Import the task's simulator package (seconds for MetaDrive/panda3d); a no-op once done.

    ``make_env`` calls it; a process that will make environments later may call it ahead."""
    spec = get_task(task)
    if spec.suite == "SafetyGym":
        import safety_gymnasium  # noqa: F401  (registers the *Gymnasium-v* ids with gymnasium)
    elif spec.suite == "BulletGym":
        with _process_std_streams():
            import bullet_safety_gym  # noqa: F401  (registers the Safety*-v0 ids with gymnasium)
    elif spec.suite == "MetaDrive":
        # quiet: metadrive prints its gym registrations, gym 0.26 an "unmaintained" notice, and
        # panda3d complains (without a window) that there is no /dev/input
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            import metadrive.envs  # noqa: F401
    else:
        raise ValueError(f"task {spec.name!r}: unknown suite {spec.suite!r}")


@contextlib.contextmanager
def _process_std_streams():
    """Point sys.stdout/sys.stderr back at the process's own streams for a moment.

    Bullet-Safety-Gym hides pybullet's banner (at import and when it creates an environment) with a
    helper that fflush()es the libc symbol named after ``sys.stdout.name``/``sys.stderr.name``; it
    raises "undefined symbol" when they were replaced by objects with other string names (pytest's
    capture, Jupyter). The file descriptors stay whatever the host redirected them to.
    """
    out = sys.__stdout__ if sys.__stdout__ is not None else sys.stdout
    err = sys.__stderr__ if sys.__stderr__ is not None else sys.stderr
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield


def simulator_state(env: gymnasium.Env) -> np.ndarray:
    """A MuJoCo task's full simulator state, ``[qpos, qvel]`` (float64), e.g. just after a reset."""
    sim = _mujoco_env(env)
    return np.concatenate([sim.data.qpos, sim.data.qvel])


def restore_simulator_state(env: gymnasium.Env, state: np.ndarray) -> np.ndarray:
    """Put a MuJoCo task's simulator in ``state`` (from :func:`simulator_state`); returns the
    observation there. Stepping on from it repeats, bit for bit, what followed the saved state."""
    sim = _mujoco_env(env)
    nq = sim.model.nq
    sim.set_state(state[:nq], state[nq:])
    return env._obs(sim._get_obs())


def _mujoco_env(env: gymnasium.Env):
    sim = env.unwrapped
    if not (hasattr(sim, "set_state") and hasattr(sim, "data") and hasattr(sim, "_get_obs")):
        raise ValueError(f"{env.task.name}: not a MuJoCo task, its simulator state cannot be saved")
    return sim


class _Contract(gymnasium.Wrapper):
    """Enforces the module's contract on top of the simulator's own environment."""

    def __init__(self, env: gymnasium.Env, spec: TaskSpec, seed: int):
        super().__init__(env)
        self.task = spec
        self._pending_seed: int | None = int(seed)
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (spec.obs_dim,), np.float32)
        space = env.action_space
        if not isinstance(space, gymnasium.spaces.Box) or space.shape != (spec.act_dim,):
            raise RuntimeError(f"{spec.name}: expected a Box action space of shape ({spec.act_dim},), "
                               f"the simulator has {space}")
        self.action_space = gymnasium.spaces.Box(space.low.astype(np.float32),
                                                space.high.astype(np.float32), space.shape, np.float32)
        self.action_space.seed(int(seed))

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        if seed is None:
            seed, self._pending_seed = self._pending_seed, None
        else:
            self._pending_seed = None
        if seed is not None and self.task.suite == "BulletGym":
            # Bullet-Safety-Gym ignores reset(seed=...): its start states and goals are drawn from
            # numpy's *global* RNG (np.random.uniform in its tasks and agents), so seeding that is
            # the only way to make a seeded reset reproducible. Side effect: np.random is reseeded.
            np.random.seed(seed)
        obs, info = self.env.reset(seed=seed, options=options)
        return self._obs(obs), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["cost"] = float(info.get("cost", 0.0))
        return self._obs(obs), float(reward), bool(terminated), bool(truncated), info

    def _obs(self, obs) -> np.ndarray:
        obs = np.asarray(obs, dtype=np.float32)
        if obs.shape != (self.task.obs_dim,):
            raise RuntimeError(f"{self.task.name}: observation of shape {obs.shape}, the registry "
                               f"says ({self.task.obs_dim},)")
        return obs


class _MetaDriveEnv(gymnasium.Env):
    """DSRL's safe MetaDrive task behind the gymnasium API.

    MetaDrive 0.2.6 speaks the old gym API (``reset(force_seed) -> obs``, 4-tuple ``step``) and
    only knows the task's one map seed. Here the map is always that seed; the ``seed`` of ``reset``
    seeds the traffic instead (DSRL uses random traffic, drawn from the traffic manager's RNG, which
    would otherwise be seeded from the OS). As in DSRL, the step cost is MetaDrive's (crash / out of
    road) plus a speeding cost and a lidar proximity cost, and an episode terminates on arrival,
    crash or leaving the road. MetaDrive allows one live environment per process.
    """

    metadata = {"render_modes": []}

    def __init__(self, spec: TaskSpec):
        self.task = spec
        cfg = _METADRIVE_CONFIGS[spec.name]
        # quiet: metadrive prints its gym registrations, gym 0.26 an "unmaintained" notice, and
        # panda3d complains (without a window) that there is no /dev/input
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            from metadrive.engine.engine_utils import engine_initialized
            from metadrive.envs import SafeMetaDriveEnv
            from metadrive.manager.traffic_manager import TrafficMode
            from panda3d.core import loadPrcFileData
        loadPrcFileData("", "notify-level-device fatal\nnotify-level-task error")
        if engine_initialized():
            raise RuntimeError("MetaDrive allows only one environment per process: close() the "
                               "previous MetaDrive environment before making another")
        self._start_seed = cfg["start_seed"]
        self._env = SafeMetaDriveEnv(dict(
            start_seed=cfg["start_seed"], environment_num=1, traffic_density=cfg["traffic_density"],
            map=3, map_config=dict(type="block_sequence", config=cfg["block_sequence"]),
            accident_prob=0.0, horizon=spec.max_episode_steps, use_render=False,
            # DSRL's SafeMetaDriveEnv_FSRL defaults (its idm_* keys are read nowhere in 0.2.6)
            crash_vehicle_penalty=0.0, random_traffic=True, traffic_mode=TrafficMode.Hybrid,
        ))
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, (spec.obs_dim,), np.float32)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (spec.act_dim,), np.float32)
        self._steps = 0

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._env.lazy_init()  # creates the engine on first use (a no-op afterwards)
        if seed is not None:
            from metadrive.base_class.randomizable import Randomizable
            # PGTrafficManager.seed() ignores seeds when traffic is random: seed its RNG directly
            Randomizable.seed(self._env.engine.traffic_manager, int(seed) % 2**32)
        obs = self._env.reset(force_seed=self._start_seed)
        self._steps = 0
        return obs, {"env_seed": self._start_seed}

    def step(self, action):
        obs, reward, done, info = self._env.step(np.asarray(action, dtype=np.float32))
        self._steps += 1
        info["velocity_cost"] = max(0.0, 1e-2 * (info["velocity"] - 10.0))
        info["proximity_cost"] = 1e-2 * max(0.0, 0.1 - float(np.min(obs[-240:]))) ** 2
        info["cost"] = float(info["cost"] + info["velocity_cost"] + info["proximity_cost"])
        max_step = bool(info.get("max_step", False))
        terminated = bool(info.get("arrive_dest") or info.get("crash") or info.get("out_of_road")
                          or (done and not max_step))
        truncated = max_step or self._steps >= self.task.max_episode_steps
        return obs, float(reward), terminated, truncated, info

    def close(self):
        if getattr(self, "_env", None) is not None:
            self._env.close()
            self._env = None
