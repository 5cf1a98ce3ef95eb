"""Evaluation throughput: sequential rollouts vs 2 processes, with cold and kept workers.

    python benchmarks/bench_evaluation.py [--tasks CarCircle PointGoal1 SwimmerVel] [--episodes 20]

Per task, each in a fresh Python process (so that no worker or import is left from the previous
row): ``evaluate(workers=1)``; ``workers=2`` with no workers running (the call starts them:
spawn, torch, the simulator); ``workers=2`` with kept workers that a run started beforehand
(``start_evaluation_workers``, what a training run does when it starts: their start-up is timed
apart); and the automatic choice (``workers=None``) both ways. Every run creates its
environments. Writes benchmarks/results/evaluation_throughput.md (command, machine, date, load,
table). The policy is an untrained MLPPolicy, so per-step inference is part of the cost.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from dspo_ray.io import write_bytes_atomic

OUT = Path(__file__).parent / "results" / "evaluation_throughput.md"
MODES = ("sequential", "2 cold", "2 kept", "auto cold", "auto kept")


def measure(task: str, episodes: int, mode: str) -> dict:
    """One mode on one task, in this (fresh) process; wall seconds and the result."""
    import torch

    from dspo_ray.evaluation import evaluate, start_evaluation_workers
    from dspo_ray.policies import MLPPolicy
    from dspo_ray.tasks import get_task

    torch.manual_seed(0)
    torch.set_num_threads(1)
    spec = get_task(task)
    policy = MLPPolicy(spec.obs_dim, spec.act_dim).eval()
    workers = None if mode.startswith("auto") else 1 if mode == "sequential" else 2
    start_s = 0.0
    if mode.endswith("kept"):
        start = time.perf_counter()
        start_evaluation_workers(spec, workers, wait=True)  # a run's training overlaps this
        start_s = time.perf_counter() - start
    start = time.perf_counter()
    result = evaluate(policy, spec, episodes=episodes, seed=0, workers=workers)
    return {"wall_s": time.perf_counter() - start, "start_s": start_s, "result": result.to_dict()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", nargs="+", default=["CarCircle", "PointGoal1", "SwimmerVel"])
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=2, help="repetitions; the fastest counts")
    parser.add_argument("--one", nargs=2, metavar=("TASK", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], args.episodes, args.one[1])))
        return
    from dspo_ray.evaluation import WORKER_START_S, available_cpus

    load_start = os.getloadavg()
    rows = []
    for task in args.tasks:
        best: dict[str, dict] = {}
        for _ in range(args.rounds):
            for mode in MODES:
                out = subprocess.run([sys.executable, __file__, "--episodes", str(args.episodes),
                                      "--one", task, mode], capture_output=True, text=True,
                                     check=True)
                run = json.loads(out.stdout.strip().splitlines()[-1])
                if mode not in best or run["wall_s"] < best[mode]["wall_s"]:
                    best[mode] = run
        results = {json.dumps(r["result"], sort_keys=True) for r in best.values()}
        assert len(results) == 1, f"{task}: the modes disagree"  # same seeds, same episodes
        seq = best["sequential"]["wall_s"]
        length = best["sequential"]["result"]["length_mean"]
        cells = [f"{best[m]['wall_s']:.2f} s ({seq / best[m]['wall_s']:.2f}x)" for m in MODES]
        rows.append(f"| {task} | {args.episodes} x {length:.0f} | " + " | ".join(cells)
                    + f" | {best['2 kept']['start_s']:.2f} s |")
        print(rows[-1], flush=True)

    text = "\n".join([
        "# Evaluation throughput: sequential vs 2 processes, cold and kept workers",
        "",
        f"- command: `python {' '.join(sys.argv)}`",
        f"- machine: {platform.node()}, {platform.processor() or platform.machine()}, "
        f"{available_cpus()} CPUs, Python {platform.python_version()}",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; load average at the "
        f"start {load_start[0]:.2f}, at the end {os.getloadavg()[0]:.2f}",
        "- policy: untrained MLPPolicy (256x256), one torch thread per process. Each mode runs in "
        "a fresh process; every run creates its environments (4 streams). Fastest of "
        f"{args.rounds} rounds. All modes return identical results (asserted).",
        "- `2`: `workers=2`, this process runs half of the streams and one worker process the "
        "other half. `cold`: no worker running, the call starts it. `kept`: "
        "`start_evaluation_workers` ran before and its workers were ready (as a run that starts "
        "them when it starts: their start-up, last column, overlaps training). `auto`: "
        f"`workers=None`, which without workers starts one only if the first episode's time "
        f"says the rest would save more than WORKER_START_S = {WORKER_START_S} s.",
        "",
        "| task | episodes x steps | " + " | ".join(f"{m} (speed-up)" for m in MODES)
        + " | worker start-up (kept) |",
        "|---|---|" + "---|" * len(MODES) + "---|",
        *rows, "",
    ])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(OUT, text.encode())
    print(f"written to {OUT}")


if __name__ == "__main__":
    main()
