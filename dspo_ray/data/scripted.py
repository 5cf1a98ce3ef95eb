"""Recording a scripted (rule-based) driver's episodes in resumable chunks.

The rule-based collectors (:mod:`dspo_ray.data.metadrive_driver`, :mod:`dspo_ray.data.nav_driver`)
drive many episodes, each with its own style drawn from the episode's seed, and keep every one.
:func:`record_in_chunks` saves them ``CHUNK`` at a time (a DSRL file per chunk, plus a JSON with
the styles, written last), so an interrupted collection resumes where it stopped and a smaller
collection reuses the first chunks of a bigger one. What drives a chunk is the caller's.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from dspo_ray.data.collect import as_json_value, default_keep
from dspo_ray.data.dsrl import load_trajectories, write_dsrl
from dspo_ray.data.trajectory import CostedTrajectory
from dspo_ray.io import write_json_atomic
from dspo_ray.tasks import TaskSpec, get_task



@dataclass(frozen=True, kw_only=True)
class ScriptedCollection:
    """What every scripted-driver collection shares (MetaDrive's IDM driver, the Goal tasks'
    navigation driver): how many episodes, their seeds, and how the recorded episodes are filtered
    into the file (the PPO collector's filter, :mod:`dspo_ray.data.collect`)."""

    episodes: int = 600
    """Episodes to drive (all recorded; the grid filter thins them afterwards)."""
    keep: int | None = None
    """Trajectories in the written file; None: 1.25 x the task's N_safe + N_unlabelled (Table 3)."""
    seed: int = 0
    """Episode k is seeded with ``seed x 100003 + k`` (:func:`episode_seed`)."""
    cost_bins: int = 60
    reward_bins: int = 50
    max_cost: float | None = None
    """Episodes with a cost return above this are dropped; None: the task's DSRL max cost."""
    min_safe_share: float = 0.0
    """At least this share of the kept episodes safe, when the recorded ones allow it
    (:func:`dspo_ray.data.collect.thin_episodes`; 0: the plain grid filter)."""

    def with_task_defaults(self, spec: TaskSpec):
        """This config with the filter's None settings replaced by the task's defaults."""
        return replace(self, keep=self.keep if self.keep is not None else default_keep(spec),
                       max_cost=self.max_cost if self.max_cost is not None else spec.dsrl_max_cost)

    def style_settings(self) -> dict:
        """What decides each episode besides its index (the driver's settings and the seed, not how
        many are driven or how they are filtered): a recording made with other ones is refused."""
        return {k: v for k, v in as_json_value(asdict(self)).items()
                if k not in ("episodes", "keep", "cost_bins", "reward_bins", "max_cost", "min_safe_share")}

def episode_seed(seed: int, k: int) -> int:
    """Episode ``k``'s seed in a scripted driver's collection: its style, its action noise and
    the simulator's reset (MetaDrive's traffic, a Goal task's layout)."""
    return seed * 100_003 + k

NAV_TASKS = ("PointGoal1", "PointGoal2")
"""The tasks :mod:`dspo_ray.data.nav_driver` drives: the Point robot and a goal among hazards."""

CHUNK = 25
"""Episodes per saved chunk of a recording: an interrupted collection loses at most this many."""

DriveChunk = Callable[[int, int], tuple[list[CostedTrajectory], list[dict]]]
"""``drive(first, count)``: episodes ``first .. first + count - 1`` and one style dict each."""

DrivenChunk = tuple[int, list[CostedTrajectory], list[dict], float]
"""``(first, episodes, styles, seconds)``: one chunk driven."""
ChunkRunner = Callable[[list[tuple[int, int]]], Iterable[DrivenChunk]]
"""``run(chunks)``: drives every chunk ``(first, count)``, yielding ``(first, episodes, styles,
seconds)`` for each as it finishes, in any order (the Ray layer's is
:func:`dspo_ray.distributed.collect.chunks_on_ray`: one chunk per CPU at a time)."""


def chunks_in_process(drive: DriveChunk) -> ChunkRunner:
    """Drive the chunks one after the other in this process."""
    def run(chunks: list[tuple[int, int]]) -> Iterator[DrivenChunk]:
        for first, count in chunks:
            started = time.time()
            episodes, styles = drive(first, count)
            yield first, episodes, styles, time.time() - started
    return run


def drive_in_fresh_environment(task: str, first: int, count: int, total: int,
                               draw_style: Callable[[np.random.Generator], Any],
                               drive_episode: Callable[[Any, Any, int], CostedTrajectory],
                               seed: int, log=print) -> tuple[list[CostedTrajectory], list[dict]]:
    """Episodes ``first .. first + count - 1`` of a ``total``-episode collection, in one
    environment made for this chunk and closed after it: episode k draws its style with
    ``draw_style(rng of episode_seed(seed, k))`` and is driven by ``drive_episode(env, style,
    episode_seed(seed, k))``. Returns the episodes and one style dict each.

    Why a fresh environment per chunk (seconds, against minutes of driving): a simulator may carry
    state from one episode into the next reset (MetaDrive's traffic follows everything its
    environment drove), so with one environment per process a chunk would depend on which chunks
    its process drove before, which on Ray the scheduler decides.
    """
    from dspo_ray.envs import make_env

    spec = get_task(task)
    env = make_env(spec, seed=episode_seed(seed, first))
    started = time.time()
    episodes, styles = [], []
    try:
        for k in range(first, first + count):
            s = episode_seed(seed, k)
            style = draw_style(np.random.default_rng([s, 1]))
            episodes.append(drive_episode(env, style, s))
            styles.append({"episode": k, "seed": s, **asdict(style)})
    finally:
        env.close()  # MetaDrive allows one environment per process at a time
    costs = np.array([e.cost_return for e in episodes])
    log(f"[drive {spec.name}] episodes {first + count}/{total}: reward "
        f"{np.mean([e.reward_return for e in episodes]):.1f} cost {costs.mean():.1f} "
        f"safe {np.mean(costs <= spec.cost_limit):.0%} "
        f"({(time.time() - started) / count:.2f} s/episode)")
    return episodes, styles


def record_in_chunks(spec: TaskSpec, folder: Path, settings: dict, episodes: int, run: ChunkRunner,
                     log=print, label: str = "drive") -> tuple[list[CostedTrajectory], list[dict], float]:
    """Episodes ``0 .. episodes - 1``, driven by ``run`` (:func:`chunks_in_process`, or on Ray) and
    saved in chunks of :data:`CHUNK` to ``<folder>/chunk-<first>.hdf5`` (+ ``.json`` with
    ``settings`` and the styles, written last, each chunk as soon as it is driven).

    Chunks already there are reused (a rerun resumes; fewer episodes reuse the first chunks of
    more); a chunk recorded with other ``settings`` (what decides each episode besides its index)
    is refused. Returns the episodes, their styles and the seconds spent driving them (summed over
    the chunks' own times).
    """
    pending: list[int] = []  # chunks to drive
    firsts = list(range(0, episodes, CHUNK))
    chunks: dict[int, tuple[Path, dict]] = {}
    for first in firsts:
        path = folder / f"chunk-{first:05d}.hdf5"
        meta = path.with_suffix(".json")
        m = json.loads(meta.read_text()) if path.is_file() and meta.is_file() else None
        if m is not None and m["settings"] != settings:
            raise ValueError(f"{meta} was recorded with other driver settings than this "
                             "collection's; use a new --out folder or another --seed")
        if m is not None and m["episodes"] >= min(CHUNK, episodes - first):
            chunks[first] = (path, m)
        else:  # missing, or the short last chunk of a smaller collection
            pending.append(first)
    if chunks:
        log(f"[{label} {spec.name}] reusing {len(chunks)} recorded chunk(s) of {CHUNK} episodes in {folder}")
    for first, eps, sty, chunk_seconds in run([(f, min(CHUNK, episodes - f)) for f in pending]):
        path = folder / f"chunk-{first:05d}.hdf5"
        write_dsrl(path, eps, compression="gzip")
        m = {"settings": settings, "first": first, "episodes": len(eps),
             "seconds": round(chunk_seconds, 1), "styles": sty}
        write_json_atomic(path.with_suffix(".json"), m)
        chunks[first] = (path, m)
    recorded, styles, seconds = [], [], 0.0
    for first in firsts:
        path, m = chunks[first]
        n = min(CHUNK, episodes - first)
        recorded += load_trajectories(path, spec)[:n]
        styles += m["styles"][:n]
        seconds += m["seconds"] * n / m["episodes"]
    return recorded, styles, round(seconds, 1)


def rule_driver(task: str | TaskSpec) -> str | None:
    """The task's rule-based driver: ``"idm"`` (:mod:`dspo_ray.data.metadrive_driver`) for MetaDrive,
    ``"nav"`` (:mod:`dspo_ray.data.nav_driver`) for the Point Goal tasks, None for the others."""
    spec = get_task(task)
    return "idm" if spec.suite == "MetaDrive" else "nav" if spec.name in NAV_TASKS else None
