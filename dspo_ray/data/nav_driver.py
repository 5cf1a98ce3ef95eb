"""Safety-Gymnasium Goal data from a rule-based driver with varied settings, no RL training.

PPO needs millions of steps on the Point Goal tasks, far more than our CPUs give (500-1000 steps/s).
As :mod:`dspo_ray.data.metadrive_driver` does for MetaDrive, every episode here draws its own
:class:`NavStyle` (speed, heading gain, hazard-avoidance weight and margin, action noise) from a
seeded RNG, and a potential-field controller with those settings drives the Point robot of
:func:`dspo_ray.envs.make_env`'s environment. The controller reads the simulator's true state (the
agent's position and heading, the goal, the hazards and the vase: ``env.unwrapped.task``); what is
recorded is the env's normal observation, the executed action ``clip(controller + noise, -1, 1)``
and the env's step cost, so each episode is a DSRL-format
:class:`~dspo_ray.data.trajectory.CostedTrajectory` like every other collector's.

The cost of the task is 1 per step inside a hazard; the reward is the progress towards the goal
(plus 1 per goal reached, after which a new goal is placed). Styles that ignore the hazards take
the shortest paths (more goals, more cost); strongly avoiding ones detour (safe, fewer goals); slow
or noisy ones earn little either way: the reward-cost spread the paper's method needs.
:func:`collect_nav` records every episode in resumable chunks
(:func:`dspo_ray.data.scripted.record_in_chunks`) and finishes as every collector does
(:func:`dspo_ray.data.collect.write_collection`).

No Ray here (one environment, one process); ``dspo-collect --task PointGoal1 --driver rule`` runs it,
its chunks in parallel on Ray (:func:`dspo_ray.distributed.collect.chunks_on_ray`) unless ``--no-ray``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from dspo_ray.data.collect import CollectResult, write_collection
from dspo_ray.data.rollout import record_episode
from dspo_ray.data.scripted import (NAV_TASKS, ChunkRunner, ScriptedCollection, chunks_in_process,
                                    drive_in_fresh_environment, record_in_chunks)
from dspo_ray.data.trajectory import CostedTrajectory
from dspo_ray.tasks import get_task

# The Point robot: action 0 pushes it forward (backward when negative) along its heading, action 1
# sets its turning speed (counter-clockwise positive, about 0.06 rad per step at 1), both in [-1, 1].


@dataclass(frozen=True)
class NavStyle:
    """One episode's controller settings."""

    speed: float
    """Forward action when heading straight at the target direction, in (0, 1]."""
    turn_gain: float
    """Turning action per radian of heading error (clipped to [-1, 1])."""
    avoidance: float
    """Weight of the hazards' (and vases') repulsion against the goal's unit attraction; 0 ignores
    them (shortest paths)."""
    margin: float
    """Clearance (m, from a hazard's edge) below which a hazard repels, growing linearly to the edge."""
    action_noise: float
    """Std of the Gaussian noise added to both action components before clipping to [-1, 1]."""


@dataclass(frozen=True)
class NavConfig(ScriptedCollection):
    """Everything that shapes a rule-based Goal-task collection."""

    task: str
    max_steps: int | None = None
    """Steps per episode; None: the task's (1000). Fewer only for quick tests."""
    speed_range: tuple[float, float] = (0.1, 1.0)
    """Speed drawn uniformly from this range: the main reward knob (0.1: about 5 per episode)."""
    turn_gain_range: tuple[float, float] = (1.0, 4.0)
    """Heading gain drawn uniformly from this range (1: sluggish turns, 4: near bang-bang)."""
    no_avoidance_share: float = 0.25
    """Share of the episodes whose driver ignores the hazards entirely (avoidance 0)."""
    avoidance_range: tuple[float, float] = (0.3, 6.0)
    """Avoidance weight of the others, drawn log-uniformly."""
    margin_range: tuple[float, float] = (0.05, 0.4)
    """Avoidance margin (m from a hazard's edge) drawn uniformly from this range."""
    noise_range: tuple[float, float] = (0.0, 0.4)
    """Action noise std drawn uniformly from this range (0: the controller's own actions)."""

    def resolved(self) -> "NavConfig":
        spec = get_task(self.task)
        if spec.name not in NAV_TASKS:
            raise ValueError(f"the rule-based navigation driver is for {', '.join(NAV_TASKS)}, "
                             f"not {spec.name!r}")
        return replace(self.with_task_defaults(spec),
                       max_steps=self.max_steps if self.max_steps is not None else spec.max_episode_steps)



def draw_style(cfg: NavConfig, rng: np.random.Generator) -> NavStyle:
    lo, hi = np.log(cfg.avoidance_range[0]), np.log(cfg.avoidance_range[1])
    avoid = float(np.exp(rng.uniform(lo, hi)))
    ignores = rng.uniform() < cfg.no_avoidance_share  # drawn after, so both draws are always made
    return NavStyle(
        speed=round(float(rng.uniform(*cfg.speed_range)), 3),
        turn_gain=round(float(rng.uniform(*cfg.turn_gain_range)), 3),
        avoidance=0.0 if ignores else round(avoid, 3),
        margin=round(float(rng.uniform(*cfg.margin_range)), 3),
        action_noise=round(float(rng.uniform(*cfg.noise_range)), 4),
    )


TOP_SPEED = 1.5
"""The Point robot's speed (m/s) under a full forward action: it nears it after ~100 steps and,
with little friction, coasts on (about 4% slower per step), so the controller steers its velocity."""
LOOKAHEAD = 0.3
"""Seconds ahead (15 steps) at which the obstacles' repulsion is evaluated: it must act before the
robot, which needs about as long to brake, is inside a hazard."""


def controller_action(agent_xy: np.ndarray, velocity: np.ndarray, heading: float, goal_xy: np.ndarray,
                      obstacles: list[tuple[np.ndarray, float]], style: NavStyle) -> np.ndarray:
    """The noise-free action: a desired velocity towards the goal, bent away from and around the
    obstacles, and the thrust (forward or backward along the heading) and turn that steer the
    robot's velocity to it.

    ``obstacles`` are (centre xy, radius) pairs. Each one whose edge is closer than ``style.margin``
    to the robot's position ``LOOKAHEAD`` seconds ahead adds ``avoidance x (1 - clearance /
    margin)`` times (away + around) to the unit pull towards the goal; "around" is the tangent on
    the goal's side, so that a hazard straight ahead is passed rather than stalled at.
    """
    to_goal = goal_xy - agent_xy
    pull = to_goal / max(np.linalg.norm(to_goal), 1e-9)
    direction = pull.copy()
    if style.avoidance > 0:
        ahead = agent_xy + LOOKAHEAD * velocity
        for centre, radius in obstacles:
            offset = ahead - centre
            dist = max(float(np.linalg.norm(offset)), 1e-9)
            clearance = dist - radius
            if clearance >= style.margin:
                continue
            away = offset / dist
            around = np.array([-away[1], away[0]])
            if around @ pull < 0:
                around = -around
            weight = style.avoidance * min(2.0, 1.0 - clearance / style.margin)
            direction = direction + weight * (away + around)
    wanted = style.speed * TOP_SPEED * direction / max(np.linalg.norm(direction), 1e-9)
    # aim past the wanted velocity by what the current one lacks, so drift is corrected
    aim = wanted + 2.0 * (wanted - velocity)
    error = (np.arctan2(aim[1], aim[0]) - heading + np.pi) % (2 * np.pi) - np.pi
    if abs(error) > np.pi / 2:  # thrusting backwards is as strong: turn the back towards the aim
        error -= np.sign(error) * np.pi
    axis = np.array([np.cos(heading), np.sin(heading)])
    forward = np.clip(aim @ axis / TOP_SPEED * np.cos(error) ** 2, -1.0, 1.0)
    turn = np.clip(style.turn_gain * error, -1.0, 1.0)
    return np.array([forward, turn])


def _world(env) -> tuple[np.ndarray, np.ndarray, float, np.ndarray, list[tuple[np.ndarray, float]]]:
    """The simulator's true state: agent xy, its velocity (m/s), heading, goal xy and obstacles
    (hazards, then vases)."""
    task = env.unwrapped.task
    mat = task.agent.mat  # columns: the agent's axes in the world; its x axis points forward
    heading = float(np.arctan2(mat[1, 0], mat[0, 0]))
    obstacles = [(np.asarray(p[:2]), float(task.hazards.size)) for p in task.hazards.pos]
    vases = getattr(task, "vases", None)
    if vases is not None and vases.num:
        # a vase is a physical obstacle (costless in level 1): keep the robot's own radius off it
        obstacles += [(np.asarray(p[:2]), float(vases.size) + 0.1) for p in vases.pos]
    return (np.asarray(task.agent.pos[:2]), np.asarray(task.agent.vel[:2]), heading,
            np.asarray(task.goal.pos[:2]), obstacles)


def drive_episode(env, style: NavStyle, seed: int, max_steps: int) -> CostedTrajectory:
    """One episode: reset with ``seed`` (the layout), drive with the styled controller, record it."""
    noise = np.random.default_rng([seed, 2])

    def act(obs: np.ndarray) -> np.ndarray:
        action = controller_action(*_world(env), style)
        if style.action_noise > 0:
            action = action + noise.normal(0.0, style.action_noise, size=2)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    return record_episode(env, act, seed, max_steps)


def _recording_dir(cfg: NavConfig, out_dir: Path) -> Path:
    return out_dir / "runs" / cfg.task / f"nav-seed{cfg.seed}"


def drive_chunk(cfg: NavConfig, first: int, count: int, log=print) -> tuple[list, list]:
    """Drive episodes ``first .. first + count - 1`` in one fresh environment
    (:func:`dspo_ray.data.scripted.drive_in_fresh_environment`; each episode is reset with its own
    seed, so it does not depend on the ones before it)."""
    cfg = cfg.resolved()
    return drive_in_fresh_environment(
        cfg.task, first, count, cfg.episodes, lambda rng: draw_style(cfg, rng),
        lambda env, style, seed: drive_episode(env, style, seed, cfg.max_steps), cfg.seed, log)


def record_episodes(cfg: NavConfig, out_dir: str | Path, log=print, run: ChunkRunner | None = None
                    ) -> tuple[list[CostedTrajectory], list[dict], float]:
    """Every episode, saved in chunks under ``<out>/runs/<task>/nav-seed<s>/``
    (:func:`dspo_ray.data.scripted.record_in_chunks`: a rerun resumes), driven by ``run`` (default:
    one chunk after the other in this process; a chunk is the same wherever it is driven). Returns
    the episodes, their styles and the seconds spent driving them."""
    cfg = cfg.resolved()
    run = run or chunks_in_process(lambda first, n: drive_chunk(cfg, first, n, log))
    return record_in_chunks(get_task(cfg.task), _recording_dir(cfg, Path(out_dir)),
                            cfg.style_settings(), cfg.episodes, run, log=log)


def collect_nav(config: NavConfig, out_dir: str | Path, log=print,
                run: ChunkRunner | None = None) -> CollectResult:
    """Drive, record every episode, drop those above the max cost, thin, write the DSRL file
    ``<dsrl id>-<cost>-<count>.hdf5`` into ``out_dir`` with its ``.json`` summary and ``.png``
    scatter plot (:func:`dspo_ray.data.collect.write_collection`)."""
    cfg = config.resolved()
    recorded, _, seconds = record_episodes(cfg, out_dir, log=log, run=run)
    return write_collection(get_task(cfg.task), recorded, out_dir, keep=cfg.keep,
                            max_cost=cfg.max_cost, config={**asdict(cfg), "driver": "nav", "runs": 1},
                            seconds=seconds, min_safe_share=cfg.min_safe_share,
                            cost_bins=cfg.cost_bins, reward_bins=cfg.reward_bins, seed=cfg.seed,
                            stats={"run_cpu_seconds": round(seconds, 1)}, log=log)
