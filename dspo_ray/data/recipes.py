"""Dataset recipes: the ``dspo-collect`` options that make each task's dataset file, as data.

A task whose data does not fit the repository's budget of shipped packs (datasets/DATASETS.md) is
built on this machine by one command, ``dspo-collect --build <task>``, from its recipe here; the
file goes into the cache beside the unpacked packs (:func:`built_dataset_dir`) and
``find_dataset`` finds it there. The shipped tasks have their recipe too (the command that made
their pack), so that they can be rebuilt the same way.

Adding a task is one :data:`RECIPES` entry. ``wall_minutes`` is a measured time on 2 cores, with
``measured`` saying where and how; None means not measured yet (messages then say so), never a
guess.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dspo_ray.data import shipping
from dspo_ray.data.dsrl import DatasetError
from dspo_ray.tasks import TaskSpec, get_task

BUILD_RECORD = "build.json"
"""In a task's build folder, written last by a finished build: the recipe's arguments and the file."""


@dataclass(frozen=True)
class DatasetRecipe:
    """How one task's dataset is collected: every ``dspo-collect`` option that shapes the data
    (how it is run, on Ray or not, does not change the file: the runs are seeded)."""

    task: str
    runs: int = 1
    """Behaviour-agent runs (``--runs``; PPO only)."""
    episodes: int | None = None
    """Episodes of all runs together (``--episodes``); with a rule-based driver, the episodes driven."""
    episodes_per_run: int | None = None
    """Episodes of each run (``--episodes-per-run``, overrides ``episodes``)."""
    keep: int | None = None
    """Trajectories in the file (``--keep``); None: the collector's default for the task."""
    min_safe_share: float = 0.0
    driver: str = "auto"
    """``ppo``, ``rule`` (the task's rule-based driver: MetaDrive's IDM, or the Point Goal tasks'
    navigation controller), ``idm`` (MetaDrive) or ``auto`` (the collector's choice for the task)."""
    seed: int = 0
    n_envs: int = 8
    """Environments each PPO run steps at once (``--n-envs``; it shapes the training)."""
    gamma: float | None = None
    """PPO discount (``--gamma``); None: the collector's default."""
    shipped: bool = False
    """Whether the repository ships this task's file as a pack (in datasets/)."""
    wall_minutes: float | None = None
    """Measured wall time of the collection on 2 cores, in minutes; None: not measured yet."""
    measured: str | None = None
    """Where and how ``wall_minutes`` was measured (the machine, its load, what the time covers)."""

    def __post_init__(self) -> None:
        get_task(self.task)  # a recipe names a registry task
        if (self.wall_minutes is None) != (self.measured is None):
            raise ValueError(f"{self.task}: a wall time needs where it was measured, and only a "
                             "wall time has one")

    def collect_args(self) -> list[str]:
        """The ``dspo-collect`` arguments that make the file (without ``--out``)."""
        args = ["--task", self.task, "--runs", str(self.runs)]
        if self.episodes is not None:
            args += ["--episodes", str(self.episodes)]
        if self.episodes_per_run is not None:
            args += ["--episodes-per-run", str(self.episodes_per_run)]
        if self.keep is not None:
            args += ["--keep", str(self.keep)]
        if self.min_safe_share:
            args += ["--min-safe-share", f"{self.min_safe_share:g}"]
        if self.gamma is not None:
            args += ["--gamma", f"{self.gamma:g}"]
        return args + ["--driver", self.driver, "--seed", str(self.seed), "--n-envs", str(self.n_envs)]

    @property
    def command(self) -> str:
        """The one command that builds the task's dataset into the cache."""
        return build_command([self.task])

    @property
    def time_text(self) -> str:
        if self.wall_minutes is None:
            return "time not measured yet"
        return f"about {self.wall_minutes:.0f} min on 2 cores"


# From datasets/DATASETS.md ("How each file was made"). The times are the training (MetaDrive:
# driving) time in each file's JSON sidecar, on the project's shared 2-core machine while other
# jobs ran; filtering and writing the file add a minute or so (a few for MetaDrive).
_SHARED = "the shared 2-core machine with other jobs running, training time from the sidecar"
RECIPES: dict[str, DatasetRecipe] = {r.task: r for r in [
    # re-collected 2026-12-01 with a longer PPO horizon (gamma 0.999): 91 safe of 3600 recorded
    # (20 with gamma 0.99), best safe 0.16 normalised (0.11)
    DatasetRecipe("SwimmerVel", runs=2, episodes_per_run=1800, min_safe_share=0.3, gamma=0.999,
                  shipped=True, wall_minutes=28,
                  measured=f"{_SHARED} (2 runs in parallel on a local Ray, load average 4-6 beside a "
                           "MetaDrive collection and a stage-1 sweep; /usr/bin/time 28:13, 2026-12-01)"),
    # AntRun and CarCircle: re-collected 2026-12-01 with DroneRun's recipe (2 runs, 30% safe kept)
    DatasetRecipe("AntRun", runs=2, episodes_per_run=2000, min_safe_share=0.3, shipped=True,
                  wall_minutes=10, measured=f"{_SHARED} (2 runs in parallel on a local Ray, 612 s "
                                            "each, load average 3-5, 2026-12-01)"),
    DatasetRecipe("CarCircle", runs=2, episodes_per_run=2000, min_safe_share=0.3, shipped=True,
                  wall_minutes=35, measured=f"{_SHARED} (2 runs in parallel on a local Ray, 2087 s "
                                            "each, load average 4-6 beside a PointGoal1 collection "
                                            "and DSPO runs, 2026-12-01)"),
    # no longer shipped (its data miss the quality bar: every return below DSRL's R_min, and the
    # packs' budget went to the re-collected AntRun and CarCircle): built on demand
    DatasetRecipe("DroneCircle", runs=1, episodes=2500, keep=600, wall_minutes=13,
                  measured=f"{_SHARED} (one run, one process)"),
    DatasetRecipe("DroneRun", runs=2, episodes_per_run=2000, min_safe_share=0.3, shipped=True,
                  wall_minutes=8, measured=f"{_SHARED} (2 runs in parallel on a local Ray, 2026-12-01)"),
    DatasetRecipe("hardsparse", episodes=600, keep=480, driver="idm", shipped=True, wall_minutes=50,
                  measured="the shared 2-core machine at load average 8-19, driving time from the "
                           "sidecar (3019 s); filtering and packing took 7 min more"),
    # 1000-step MuJoCo episodes; its replay pack does not re-simulate bit for bit (contacts), and a
    # columns pack would not fit: built on demand
    DatasetRecipe("HalfCheetahVel", runs=2, episodes_per_run=1000, min_safe_share=0.3,
                  wall_minutes=19, measured="the shared 2-core machine at load average 3-5 beside "
                                            "other collections, 2 runs in parallel on a local Ray, "
                                            "/usr/bin/time wall time 19:17 (2026-12-01)"),
    DatasetRecipe("easydense", episodes=600, driver="idm", wall_minutes=36,
                  measured="the idle 2-core machine, the default --ray (two 25-episode chunks at a "
                           "time), /usr/bin/time 35:36, 4207 s of driving over both processes (7.0 s "
                           "per episode each), 2026-12-01; the first build, in one process beside two "
                           "collections and a sweep (load 4-6), took 58:02"),
    DatasetRecipe("mediummean", episodes=600, driver="idm", wall_minutes=20,
                  measured="the shared 2-core machine beside a Table 1 sweep (the sweep's trials at "
                           "nice 15), driving in one process (--no-ray), /usr/bin/time 20:19, "
                           "1212 s of driving (2.0 s per episode), 2026-12-01"),
    # the rule-based navigation driver (dspo_ray/data/nav_driver.py): PPO needs millions of steps here
    DatasetRecipe("PointGoal1", episodes=1100, min_safe_share=0.3, driver="rule", wall_minutes=38,
                  measured="the shared 2-core machine at load average 3-6, driving time from the "
                           "sidecar (2306 s: the first 600 episodes in 1380 s, then 500 more resumed "
                           "from them in 15.5 min wall, 2026-12-01)"),
]}


def build_command(tasks) -> str:
    """The one command that builds these tasks' datasets from their recipes."""
    return "dspo-collect" + "".join(f" --build {get_task(t).name}" for t in tasks)


def recipe_for(task: str | TaskSpec) -> DatasetRecipe:
    """The task's recipe; a task without one raises DatasetError naming the tasks that have one."""
    spec = get_task(task)
    try:
        return RECIPES[spec.name]
    except KeyError:
        raise DatasetError(f"task {spec.name!r} has no dataset recipe; tasks with one: "
                           f"{', '.join(RECIPES)} (dspo_ray/data/recipes.py)") from None


def built_dataset_dir(task: str | TaskSpec) -> Path:
    """Where ``dspo-collect --build`` puts the task's file (and its runs, for resuming): beside the
    unpacked packs, ``$DSPO_CACHE_DIR/datasets/built/<task>`` (default ``~/.cache/dspo-ray``)."""
    # read at call time, so that a test pointing shipping's cache elsewhere moves this too
    return shipping.SHIPPED_CACHE_DIR / "built" / get_task(task).name


def built_with(task: str | TaskSpec) -> dict | None:
    """The record of the task's finished build (``collect_args``, ``file``: its name), or None."""
    record = built_dataset_dir(task) / BUILD_RECORD
    return json.loads(record.read_text()) if record.is_file() else None


def is_complete(path: Path) -> bool:
    """A built file counts once its build finished: the build's record, written after the file was
    checked, names it (an interrupted build leaves none)."""
    record = path.parent / BUILD_RECORD
    return record.is_file() and json.loads(record.read_text()).get("file") == path.name


def build_hint(task: str | TaskSpec) -> str | None:
    """For an error message: the command that builds the task's dataset and how long it takes,
    or None when the task has no recipe."""
    recipe = RECIPES.get(get_task(task).name)
    if recipe is None:
        return None
    return f"'{recipe.command}' ({recipe.time_text})"
