"""Evaluation throughput: episodes/s with worker processes vs plain sequential rollouts.

    python benchmarks/bench_evaluation.py [--tasks CarCircle SwimmerVel] [--episodes 8]

Writes benchmarks/results/evaluation_throughput.md (command, machine, date, load, table).
The policy is an untrained MLPPolicy, so per-step inference is part of the cost, as in real use.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

import torch

from dspo_ray.evaluation import available_cpus, evaluate
from dspo_ray.policies import MLPPolicy
from dspo_ray.tasks import get_task

OUT = Path(__file__).parent / "results" / "evaluation_throughput.md"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", nargs="+", default=["CarCircle", "SwimmerVel"])
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--workers", type=int, default=available_cpus())
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)

    rows = []
    for name in args.tasks:
        spec = get_task(name)
        policy = MLPPolicy(spec.obs_dim, spec.act_dim).eval()
        timings = {}
        for label, workers in (("sequential", 1), (f"{args.workers} workers", args.workers)):
            start = time.perf_counter()
            result = evaluate(policy, spec, episodes=args.episodes, seed=0, workers=workers)
            timings[label] = (time.perf_counter() - start, result)
        (t_seq, r_seq), (t_par, r_par) = timings.values()
        assert r_seq == r_par, "parallel and sequential evaluation disagree"  # same seeds, same episodes
        steps = r_seq.length_mean * args.episodes
        rows.append(f"| {name} | {args.episodes} | {r_seq.length_mean:.0f} | "
                    f"{args.episodes / t_seq:.2f} ({steps / t_seq:.0f} steps/s) | "
                    f"{args.episodes / t_par:.2f} ({steps / t_par:.0f} steps/s) | {t_seq / t_par:.2f}x |")
        print(rows[-1], flush=True)

    text = "\n".join([
        "# Evaluation throughput: worker processes vs sequential",
        "",
        f"- command: `python {' '.join(sys.argv)}`",
        f"- machine: {platform.node()}, {platform.processor() or platform.machine()}, "
        f"{available_cpus()} CPUs, Python {platform.python_version()}, torch {torch.__version__}",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; "
        f"load average at the end: {os.getloadavg()[0]:.2f}",
        "- policy: untrained MLPPolicy (256x256), one torch thread per process; each run includes "
        "creating the environments (and, for workers, starting the processes)",
        "- parallel and sequential runs return identical results (asserted): episode i uses seed + i",
        "",
        f"| task | episodes | mean length | sequential episodes/s | {args.workers} workers episodes/s | speed-up |",
        "|---|---|---|---|---|---|",
        *rows, "",
    ])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(OUT)
    print(f"written to {OUT}")


if __name__ == "__main__":
    main()
