"""The task registry: every fact about the paper's 23 tasks, as data, in one place.

Sources: the environment ids, dimensions and episode lengths were measured on the installed
simulators (``tests/test_envs.py`` re-checks them); the reference rewards and DSRL's maximum cost
come from DSRL's infos table, the names of its published files from its dataset table; the cost
limit and the split sizes are the paper's Table 3.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class UnknownTaskError(KeyError):
    """A task name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would print the message with quotes around it
        return str(self.args[0])


@dataclass(frozen=True)
class TaskSpec:
    name: str
    """The paper's name of the task, e.g. ``CarCircle``."""
    suite: str
    """``SafetyGym``, ``BulletGym`` or ``MetaDrive``: the simulator family (paper Table 3)."""
    env_id: str
    """The simulator's own environment id (created without the DSRL package)."""
    dsrl_id: str
    """DSRL's dataset environment id, the prefix of its HDF5 file names."""
    obs_dim: int
    act_dim: int
    max_episode_steps: int
    cost_limit: float
    """The paper's cost limit: a trajectory is safe when its cost return is at most this."""
    n_safe: int
    """Table 3: number of safe demonstrations handed to the learner."""
    n_unlabelled: int
    """Table 3: number of unlabelled trajectories handed to the learner."""
    reward_min: float
    """DSRL reference return of a poor policy (normalised reward 0)."""
    reward_max: float
    """DSRL reference return of an expert (normalised reward 1)."""
    dsrl_max_cost: float
    """DSRL's max cost for the task (its infos table): the largest episode cost in its dataset."""
    dsrl_file_cost: float
    """The cost in DSRL's file name. It equals ``dsrl_max_cost`` except on MetaDrive, whose files
    are named with a rounded cap (85 / 50 / 85) while the infos table gives 80.36 / 46.46 / 85.01."""
    dsrl_trajectories: int
    """The number of trajectories in DSRL's published file (the last number of its name)."""

    @property
    def dsrl_filename_prefix(self) -> str:
        """DSRL names files ``<EnvId>-<cost>-<number of trajectories>.hdf5``."""
        return f"{self.dsrl_id}-{self.dsrl_file_cost:g}-"

    @property
    def dsrl_published_filename(self) -> str:
        """The name of DSRL's published file for the task, e.g. ``SafetyCarCircle-v0-100-1450.hdf5``."""
        return f"{self.dsrl_filename_prefix}{self.dsrl_trajectories}.hdf5"


def _sg(name, env_id, obs, act, r_max, r_min, max_cost, count, steps=1000):
    return TaskSpec(name, "SafetyGym", env_id, env_id, obs, act, steps, 20.0, 15, 800,
                    r_min, r_max, max_cost, max_cost, count)


def _bullet(name, obs, act, steps, r_max, r_min, max_cost, count):
    env_id = f"Safety{name}-v0"
    return TaskSpec(name, "BulletGym", env_id, env_id, obs, act, steps, 10.0, 15, 500,
                    r_min, r_max, max_cost, max_cost, count)


def _metadrive(name, r_max, r_min, max_cost, file_cost, count):
    return TaskSpec(name, "MetaDrive", f"OfflineMetadrive-{name}-v0", f"SafeMetaDrive-{name}-v0",
                    259, 2, 1000, 10.0, 15, 400, r_min, r_max, max_cost, file_cost, count)


_TASKS = [
    _sg("CarButton1", "SafetyCarButton1Gymnasium-v0", 88, 2, 44.4200, 0.002893, 250, 2656),
    _sg("CarButton2", "SafetyCarButton2Gymnasium-v0", 88, 2, 41.9951, 0.001767, 300, 3755),
    _sg("CarGoal1", "SafetyCarGoal1Gymnasium-v0", 72, 2, 39.9078, 0.01223, 120, 1671),
    _sg("CarGoal2", "SafetyCarGoal2Gymnasium-v0", 72, 2, 28.9029, 0.001033, 200, 4105),
    _sg("CarPush1", "SafetyCarPush1Gymnasium-v0", 88, 2, 16.3045, 0.0137, 200, 2871),
    _sg("CarPush2", "SafetyCarPush2Gymnasium-v0", 88, 2, 15.1416, 0.0002939, 250, 4407),
    _sg("PointButton1", "SafetyPointButton1Gymnasium-v0", 76, 2, 41.1930, 0.008822, 200, 2268),
    _sg("PointButton2", "SafetyPointButton2Gymnasium-v0", 76, 2, 42.8986, 0.01411, 250, 3288),
    _sg("PointGoal1", "SafetyPointGoal1Gymnasium-v0", 60, 2, 30.0711, 0.01196, 100, 2022),
    _sg("PointGoal2", "SafetyPointGoal2Gymnasium-v0", 60, 2, 27.7177, 0.002617, 200, 3442),
    _sg("PointPush1", "SafetyPointPush1Gymnasium-v0", 76, 2, 16.5187, 0.0014, 150, 2379),
    _sg("PointPush2", "SafetyPointPush2Gymnasium-v0", 76, 2, 14.6910, 0.001244, 200, 3242),
    _sg("HalfCheetahVel", "SafetyHalfCheetahVelocityGymnasium-v1", 17, 6, 2806.9331, 5.751, 250, 2495),
    _sg("SwimmerVel", "SafetySwimmerVelocityGymnasium-v1", 8, 2, 238.9583, 0.07114, 200, 1686),
    _sg("Walker2dVel", "SafetyWalker2dVelocityGymnasium-v1", 17, 6, 3418.2239, 18.67, 300, 2729),
    _bullet("AntCircle", 34, 8, 500, 460.7092, 0.0177, 200, 5728),
    # DSRL's table gives AntRun the same R_min as CarButton2 to every digit (a copy slip there);
    # we keep DSRL's value so that our normalised scores stay comparable with published ones.
    _bullet("AntRun", 33, 8, 200, 955.4819, 0.001767, 150, 1816),
    _bullet("CarCircle", 8, 2, 300, 534.3061, 3.484, 100, 1450),
    _bullet("DroneCircle", 18, 4, 300, 996.3892, 207.8, 100, 1923),
    _bullet("DroneRun", 17, 4, 200, 682.8330, 10.56, 140, 1990),
    _metadrive("easydense", 425.8173, 19.71, 80.36, 85, 1000),
    _metadrive("mediummean", 269.8221, 17.03, 46.46, 50, 1000),
    _metadrive("hardsparse", 486.8052, 17.25, 85.01, 85, 1000),
]

TASKS: dict[str, TaskSpec] = {t.name: t for t in _TASKS}
SUITES: tuple[str, ...] = ("SafetyGym", "BulletGym", "MetaDrive")


def get_task(name: str | TaskSpec) -> TaskSpec:
    """The registry entry of ``name``; an unknown name raises an error listing the valid ones."""
    if isinstance(name, TaskSpec):
        return name
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(
            f"unknown task {name!r}; valid tasks are: {', '.join(TASKS)}"
        ) from None


def action_bounds(task: str | TaskSpec) -> tuple[np.ndarray, np.ndarray]:
    """Every registry task acts in [-1, 1]^act_dim (tests/test_envs.py checks each simulator), so
    learners need not create an environment to know where to clip."""
    spec = get_task(task)
    return -np.ones(spec.act_dim, np.float32), np.ones(spec.act_dim, np.float32)


def tasks_in_suite(suite: str) -> list[TaskSpec]:
    if suite not in SUITES:
        raise ValueError(f"unknown suite {suite!r}; valid suites are: {', '.join(SUITES)}")
    return [t for t in _TASKS if t.suite == suite]
