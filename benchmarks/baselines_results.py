"""Every baseline on the shipped datasets, quick budgets, several seeds: a results note.

    python benchmarks/baselines_results.py [--tasks CarCircle ...] [--seeds 0 1 2] [--jobs 2]

Trains and evaluates each (method, task, seed) with ``dspo_ray.baselines.run_method`` (the same
call the Ray sweep makes), keeps each run's result.json under --work (finished runs are skipped on
a rerun), and writes docs/results/baselines_quick.md: the command, machine, date, datasets, budgets
and a table of normalised reward / cost (mean +- std over seeds). Tasks default to every task
whose dataset ``find_dataset`` can find (the shipped ``datasets/`` or ``$DSRL_DATASET_DIR``).

The budgets are far below the paper's (1M / 100k steps): the numbers show the pipeline end to end
on a laptop-class machine, not a reproduction of the paper's Table 1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import shlex
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "results" / "baselines_quick.md"

# Quick budgets, sized for a shared 2-core CPU machine (one run: one to a few CPU-minutes);
# every other setting is the method's default (the paper's / reference implementation's).
QUICK_BUDGETS: dict[str, dict] = {
    "bc_all": {"steps": 2000},  # cells marked (n=k) had only k of the seeds finished
    "bc_safe": {"steps": 2000},
    "td3bc": {"steps": 2000},
    "iql": {"steps": 2000},
    "cql": {"steps": 200},  # ~40x the cost of an IQL step on CPU (30 sampled actions per state)
    "dwbc": {"steps": 2000},
    "rgm": {"steps": 2000, "discriminator_steps": 500},
    "cdtv": {"steps": 200, "batch_size": 64, "warmup_steps": 20, "discriminator_steps": 500},
}


def shipped_tasks() -> list[str]:
    from dspo_ray.data import DatasetError, find_dataset
    from dspo_ray.tasks import TASKS

    found = []
    for name in TASKS:
        try:
            find_dataset(name)
            found.append(name)
        except DatasetError:
            pass
    return found


def one_run(method: str, task: str, seed: int, work: str, eval_episodes: int,
            n_unlabelled: int | None) -> dict:
    import torch

    from dspo_ray.baselines import run_method
    from dspo_ray.data import SplitConfig
    from dspo_ray.io import write_json_atomic

    torch.set_num_threads(1)
    run_dir = Path(work) / method / task / f"seed{seed}"
    done = run_dir / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    metrics = run_method(method, task, seed, QUICK_BUDGETS[method], workdir=run_dir,
                         eval_episodes=eval_episodes, eval_workers=1,
                         split=SplitConfig(n_unlabelled=n_unlabelled))
    write_json_atomic(done, metrics)
    print(f"{method:8s} {task:12s} seed {seed}: reward {metrics['eval/normalized_reward']:.3f} "
          f"cost {metrics['eval/normalized_cost']:.3f} train {metrics['time/train_s']:.0f}s", flush=True)
    return metrics


def machine() -> str:
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu}, {len(os.sched_getaffinity(0))} CPUs available, {gpu}; Python "
            f"{platform.python_version()}, torch {torch.__version__}; load average at the end "
            f"{os.getloadavg()[0]:.1f} (machine shared with other jobs)")


def fmt(values: list[float]) -> str:
    return f"{np.mean(values):.2f} ± {np.std(values):.2f}"


def write_note(results: list[dict], tasks: list[str], methods: list[str], seeds: list[int],
               eval_episodes: int, command: str, wall_s: float, out: Path = OUT,
               n_unlabelled: int | None = None) -> Path:
    from dspo_ray.data import find_dataset

    lines = [
        "# Baselines on the shipped datasets, quick budgets",
        "",
        f"Command: `{command}`  ",
        f"Date: {dt.datetime.now().strftime('%Y-%m-%d %H:%M')}  ",
        f"Machine: {machine()}  ",
        f"Wall time: {wall_s / 60:.1f} min" if wall_s > 60 else
        "Rendered from the finished runs (`--note-only`); per-run train times in the last column.",
        "",
        f"Seeds {seeds}; {eval_episodes} evaluation episodes per run in the real simulator "
        "(`dspo_ray.evaluation.evaluate`, DSRL scoring); data: the cost-label-free split "
        f"(15 safe demonstrations + {n_unlabelled or 'the paper Table 3 number of'} unlabelled "
        "trajectories, no costs).",
        "",
        "Datasets: " + ", ".join(f"`{find_dataset(t).name}`" for t in tasks),
        "",
        "Budgets (every other setting is the method's default, see `dspo_ray/baselines/`): "
        + "; ".join(f"{m} {QUICK_BUDGETS[m]}" for m in methods),
        "",
        "**These budgets are 50-5000x below the paper's. The table shows that every method runs "
        "end to end on the shipped data; it is not a reproduction of the paper's Table 1.**",
        "",
        "Method notes: RGM is the single-level, discriminator form of RGM's reward correction "
        "(r' = r + std(r) clip(log D/(1-D))) followed by IQL; CDT-V's step cost is "
        "max(0, r - r') from that correction and its cost-to-go target is the largest estimated "
        "cost return among the demonstrations (the cost limit in estimated-cost units); see the "
        "module docstrings in `dspo_ray/baselines/`. CQL and CDT-V get the fewest steps because "
        "theirs are the most expensive on a CPU.",
        "",
        "Cells: normalised reward / normalised cost, mean ± std over seeds; a result is safe when "
        "the normalised cost is <= 1 (marked ✓ when the mean over seeds is).",
        "",
    ]
    by_key = {(r["method"], r["task"], r["seed"]): r for r in results}
    lines.append("| method | " + " | ".join(tasks) + " | train s (mean) |")
    lines.append("|---|" + "---|" * len(tasks) + "---|")
    for m in methods:
        cells, times = [], []
        for t in tasks:
            rs = [by_key[(m, t, s)] for s in seeds if (m, t, s) in by_key]
            if not rs:
                cells.append("—")
                continue
            rew = [r["eval/normalized_reward"] for r in rs]
            cost = [r["eval/normalized_cost"] for r in rs]
            times += [r["time/train_s"] for r in rs]
            safe = " ✓" if np.mean(cost) <= 1 else ""
            partial = f" (n={len(rs)})" if len(rs) < len(seeds) else ""
            cells.append(f"{fmt(rew)} / {fmt(cost)}{safe}{partial}")
        lines.append(f"| {m} | " + " | ".join(cells) + f" | {np.mean(times):.0f} |")
    lines.append("")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, out)
    return out


def main() -> int:
    from dspo_ray.baselines import METHODS

    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=None, help="default: every task with a dataset")
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel (one CPU each)")
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--n-unlabelled", type=int, default=None,
                        help="unlabelled trajectories in the split (default: the paper's Table 3)")
    parser.add_argument("--work", default=str(REPO / "runs" / "baselines_quick"))
    parser.add_argument("--out", default=str(OUT), help="the note (markdown)")
    parser.add_argument("--note-only", action="store_true",
                        help="train nothing: write the note from the runs already finished in --work")
    args = parser.parse_args()
    tasks = args.tasks or shipped_tasks()
    if not tasks:
        print("error: no task has a dataset (datasets/ or $DSRL_DATASET_DIR); nothing to run",
              file=sys.stderr)
        return 2
    # the command that produces this note (--note-only only re-renders finished runs)
    command = "python benchmarks/baselines_results.py " + shlex.join(
        [a for a in sys.argv[1:] if a != "--note-only"])
    jobs = [(m, t, s) for t in tasks for m in args.methods for s in args.seeds]
    start = time.perf_counter()
    if args.note_only:
        done = [Path(args.work) / m / t / f"seed{s}" / "result.json" for m, t, s in jobs]
        results = [json.loads(p.read_text()) for p in done if p.exists()]
    else:
        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(one_run, m, t, s, args.work, args.eval_episodes,
                                   args.n_unlabelled) for m, t, s in jobs]
            results = [f.result() for f in futures]
    path = write_note(results, tasks, args.methods, args.seeds, args.eval_episodes,
                      command.strip(), time.perf_counter() - start, Path(args.out),
                      args.n_unlabelled)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
