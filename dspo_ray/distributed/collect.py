"""Dataset collection on Ray: every run of every task as one Ray task, progress while they finish.

The algorithm stays Ray-free in :mod:`dspo_ray.data.collect`; here each
:class:`~dspo_ray.data.collect.CollectRun` not finished yet becomes a ``ray.remote(num_cpus=1)``
task (one CPU: the collector runs torch on one thread), all tasks of all suites' runs are in flight
at once on whatever cluster is there (an embedded local Ray by default), a tqdm bar advances as
``ray.wait`` hands back finished runs, and each task's dataset is written as soon as its last run
is in. A run writes its own files atomically on the node that ran it, so the output folder must be
shared storage on a multi-node cluster (or run each task's collection on one node).

The rule-based drivers (MetaDrive's IDM, the Point Goal navigation controller) need no training:
:func:`chunks_on_ray` drives their chunks of episodes as Ray tasks, one CPU each, and hands each
chunk back to the caller, which saves it as it comes (:func:`dspo_ray.data.scripted.record_in_chunks`).
"""

from __future__ import annotations

import os
from pathlib import Path

import ray

from dspo_ray.data.collect import CollectResult, CollectRun, finish_task, run_collect_run, run_is_finished
from dspo_ray.data.scripted import ChunkRunner

# on a busy machine the GCS can take longer than Ray's default 30 s to come up
RAY_ENV = {"RAY_gcs_server_port_wait_time_s": "120"}


def start_local_or_join(address: str | None, num_cpus: int | None = None) -> bool:
    """Join ``address`` (``auto``, ``host:port``, ``ray://...``) or start an embedded local Ray
    bound to 127.0.0.1 (no dashboard: plain tasks do not need it). True when this call started or
    joined Ray, so the caller shuts it down."""
    if ray.is_initialized():
        return False
    for k, v in RAY_ENV.items():
        os.environ.setdefault(k, v)
    # the workers import dspo_ray from this checkout
    root = str(Path(__file__).resolve().parents[2])
    env = {**RAY_ENV, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": "1"}
    if address:
        ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=False)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count(), _node_ip_address="127.0.0.1",
                 include_dashboard=False, runtime_env={"env_vars": env}, log_to_driver=False)
    return True


@ray.remote(num_cpus=1)
def _run_remote(run: CollectRun, out_dir: str) -> dict:
    import torch

    torch.set_num_threads(1)
    # the run's training log goes next to its files (``tail -f`` it; the driver shows a bar)
    log_path = run.path(out_dir).with_suffix(".log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as f:
        return run_collect_run(run, out_dir, log=lambda m: print(m, file=f, flush=True))


def collect_on_ray(plans: dict[str, list[CollectRun]], out_dir: str | Path, keep: int | None = None,
                   address: str | None = None, num_cpus: int | None = None, progress: bool = True,
                   log=print, min_safe_share: float = 0.0) -> dict[str, CollectResult]:
    """Collect every task of ``plans`` (task -> its runs): the unfinished runs of all tasks run
    in parallel as Ray tasks; finished ones (from an interrupted earlier call) are skipped."""
    from tqdm import tqdm

    out_dir = str(out_dir)
    missing = {task: [r for r in runs if not run_is_finished(r, out_dir)] for task, runs in plans.items()}
    n_missing = sum(len(m) for m in missing.values())
    results: dict[str, CollectResult] = {}
    started = False
    try:
        if n_missing:
            started = start_local_or_join(address, num_cpus)
        pending = {}
        for task, runs in missing.items():
            for r in runs:
                pending[_run_remote.remote(r, out_dir)] = (task, r)
        left = {task: len(runs) for task, runs in missing.items()}
        for task in [t for t, n in left.items() if n == 0]:
            results[task] = finish_task(plans[task], out_dir, keep=keep, trained=0, log=log,
                                        min_safe_share=min_safe_share)
        failed = []
        with tqdm(total=n_missing, desc="collection runs", unit="run", disable=not progress) as bar:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                task, run = pending.pop(done[0])
                bar.update(1)
                try:
                    summary = ray.get(done[0])
                except Exception as e:  # the other runs go on; a rerun resumes from what finished
                    failed.append(f"{task} {run.name}: {e}")
                    left[task] = -1
                    continue
                bar.set_postfix_str(f"{task} {run.name}: {summary['recorded']['trajectories']} episodes "
                                    f"in {summary['seconds']:.0f} s")
                left[task] -= 1
                if left[task] == 0:
                    results[task] = finish_task(plans[task], out_dir, keep=keep,
                                                trained=len(missing[task]), log=log,
                                                min_safe_share=min_safe_share)
        if failed:
            raise RuntimeError("collection runs failed (rerun the same command to resume):\n  "
                               + "\n  ".join(failed))
    finally:
        if started:
            ray.shutdown()
    return results


def _chunk_driver(driver: str):
    """The rule-based driver's chunk function (the collector's driver names: ``idm``, ``nav``)."""
    if driver == "idm":
        from dspo_ray.data.metadrive_driver import drive_chunk
    elif driver == "nav":
        from dspo_ray.data.nav_driver import drive_chunk
    else:
        raise ValueError(f"no rule-based driver {driver!r}: idm (MetaDrive) or nav (Point Goal)")
    return drive_chunk


@ray.remote(num_cpus=1)
def _drive_chunk_remote(driver: str, cfg, first: int, count: int) -> tuple[list, list, float, list[str]]:
    import time

    import torch

    torch.set_num_threads(1)
    lines: list[str] = []  # the chunk's log line goes back to the caller's bar
    started = time.time()
    episodes, styles = _chunk_driver(driver)(cfg, first, count, log=lines.append)
    return episodes, styles, time.time() - started, lines


def chunks_on_ray(driver: str, cfg, address: str | None = None, num_cpus: int | None = None,
                  progress: bool = True) -> ChunkRunner:
    """A chunk runner (:data:`dspo_ray.data.scripted.ChunkRunner`) that drives every chunk of a
    rule-based collection (``driver``: ``idm`` or ``nav``; ``cfg``: its DriverConfig or NavConfig)
    as a Ray task, one CPU each, all in flight at once, on the cluster at ``address`` or an
    embedded local Ray (started only when there is a chunk to drive, shut down at the end)."""
    _chunk_driver(driver)  # an unknown driver fails here, before Ray starts

    def run(chunks: list[tuple[int, int]]):
        if not chunks:
            return
        from tqdm import tqdm

        started = start_local_or_join(address, num_cpus)
        try:
            pending = {_drive_chunk_remote.remote(driver, cfg, first, count): first
                       for first, count in chunks}
            with tqdm(total=len(chunks), desc=f"{cfg.task} chunks", unit="chunk",
                      disable=not progress) as bar:
                while pending:
                    done, _ = ray.wait(list(pending), num_returns=1)
                    first = pending.pop(done[0])
                    episodes, styles, seconds, lines = ray.get(done[0])
                    bar.update(1)
                    if lines:
                        bar.set_postfix_str(lines[-1])
                    yield first, episodes, styles, seconds
        finally:
            if started:
                ray.shutdown()
    return run
