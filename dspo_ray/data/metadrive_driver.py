"""MetaDrive data the way DSRL made it: a rule-based driver with varied settings, no RL training.

DSRL's MetaDrive datasets came from MetaDrive's own rule-based driver (its IDM car-following and
lane-change policy) run with different settings, not from a trained agent. Here every episode draws
its own :class:`DriverStyle` (target speed, following distance and time gap, lane-change eagerness,
action noise) from a seeded RNG, and MetaDrive 0.2.6's ``IDMPolicy``, with those settings, drives
the ego car of :func:`dspo_ray.envs.make_env`'s environment (DSRL's task settings). The executed
action, ``clip(IDM action + noise, -1, 1)``, is what is recorded, with the step cost of the task, so
each episode is a DSRL-format :class:`~dspo_ray.data.trajectory.CostedTrajectory`.

The cost of the task is mostly speeding (``0.01 x max(0, km/h - 10)`` per step) plus crashes and
leaving the road; the reward is progress along the route. So slow, careful styles give safe
episodes with little reward and fast, tail-gating, noisy ones give unsafe episodes with more:
the reward-cost spread the paper's method needs. :func:`collect_metadrive` records every episode,
drops those above DSRL's max cost, grid-filters them as :mod:`dspo_ray.data.collect` does for the
RL-collected tasks and writes the same DSRL file, JSON summary and scatter plot.

No Ray here (MetaDrive allows one environment per process at a time; each chunk of episodes gets a
fresh one); ``dspo-collect --driver idm`` runs it, its chunks
in parallel on Ray (:func:`dspo_ray.distributed.collect.chunks_on_ray`) unless ``--no-ray``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from dspo_ray.data.collect import CollectResult, write_collection
from dspo_ray.data.rollout import record_episode
from dspo_ray.data.scripted import (ChunkRunner, ScriptedCollection, chunks_in_process,
                                    drive_in_fresh_environment, record_in_chunks)
from dspo_ray.data.trajectory import CostedTrajectory
from dspo_ray.tasks import TaskSpec, get_task


@dataclass(frozen=True)
class DriverStyle:
    """One episode's driver settings (the IDM's parameters, MetaDrive's names in comments)."""

    target_speed: float
    """Cruising speed in km/h (``NORMAL_SPEED``; MetaDrive's default 30)."""
    distance_wanted: float
    """Jam distance to the car in front, m (``DISTANCE_WANTED``; default 10)."""
    time_wanted: float
    """Desired time gap to the car in front, s (``TIME_WANTED``; default 1.5)."""
    lane_change_freq: int
    """Steps between overtaking attempts (``LANE_CHANGE_FREQ``; default 50): lower is more eager."""
    safe_lane_change_distance: float
    """Free gap needed beside the car to change lanes, m (``SAFE_LANE_CHANGE_DISTANCE``; default 15)."""
    action_noise: float
    """Std of the Gaussian noise added to both action components before clipping to [-1, 1]."""


@dataclass(frozen=True)
class DriverConfig(ScriptedCollection):
    """Everything that shapes a rule-based MetaDrive collection."""

    task: str
    speed_range: tuple[float, float] = (4.0, 40.0)
    """Target speed (km/h) drawn log-uniformly from this range: the main safety/reward knob."""
    distance_range: tuple[float, float] = (2.0, 15.0)
    time_gap_range: tuple[float, float] = (0.3, 2.0)
    lane_change_freq_range: tuple[int, int] = (10, 100)
    safe_lane_change_distance_range: tuple[float, float] = (5.0, 20.0)
    noise_range: tuple[float, float] = (0.0, 0.3)
    """Action noise std drawn uniformly from this range (0: the IDM's own actions)."""

    def resolved(self) -> "DriverConfig":
        spec = get_task(self.task)
        if spec.suite != "MetaDrive":
            raise ValueError(f"the rule-based driver is for MetaDrive tasks, not {spec.name!r}")
        return self.with_task_defaults(spec)



def draw_style(cfg: DriverConfig, rng: np.random.Generator) -> DriverStyle:
    lo, hi = np.log(cfg.speed_range[0]), np.log(cfg.speed_range[1])
    return DriverStyle(
        target_speed=round(float(np.exp(rng.uniform(lo, hi))), 3),
        distance_wanted=round(float(rng.uniform(*cfg.distance_range)), 3),
        time_wanted=round(float(rng.uniform(*cfg.time_gap_range)), 3),
        lane_change_freq=int(rng.integers(cfg.lane_change_freq_range[0], cfg.lane_change_freq_range[1] + 1)),
        safe_lane_change_distance=round(float(rng.uniform(*cfg.safe_lane_change_distance_range)), 3),
        action_noise=round(float(rng.uniform(*cfg.noise_range)), 4),
    )


def _idm_driver(env, style: DriverStyle, seed: int):
    """MetaDrive's IDMPolicy with ``style``'s settings, driving ``env``'s ego car (after a reset)."""
    from metadrive.policy.idm_policy import IDMPolicy

    class StyledIDM(IDMPolicy):
        NORMAL_SPEED = style.target_speed
        CREEP_SPEED = min(IDMPolicy.CREEP_SPEED, style.target_speed)
        DISTANCE_WANTED = style.distance_wanted
        TIME_WANTED = style.time_wanted
        LANE_CHANGE_FREQ = style.lane_change_freq
        SAFE_LANE_CHANGE_DISTANCE = style.safe_lane_change_distance

    md = env.unwrapped._env
    return StyledIDM(md.vehicle, seed % 2**32)


def drive_episode(env, style: DriverStyle, seed: int, max_steps: int) -> CostedTrajectory:
    """One episode: reset with ``seed`` (the traffic), drive with the styled IDM, record it all."""
    noise = np.random.default_rng(seed)
    driver = []  # the IDM drives the ego car, which exists only once the episode has been reset

    def act(obs: np.ndarray) -> np.ndarray:
        if not driver:
            driver.append(_idm_driver(env, style, seed))
        action = np.asarray(driver[0].act(), dtype=np.float64)
        if style.action_noise > 0:
            action = action + noise.normal(0.0, style.action_noise, size=2)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    return record_episode(env, act, seed, max_steps)


def _recording_dir(cfg: DriverConfig, out_dir: Path) -> Path:
    return out_dir / "runs" / cfg.task / f"idm-seed{cfg.seed}"


def record_episodes(cfg: DriverConfig, out_dir: str | Path, log=print, run: ChunkRunner | None = None
                    ) -> tuple[list[CostedTrajectory], list[dict], float]:
    """Episodes ``0 .. cfg.episodes - 1``, driven and saved in chunks to
    ``<out>/runs/<task>/idm-seed<s>/chunk-<first>.hdf5`` (+ ``.json`` with the styles, written last;
    see :func:`dspo_ray.data.scripted.record_in_chunks`: a rerun resumes).

    Each chunk is driven in an environment of its own (:func:`drive_chunk`), so the recording is
    the same whether the chunks run one after the other, after a restart, or in parallel on Ray
    (``run``; default: one after the other in this process). Returns the episodes, their styles and the
    seconds spent driving them.
    """
    cfg = cfg.resolved()
    run = run or chunks_in_process(lambda first, n: drive_chunk(cfg, first, n, log))
    return record_in_chunks(get_task(cfg.task), _recording_dir(cfg, Path(out_dir)),
                            cfg.style_settings(), cfg.episodes, run, log=log)


def drive_chunk(cfg: DriverConfig, first: int, count: int, log=print) -> tuple[list, list]:
    """Drive episodes ``first .. first + count - 1`` in a MetaDrive environment of their own
    (:func:`dspo_ray.data.scripted.drive_in_fresh_environment`: MetaDrive's traffic follows
    everything its environment drove, and two easydense builds that kept one environment per
    Ray worker differed from their second chunk on)."""
    cfg = cfg.resolved()
    max_steps = get_task(cfg.task).max_episode_steps
    return drive_in_fresh_environment(
        cfg.task, first, count, cfg.episodes, lambda rng: draw_style(cfg, rng),
        lambda env, style, seed: drive_episode(env, style, seed, max_steps), cfg.seed, log)


def collect_metadrive(config: DriverConfig, out_dir: str | Path, log=print,
                      run: ChunkRunner | None = None) -> CollectResult:
    """Drive, record every episode, drop those above the max cost, grid-thin, write the DSRL file.

    Every episode is saved in chunks under ``out_dir/runs/<task>/idm-seed<s>/`` (see
    :func:`record_episodes`: a rerun resumes), then ``<dsrl id>-<cost>-<count>.hdf5`` is written
    into ``out_dir`` with its ``.json`` summary and ``.png`` scatter plot, as
    :func:`dspo_ray.data.collect.finish_task` writes them for the RL-collected tasks.
    """
    cfg = config.resolved()
    spec = get_task(cfg.task)
    recorded, _, seconds = record_episodes(cfg, Path(out_dir), log=log, run=run)
    return finish_metadrive(spec, cfg, recorded, seconds, Path(out_dir), log=log)


def finish_metadrive(spec: TaskSpec, cfg: DriverConfig, recorded: list[CostedTrajectory],
                     seconds: float, out_dir: Path, log=print) -> CollectResult:
    return write_collection(spec, recorded, out_dir, keep=cfg.keep, max_cost=cfg.max_cost,
                            config={**asdict(cfg), "driver": "idm", "runs": 1}, seconds=seconds,
                            min_safe_share=cfg.min_safe_share,
                            cost_bins=cfg.cost_bins, reward_bins=cfg.reward_bins, seed=cfg.seed,
                            stats={"run_cpu_seconds": round(seconds, 1)}, log=log)
