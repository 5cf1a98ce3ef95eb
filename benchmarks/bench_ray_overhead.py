#!/usr/bin/env python
"""What Ray costs: a DSPO trial under Tune vs the same ``run_dspo`` called directly, and the
diffusion stage's DDP step time on 1 vs 2 Ray Train workers.

    nice -n 10 .venv/bin/python benchmarks/bench_ray_overhead.py [--task DroneRun] [--out FILE]

Writes a text report (command, machine, date, numbers) to benchmarks/ray_overhead.txt.

1. Trial overhead. One DSPO configuration (the quick profile, shortened) run five ways:
   (a) ``run_dspo`` with the LocalRunner in a plain process (one thread per library, as a 1-CPU
   Ray task); (b) one Tune trial whose training stages
   run in the trial process (train.num_workers 0: Tune's own cost); (c) the old path: one Tune
   trial whose three training stages each run on their own 1-worker Ray Train TorchTrainer
   (``RayTrainRunner.run`` per stage); (d) the sweep's path: one Tune trial whose three training
   stages run on ONE 1-worker TorchTrainer (``RayTrainRunner.run_group``), and (e) the same on 2
   DDP workers. For (b)-(e): the trial's own wall time (reported from inside it) and the whole
   call's (ray.init .. shutdown included); for (a)-(e) the CPU seconds (user + system) of the
   whole call: this process and every descendant (Ray's included), sampled from /proc.
2. DDP step time. The real diffusion stage (``train_diffusion``) on the task's data, on 1 and 2
   Ray Train workers (gloo, one CPU and one torch thread each); per-step time from two run lengths
   (the difference cancels start-up), and throughput in windows/s (each worker draws its own
   batch, so 2 workers process twice the windows per step).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402

BUDGETS = {
    # the quick profile, shortened (a minute a trial): the default
    "short": {"profile": "quick", "eval_workers": 1,
          "discriminator.steps": 100, "discriminator.log_every": 50,
          "discriminator.checkpoint_every": 50,
          "diffusion.steps": 300, "diffusion.log_every": 100, "diffusion.checkpoint_every": 150,
          "generation.n_windows": 200, "bc.steps": 500, "bc.log_every": 250,
          "bc.checkpoint_every": 250},
    # the quick profile as `make sweep` trains it (about 3-4 CPU minutes a trial)
    "quick": {"profile": "quick", "eval_workers": 1},
}
BUDGET = BUDGETS["short"]  # main() sets the one chosen
EVAL_EPISODES = 5
WAYS = ("direct", "w0", "old", "w1", "w2")


def timed_stage(ctx, stage_fn, stage_kwargs):
    """Runs in each Ray Train worker: the stage, timed there (no start-up or teardown)."""
    start = time.perf_counter()
    value = stage_fn(ctx, **stage_kwargs)
    return {"elapsed": time.perf_counter() - start, "world_size": ctx.world_size,
            "has_value": value is not None}


def direct_run(task: str, workdir: Path) -> float:
    """run_dspo with the LocalRunner in a fresh process with one thread per math library, as a
    1-CPU Ray task gets (OMP_NUM_THREADS=1): the comparison is of frameworks, not thread counts.
    Timed inside that process, around run_dspo only."""
    import json
    import subprocess

    code = (
        "import json, sys, time, torch\n"
        "torch.set_num_threads(1)\n"
        "from dspo_ray.distributed.config import method_config\n"
        "from dspo_ray.dspo.pipeline import run_dspo\n"
        f"config = method_config('dspo', {task!r}, 0, {BUDGET!r}, {{}}, {EVAL_EPISODES})\n"
        "start = time.perf_counter()\n"
        f"run_dspo(config, {str(workdir)!r})\n"
        "print(json.dumps({'wall': time.perf_counter() - start}))\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])["wall"]


class CpuSampler:
    """CPU seconds (user + system) of this process and all its descendants (Ray's GCS, raylet,
    workers, trial and Train processes; the direct run's subprocess), sampled from /proc every
    0.2 s: each process counts with its last sample (what it spent in its last 0.2 s is lost)."""

    def __init__(self):
        import threading

        self.seen: dict[tuple[int, str], float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(d.name))
        out, todo = [], [os.getpid()]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo += children.get(pid, [])
        return out

    def _loop(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        while not self.stop.wait(0.2):
            for pid in self._tree():
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    # (starttime, pid) names a process: a reused pid is another one
                    key = (pid, fields[19])
                    self.seen[key] = (int(fields[11]) + int(fields[12])) / tick
                except (OSError, IndexError, ValueError):
                    pass

    def total(self) -> float:
        return sum(self.seen.values())


SAMPLER = CpuSampler()


def _cpu_s() -> float:
    """CPU seconds so far of this process tree (:class:`CpuSampler`)."""
    return SAMPLER.total()


def per_stage_run(task: str, storage: Path) -> tuple[float, float]:
    """The old path, for comparison: one Tune trial calling run_dspo with a RayTrainRunner that
    starts one 1-worker TorchTrainer per training stage."""
    import ray
    from ray import tune

    from dspo_ray.distributed.config import method_config
    from dspo_ray.distributed.sweep import start_ray
    from dspo_ray.distributed.train_runner import RayTrainRunner

    config = method_config("dspo", task, 0, BUDGET, {}, EVAL_EPISODES)
    storage.mkdir(parents=True, exist_ok=True)

    def trial(_):
        from dspo_ray.dspo.pipeline import run_dspo

        start = time.perf_counter()
        runner = RayTrainRunner(num_workers=1, storage_path=str(storage), run_name="old",
                                report_to_tune=True)
        run_dspo(config, storage / "work", runner=runner, report=lambda m: None)
        tune.report({"trial_s": time.perf_counter() - start})

    start = time.perf_counter()
    started = start_ray(None)
    try:
        grid = tune.Tuner(tune.with_resources(trial, {"cpu": 0, "memory": 256 * 2 ** 20}),
                          run_config=tune.RunConfig(name="bench-old", storage_path=str(storage),
                                                    verbose=0)).fit()
    finally:
        if started:
            ray.shutdown()
    total = time.perf_counter() - start
    assert not grid.errors, grid.errors
    return float(grid[0].metrics["trial_s"]), total


def tune_run(task: str, storage: Path, num_workers: int) -> tuple[float, float]:
    from dspo_ray.distributed.config import sweep_config_from_dict
    from dspo_ray.distributed.sweep import run_sweep

    config = sweep_config_from_dict({
        "name": f"bench-w{num_workers}", "tasks": [task], "seeds": [0], "methods": ["dspo"],
        "overrides": {"dspo": BUDGET}, "eval_episodes": EVAL_EPISODES,
        "scheduler": {"type": "fifo"},
        "train": {"num_workers": num_workers, "cpus_per_worker": 1},
        # the trial process takes one CPU when it trains itself, none when workers do
        "trial": {"cpus": 1 if num_workers == 0 else 0, "memory_mb": 256},
        "storage": str(storage)})
    start = time.perf_counter()
    result = run_sweep(config)
    total = time.perf_counter() - start
    row = result.trials.iloc[0]
    assert row["status"] == "finished", "the benchmark trial did not finish"
    return float(row["time/trial_s"]), total


def ddp_step_times(task: str, root: Path, steps: tuple[int, int]) -> dict[int, dict[str, float]]:
    import numpy as np
    import ray

    from dspo_ray.data import load_task_data
    from dspo_ray.distributed.config import method_config
    from dspo_ray.distributed.sweep import start_ray
    from dspo_ray.distributed.train_runner import RayTrainRunner
    from dspo_ray.dspo.diffusion import train_diffusion
    from dspo_ray.dspo.windows import ragged_from_data

    config = method_config("dspo", task, 0, BUDGET, {}, EVAL_EPISODES)
    data, _ = load_task_data(task, config.dataset, config.split)
    trajectories = ragged_from_data(data)
    # a timing benchmark: the conditioning signal's values do not change the step's cost
    signals = np.random.default_rng(0).uniform(size=len(trajectories.lengths)).astype(np.float32)
    out = {}
    started = start_ray(None)
    try:
        for workers in (1, 2):
            elapsed = {}
            for n in steps:
                diffusion = config.diffusion.__class__(**{
                    **config.diffusion.__dict__, "steps": n, "log_every": n,
                    "checkpoint_every": n})
                value = RayTrainRunner(num_workers=workers).run(
                    "diffusion", timed_stage, root / f"ddp-w{workers}-n{n}",
                    stage_fn=train_diffusion,
                    stage_kwargs=dict(trajectories=trajectories, signals=signals, config=diffusion,
                                seed=0))
                elapsed[n] = value["elapsed"]
            per_step = (elapsed[steps[1]] - elapsed[steps[0]]) / (steps[1] - steps[0])
            out[workers] = {"step_s": per_step,
                            "windows_per_s": workers * config.diffusion.batch_size / per_step,
                            **{f"elapsed_{n}": elapsed[n] for n in steps}}
    finally:
        if started:
            ray.shutdown()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="DroneRun")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "ray_overhead.txt")
    p.add_argument("--rounds", type=int, default=2,
                   help="interleaved repetitions of part 1 (the fastest counts)")
    p.add_argument("--steps", type=int, nargs=2, default=(100, 400),
                   help="two run lengths of the diffusion stage for the per-step time "
                        "(0 0: skip part 2)")
    p.add_argument("--budget", choices=list(BUDGETS), default="short",
                   help="DSPO's training budget: the quick profile shortened, or as make sweep runs it")
    p.add_argument("--ways", nargs="+", choices=WAYS, default=list(WAYS),
                   help="which of part 1's ways to run (direct is always run)")
    args = p.parse_args()
    global BUDGET
    BUDGET = BUDGETS[args.budget]
    ways = ["direct", *(w for w in args.ways if w != "direct")]
    os.environ.setdefault("RAY_TMPDIR", tempfile.mkdtemp(prefix="dspo-bench-ray-", dir="/tmp"))
    root = Path(tempfile.mkdtemp(prefix="dspo-bench-"))
    lines = []

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    # the machine is shared: interleave the three ways over several rounds, keep each one's
    # fastest round (the least disturbed), and record the load average
    runs = {way: [] for way in ways}
    cpu = {k: [] for k in runs}
    loads = [os.getloadavg()[0]]

    SAMPLER.thread.start()

    def timed(key, fn, *a):
        time.sleep(0.5)  # the sampler's last look at the previous call's processes
        before = _cpu_s()
        runs[key].append(fn(*a))
        time.sleep(0.5)
        cpu[key].append(_cpu_s() - before)

    try:
        for r in range(args.rounds):
            calls = {"direct": (lambda: (direct_run(args.task, root / f"direct{r}"),) * 2,),
                     "w0": (tune_run, args.task, root / f"tune{r}", 0),
                     "old": (per_stage_run, args.task, root / f"old{r}"),
                     "w1": (tune_run, args.task, root / f"tune{r}", 1),
                     "w2": (tune_run, args.task, root / f"tune{r}", 2)}
            for way in ways:
                timed(way, *calls[way])
            loads.append(os.getloadavg()[0])
        ddp = ddp_step_times(args.task, root, tuple(args.steps)) if args.steps[1] else None
        loads.append(os.getloadavg()[0])
    finally:
        shutil.rmtree(root, ignore_errors=True)
    best = {k: min(v) for k, v in runs.items()}
    fastest = {k: min(range(len(v)), key=lambda i: v[i]) for k, v in runs.items()}
    direct = best["direct"][0]

    say(f"# {Path(__file__).name}: Ray overhead of a DSPO trial, and DDP step time")
    say(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    say(f"date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M UTC}")
    say(f"machine: {socket.gethostname()}, {platform.platform()}, {os.cpu_count()} CPUs, "
        f"torch {torch.__version__}, CUDA {'yes' if torch.cuda.is_available() else 'no'}")
    import ray

    say(f"ray {ray.__version__}; RAY_TRAIN_HEALTH_CHECK_INTERVAL_S=0.2 (set by the sweep)")
    say(f"task {args.task}; DSPO budget {BUDGET}; {EVAL_EPISODES} evaluation episodes")
    say(f"1-minute load average during the run (shared 2-core machine): "
        f"{', '.join(f'{x:.1f}' for x in loads)}")
    say()
    say(f"1. one DSPO trial (same config, same seed); fastest of {args.rounds} interleaved rounds "
        f"(all rounds: " + "; ".join(
            f"{k} {', '.join(f'{t:.0f}' for t, _ in v)} s" for k, v in runs.items()) + ")")
    say("                                                              trial wall   whole call   CPU, whole call")
    names = {"direct": "run_dspo directly (LocalRunner, plain process)",
             "w0": "Tune trial, stages in the trial process (0 workers)",
             "old": "old: Tune, 3 stages on 3 1-worker TorchTrainers",
             "w1": "new: Tune, 3 stages on ONE 1-worker TorchTrainer",
             "w2": "new: Tune, 3 stages on ONE 2-worker TorchTrainer"}
    for key, label in names.items():
        if key not in best:
            continue
        trial_s, total_s = best[key]
        say(f"   {label:<54} {trial_s:8.1f} s   {total_s:8.1f} s   "
            f"{cpu[key][fastest[key]]:8.1f} s")
    say("   overhead per trial vs the direct call: "
        + "; ".join(f"{key} {best[key][0] - direct:+.1f} s ({(best[key][0] - direct) / direct:+.0%})"
                    for key in ("w0", "old", "w1", "w2") if key in best))
    if {"w0", "old", "w1"} <= set(best):
        w0_trial, w0_total = best["w0"]
        say(f"   Ray Train vs stages in the trial process: old {best['old'][0] - w0_trial:+.1f} s, "
            f"new (1 worker) {best['w1'][0] - w0_trial:+.1f} s per trial; ray.init+shutdown+"
            f"results ~{w0_total - w0_trial:.1f} s per sweep")
    if ddp is None:
        args.out.write_text("\n".join(lines) + "\n")
        print(f"written to {args.out}")
        return 0
    say()
    say(f"2. diffusion stage, DDP on Ray Train (gloo, 1 CPU per worker), "
        f"steps {args.steps[0]} vs {args.steps[1]}")
    say("   workers   step time    windows/s   (stage wall for each length, inside the workers)")
    for w, r in ddp.items():
        walls = ", ".join(f"{n}: {r[f'elapsed_{n}']:.1f} s" for n in args.steps)
        say(f"   {w:>7}   {r['step_s'] * 1000:7.1f} ms   {r['windows_per_s']:9.0f}   ({walls})")
    speed = ddp[2]["windows_per_s"] / ddp[1]["windows_per_s"]
    say(f"   2 workers process {speed:.2f}x the windows per second of 1 "
        f"(step time x{ddp[2]['step_s'] / ddp[1]['step_s']:.2f})")
    args.out.write_text("\n".join(lines) + "\n")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
