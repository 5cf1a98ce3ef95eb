"""Evaluation in the real simulators, scored the DSRL way.

Episode i of an evaluation is reset with ``seed + i`` (and the policy with the same seed). Some
simulators keep hidden state across resets (Bullet-Safety-Gym keeps physics state, so the same
seed gives a different episode in a used environment), so episodes are dealt to a fixed number of
*environment streams*, each a fresh environment that runs its episodes in order, and workers run
whole streams. The result therefore depends on the seed and the stream count only, never on how
many worker processes ran it, and each environment is still reused across episodes.

Worker processes are kept: starting one (spawn, torch, the simulator) costs seconds, as much as a
whole CarCircle evaluation, so a process starts its workers once (a run does it when it starts,
``start_evaluation_workers``, so that they are ready when training ends) and every evaluation
reuses them. The calling process runs its share of the streams itself.
"""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
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


WORKER_START_S = 3.0
"""Twice what starting an evaluation worker process costs (spawn, torch and the simulator
imported: 1.1-1.5 s of wall time on an idle 2-core machine, ``benchmarks/bench_evaluation.py``).
An automatic evaluation without ready workers starts them only when running the rest of its
episodes on more processes would save more than this: where it is close, in-process wins."""


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
    return [_run_stream(policy, get_task(task), seeds) for seeds in streams]


def _run_stream(policy, spec: TaskSpec, seeds: list[int], env=None,
                done: list[EpisodeResult] = ()) -> list[EpisodeResult]:
    """One stream's episodes in ``env`` (a fresh one when None), after the ``done`` ones, which
    ran in that same ``env``; the environment is closed at the end."""
    from dspo_ray.envs import make_env

    env = make_env(spec, seed=seeds[0]) if env is None else env
    try:
        return [*done, *(run_episode(env, policy, s, spec.max_episode_steps)
                         for s in seeds[len(done):])]
    finally:
        env.close()


def _worker_init(parent_pid: int, task: str | None) -> None:
    # Each worker is one of several processes on few cores: one torch thread each.
    import signal

    import torch
    torch.set_num_threads(1)
    # Ctrl-C is the parent's to handle (one message, no traceback per worker)
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def exit_when_orphaned() -> None:
        # a kept worker must not outlive a parent that was killed (a Ray trial's process is)
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=exit_when_orphaned, daemon=True).start()
    if task is not None:
        from dspo_ray.envs import import_simulator
        import_simulator(task)


def _ready() -> None:
    """A no-op task: a worker that ran it has finished starting."""


class _Workers:
    """This process's kept evaluation workers (one pool, replaced by a larger one when needed)."""

    def __init__(self) -> None:
        self.pool: ProcessPoolExecutor | None = None
        self.size = 0
        self.started: list[Future] = []

    def get(self, size: int, task: str | None = None) -> ProcessPoolExecutor:
        if self.pool is None or self.size < size:
            self.stop()
            # spawn, not fork: forking a process that holds torch/Ray threads can deadlock
            self.pool = ProcessPoolExecutor(size, mp_context=mp.get_context("spawn"),
                                            initializer=_worker_init,
                                            initargs=(os.getpid(), task))
            self.size = size
            # submitting starts the processes now, without waiting for them to be ready
            self.started = [self.pool.submit(_ready) for _ in range(size)]
        return self.pool

    def running(self, size: int) -> bool:
        return self.pool is not None and self.size >= size

    def stop(self, wait: bool = True) -> None:
        if self.pool is not None:
            if not wait:  # e.g. after Ctrl-C: the workers ignore SIGINT, end them
                for process in list((getattr(self.pool, "_processes", None) or {}).values()):
                    process.terminate()
            self.pool.shutdown(wait=wait, cancel_futures=True)
        self.pool, self.size, self.started = None, 0, []


_WORKERS = _Workers()
atexit.register(_WORKERS.stop)


def start_evaluation_workers(task: str | TaskSpec, workers: int | None = None,
                             env_streams: int = 4, wait: bool = False) -> int:
    """Start the worker processes that ``evaluate(..., workers=workers)`` will use, without
    waiting for them unless ``wait`` (they import torch and the task's simulator meanwhile).
    Returns how many were started or are already running (0 where the evaluation will run in
    this process).

    A run calls this when it starts so that its final evaluation finds them ready; otherwise the
    first parallel evaluation starts them (and an automatic one does so only where it pays)."""
    spec = get_task(task)
    needed = _worker_processes(spec, _process_count(workers, env_streams))
    if needed:
        _WORKERS.get(needed, spec.name)
        if wait:
            for future in _WORKERS.started:
                future.result()
    return needed


def stop_evaluation_workers() -> None:
    """End this process's evaluation workers (they also end with it)."""
    _WORKERS.stop()


def _process_count(workers: int | None, streams: int) -> int:
    return max(1, min(available_cpus() if workers is None else workers, streams))


def _main_may_run(spec: TaskSpec) -> bool:
    # MetaDrive (panda3d) installs a SIGINT handler at every reset, which only a main thread may
    # do; a Ray Tune trial runs in a thread, so there even one worker is a process of its own
    return spec.suite != "MetaDrive" or threading.current_thread() is threading.main_thread()


def _worker_processes(spec: TaskSpec, processes: int) -> int:
    """Worker processes for an evaluation on ``processes`` processes (this one runs a share)."""
    return processes - 1 if _main_may_run(spec) else processes


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

    ``workers``: processes to spread the environment streams over, this one included (it runs
    the first share; kept worker processes run the others). 1 runs everything here. None
    (automatic): the CPUs available, at most ``env_streams``, where that pays: with workers
    already running (:func:`start_evaluation_workers`) always, else only when the first
    episode's time says the rest would save more than starting workers costs
    (:data:`WORKER_START_S`). ``env_streams``: how many fresh environments the episodes are
    dealt to (episode i goes to stream i % env_streams). The result depends on ``seed`` and
    ``env_streams`` only.
    """
    spec = get_task(task)
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if env_streams < 1:
        raise ValueError(f"env_streams must be >= 1, got {env_streams}")
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1 (or None for automatic), got {workers}")
    from dspo_ray.envs import make_env
    from dspo_ray.policies import check_policy_fits

    check_policy_fits(policy, spec.obs_dim, spec.act_dim, spec.name)  # before any episode runs
    seeds = [seed + i for i in range(episodes)]
    streams = [seeds[k::env_streams] for k in range(min(env_streams, episodes))]
    processes = _process_count(workers, len(streams))
    assignment = [streams[w::processes] for w in range(processes)]
    here = assignment[0] if _main_may_run(spec) else []
    elsewhere = [part for part in assignment if part is not here]
    first_done: list[EpisodeResult] = []
    env = None
    if workers is None and here and elsewhere and not _WORKERS.running(len(elsewhere)):
        # automatic, no workers yet: time this process's first episode, then decide
        start = time.perf_counter()
        env = make_env(spec, seed=here[0][0])
        env_s = time.perf_counter() - start
        first_done = [run_episode(env, policy, here[0][0], spec.max_episode_steps)]
        episode_s = time.perf_counter() - start - env_s
        rest_s = episode_s * (episodes - 1) + env_s * (len(streams) - 1)
        if rest_s * (1 - 1 / processes) <= WORKER_START_S:
            # every stream here, the one begun first (each stream has its own environment)
            here, elsewhere = [stream for part in assignment for stream in part], []

    futures: list[Future] = []
    try:
        if elsewhere:
            pool = _WORKERS.get(len(elsewhere), spec.name)
            futures = [pool.submit(_run_streams, policy, spec.name, part) for part in elsewhere]
        parts = []
        if here:
            parts.append([_run_stream(policy, spec, here[0], env, first_done),
                          *(_run_stream(policy, spec, stream) for stream in here[1:])])
        parts += [future.result() for future in futures]
    except BaseException:
        if futures:  # Ctrl-C or a failed worker: do not leave work running in the kept pool
            _WORKERS.stop(wait=False)
        raise
    by_seed = {s: r for part_streams, part_results in zip([here, *elsewhere] if here else elsewhere,
                                                          parts)
               for stream, stream_results in zip(part_streams, part_results)
               for s, r in zip(stream, stream_results)}
    return summarize(spec, [by_seed[s] for s in seeds], cost_limit)
