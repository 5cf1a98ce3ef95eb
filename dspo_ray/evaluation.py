"""Evaluation in the real simulators, scored the DSRL way.

Episode i of an evaluation is reset with ``seed + i`` (and the policy with the same seed). Some
simulators keep hidden state across resets (Bullet-Safety-Gym keeps physics state, so the same
seed gives a different episode in a used environment), so episodes are dealt to a fixed number of
*environment streams*, each a fresh environment that runs its episodes in order, and workers run
whole streams. The result therefore depends on the seed and the stream count only, never on how
many worker processes ran it, and each environment is still reused across episodes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np

from dspo_ray.tasks import TaskSpec, get_task


def normalized_reward(task: str | TaskSpec, reward_return: float) -> float:
    """DSRL: (R - R_min) / (R_max - R_min) with the task's reference returns."""
    spec = get_task(task)
    return (reward_return - spec.reward_min) / (spec.reward_max - spec.reward_min)


def normalized_cost(task: str | TaskSpec, cost_return: float, cost_limit: float | None = None) -> float:
    """DSRL: (C + e) / (k + e), k the cost limit and e = 1 only when k == 0."""
    k = get_task(task).cost_limit if cost_limit is None else cost_limit
    e = 1.0 if k == 0 else 0.0
    return (cost_return + e) / (k + e)


PARALLEL_MIN_STEPS = 20_000
"""Below this many environment steps, evaluate() runs in-process by default."""


@dataclass(frozen=True)
class EpisodeResult:
    reward_return: float
    cost_return: float
    length: int


@dataclass(frozen=True)
class EvalResult:
    task: str
    episodes: int
    reward_mean: float
    reward_std: float
    cost_mean: float
    cost_std: float
    normalized_reward: float
    normalized_cost: float
    safe: bool
    """normalized_cost <= 1"""
    length_mean: float

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(task: str | TaskSpec, episodes: list[EpisodeResult],
              cost_limit: float | None = None) -> EvalResult:
    spec = get_task(task)
    rewards = np.array([e.reward_return for e in episodes])
    costs = np.array([e.cost_return for e in episodes])
    norm_cost = normalized_cost(spec, float(costs.mean()), cost_limit)
    return EvalResult(
        task=spec.name, episodes=len(episodes),
        reward_mean=float(rewards.mean()), reward_std=float(rewards.std()),
        cost_mean=float(costs.mean()), cost_std=float(costs.std()),
        normalized_reward=normalized_reward(spec, float(rewards.mean())),
        normalized_cost=norm_cost, safe=bool(norm_cost <= 1.0),
        length_mean=float(np.mean([e.length for e in episodes])),
    )


def run_episode(env, policy, seed: int, max_steps: int) -> EpisodeResult:
    obs, _ = env.reset(seed=seed)
    if hasattr(policy, "reset"):
        policy.reset(seed)
    reward_return = cost_return = 0.0
    for step in range(1, max_steps + 1):
        obs, reward, terminated, truncated, info = env.step(policy.act(obs))
        reward_return += float(reward)
        cost_return += float(info["cost"])
        if hasattr(policy, "observe"):
            policy.observe(float(reward))
        if terminated or truncated:
            break
    return EpisodeResult(reward_return, cost_return, step)


def _run_streams(policy, task: str, streams: list[list[int]]) -> list[list[EpisodeResult]]:
    """Each stream: one fresh environment, reused for its episodes (creating one takes ~1 s)."""
    from dspo_ray.envs import make_env

    spec = get_task(task)
    results = []
    for seeds in streams:
        env = make_env(spec, seed=seeds[0])
        try:
            results.append([run_episode(env, policy, s, spec.max_episode_steps) for s in seeds])
        finally:
            env.close()
    return results


def _worker_init() -> None:
    # Each worker is one of several processes on few cores: one torch thread each.
    import signal

    import torch
    torch.set_num_threads(1)
    # Ctrl-C is the parent's to handle (one message, no traceback per worker)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity where the OS has one: Linux; else all)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def evaluation_seed(training_seed: int) -> int:
    """The first episode seed of a run's final evaluation (episode i: this + i), for every method.

    10_000 apart per training seed: disjoint from the training seed, from each other across seeds
    for up to 10_000 episodes, and from the seeds data collection resets with."""
    return 10_000 * (training_seed + 1)


def evaluate(policy, task: str | TaskSpec, episodes: int = 20, seed: int = 0,
             workers: int | None = None, cost_limit: float | None = None,
             env_streams: int = 4) -> EvalResult:
    """Run ``episodes`` episodes of ``policy`` in the task's simulator and score them.

    ``workers``: processes to spread the environment streams over (default: the CPUs available,
    at most ``env_streams``, or 1 when there are fewer than ``PARALLEL_MIN_STEPS`` steps to run);
    1 runs everything in this process. ``env_streams``: how many fresh
    environments the episodes are dealt to (episode i goes to stream i % env_streams).
    """
    spec = get_task(task)
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if env_streams < 1:
        raise ValueError(f"env_streams must be >= 1, got {env_streams}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1 (or None for automatic), got {workers}")
    from dspo_ray.policies import check_policy_fits

    check_policy_fits(policy, spec.obs_dim, spec.act_dim, spec.name)  # before any episode runs
    seeds = [seed + i for i in range(episodes)]
    streams = [seeds[k::env_streams] for k in range(min(env_streams, episodes))]
    if workers is None:
        # starting a worker process costs seconds (imports, simulator): only worth it for long runs
        small = episodes * spec.max_episode_steps < PARALLEL_MIN_STEPS
        workers = 1 if small else available_cpus()
    workers = max(1, min(workers, len(streams)))
    # MetaDrive (panda3d) installs a SIGINT handler at every reset, which only a main thread may
    # do; a Ray Tune trial runs in a thread, so there even one worker is a process of its own
    in_process = workers == 1 and (spec.suite != "MetaDrive"
                                   or threading.current_thread() is threading.main_thread())
    if in_process:
        parts = [_run_streams(policy, spec.name, streams)]
        assignment = [streams]
    else:
        assignment = [streams[w::workers] for w in range(workers)]
        # spawn, not fork: forking a process that holds torch/Ray threads can deadlock
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                                 initializer=_worker_init) as pool:
            try:
                parts = list(pool.map(_run_streams, [policy] * workers, [spec.name] * workers,
                                      assignment))
            except KeyboardInterrupt:  # the workers ignore Ctrl-C: stop them, then re-raise
                for process in list(getattr(pool, "_processes", {}).values()):
                    process.terminate()
                pool.shutdown(wait=False, cancel_futures=True)
                raise
    by_seed = {s: r for worker_streams, worker_results in zip(assignment, parts)
               for stream, stream_results in zip(worker_streams, worker_results)
               for s, r in zip(stream, stream_results)}
    return summarize(spec, [by_seed[s] for s in seeds], cost_limit)
