"""Price of the paper grid: per-iteration CPU cost of every method at its paper budget.

    python benchmarks/bench_grid_cost.py [--task CarCircle] [--threads 1]
                                         [--out benchmarks/results/grid_cost.json]

Each training loop (the 8 baselines' ``train`` at their default config; DSPO's stage trainers at
the paper profile) is run for two step counts n1 < n2 on ``--task``'s shipped data, one torch
thread, on this machine's CPU: CPU seconds per iteration = (cpu(n2) - cpu(n1)) / (n2 - n1) (the
setup -- data, model, first-call overheads -- cancels), setup = cpu(n1) - n1 x that. Methods with
two phases (RGM and CDT-V's classifier, then their main loop) are measured phase by phase, the
other phase held at 1 step. DSPO's generation is timed as DDPM-100 (and DDIM-10) sampling of a
batch at the paper shape, scaled to ``generation.n_windows``. Process CPU time is the measure
(contention-robust on a shared machine); wall time is recorded beside it. docs/cluster.md turns
this file into compute-hours and money.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dspo_ray.baselines import METHODS, config_from_dict, get_method  # noqa: E402
from dspo_ray.data import load_task_data  # noqa: E402
from dspo_ray.dspo.bc import train_bc  # noqa: E402
from dspo_ray.dspo.config import profile_config  # noqa: E402
from dspo_ray.dspo.diffusion import make_diffusion, train_diffusion  # noqa: E402
from dspo_ray.dspo.discriminator import train_discriminator  # noqa: E402
from dspo_ray.dspo.windows import ragged_from_data  # noqa: E402
from dspo_ray.tasks import action_bounds  # noqa: E402
from dspo_ray.training import LocalContext  # noqa: E402

# (n1, n2) per loop: enough steps that the difference dominates timer noise, few enough to fit
# the whole measurement in minutes on one core
STEPS = {"main": (50, 250), "cdtv": (3, 13), "classifier": (50, 250),
         "dspo/discriminator": (2, 6), "dspo/diffusion": (3, 13), "dspo/bc": (100, 500)}


def cost(run, n1: int, n2: int) -> dict:
    """CPU and wall seconds of ``run(n)`` per step (difference of two step counts) and setup."""
    run(1)  # first-call costs (lazy imports, allocator, kernels) are not the loop's
    out = {}
    for n in (n1, n2):
        wall, cpu = time.perf_counter(), time.process_time()
        run(n)
        out[n] = (time.perf_counter() - wall, time.process_time() - cpu)
    per_cpu = (out[n2][1] - out[n1][1]) / (n2 - n1)
    per_wall = (out[n2][0] - out[n1][0]) / (n2 - n1)
    return {"n1": n1, "n2": n2, "cpu_s_per_it": per_cpu, "wall_s_per_it": per_wall,
            "setup_cpu_s": max(out[n1][1] - n1 * per_cpu, 0.0),
            "cpu_s_n1": out[n1][1], "cpu_s_n2": out[n2][1]}


def baseline_costs(data, workdir: Path) -> dict:
    rows = {}
    for method in METHODS:
        config_cls, train = get_method(method)
        default = config_cls()
        phases = {"main": "steps"}
        if hasattr(default, "discriminator_steps"):
            phases["classifier"] = "discriminator_steps"
        rows[method] = {"phases": {}}
        for phase, field in phases.items():
            others = {f: 1 for f in phases.values() if f != field}

            def run(n, field=field, others=others):
                train(config_from_dict(config_cls, {field: n, **others}), data, workdir, None)
            n1, n2 = STEPS["cdtv" if (method == "cdtv" and phase == "main") else phase]
            measured = cost(run, n1, n2)
            measured["paper_iterations"] = getattr(default, field)
            rows[method]["phases"][phase] = measured
            print(method, phase, measured, flush=True)
        rows[method]["config"] = {k: (list(v) if isinstance(v, tuple) else v)
                                  for k, v in dataclasses.asdict(default).items()}
    return rows


def dspo_costs(data) -> dict:
    config = profile_config("paper", task=data.task.name)
    trajectories = ragged_from_data(data)
    ctx = lambda: LocalContext(checkpoint_path=None, device=torch.device("cpu"))  # noqa: E731
    signals = np.where(trajectories.is_demo, 0.9, 0.5).astype(np.float32)  # any signal: same cost
    low, high = action_bounds(data.task)
    obs = trajectories.observations
    act = trajectories.actions
    stages = {
        "discriminator": (config.discriminator.steps, lambda n: train_discriminator(
            ctx(), trajectories, dataclasses.replace(config.discriminator, steps=n),
            data.task.max_episode_steps, seed=0)),
        "diffusion": (config.diffusion.steps, lambda n: train_diffusion(
            ctx(), trajectories, signals, dataclasses.replace(config.diffusion, steps=n), seed=0)),
        "bc": (config.bc.steps, lambda n: train_bc(
            ctx(), obs, act, dataclasses.replace(config.bc, steps=n), low, high, seed=0)),
    }
    rows = {}
    for name, (iterations, run) in stages.items():
        measured = cost(run, *STEPS[f"dspo/{name}"])
        measured["paper_iterations"] = iterations
        rows[name] = measured
        print("dspo", name, measured, flush=True)
    # generation: n_windows windows sampled in batches; cost per window at the paper shape
    model = make_diffusion(config.diffusion, obs.shape[1], act.shape[1]).eval()
    batch = 16
    condition = torch.randn(batch, 2)
    for sampler, extra in (("ddpm-100", {}), ("ddim-10", {"sampler": "ddim", "sampling_steps": 10})):
        wall, cpu = time.perf_counter(), time.process_time()
        model.sample(condition, config.diffusion.guidance_weight, **extra)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        rows[f"generation/{sampler}"] = {"cpu_s_per_it": cpu / batch, "wall_s_per_it": wall / batch,
                                         "setup_cpu_s": 0.0, "batch": batch, "unit": "window",
                                         "paper_iterations": config.generation.n_windows}
        print("dspo generation", sampler, rows[f"generation/{sampler}"], flush=True)
    return rows


# --------------------------------------------------------------------------- pricing (stated inputs)

PRICES_USD_PER_H = {"g5.xlarge": 1.006, "m5.2xlarge": 0.384}
"""On-demand Linux prices, us-west-2 (clusters/aws.yaml's region), from AWS's public price list as
of 2024 -- not re-checked from this machine (no internet). Spot is cheaper and varies by hour."""
PRICES_DATE = "AWS on-demand list prices, us-west-2, as of 2024 (not re-checked)"
GPU_SPEEDUPS = (1, 10, 50)
"""ASSUMPTION, not measured (no GPU here): a g5.xlarge (one A10G) runs a training iteration S times
faster than one thread of this CPU. S=1 is the CPU-bound floor; the small-batch MLP baselines
(launch-bound on a GPU) sit near the low end, the 16M-parameter U-Net and CDT-V's batch-2048
transformer near the high end."""
EVAL_S_PER_TRIAL = 20 / 0.77
"""20 evaluation episodes at the slowest measured rate (PointGoal1, 1000-step episodes,
sequential: 0.77 episodes/s, benchmarks/results/evaluation_throughput_before.md); CPU-bound, not sped up."""


def trial_cpu_hours(report: dict, generation: str = "ddpm-100") -> dict[str, float]:
    """CPU-hours of one trial per method: sum over its loops of (s/it x paper iterations + setup)."""
    hours = {}
    for method, row in report["baselines"]["methods"].items():
        hours[method] = sum(p["cpu_s_per_it"] * p["paper_iterations"] + p["setup_cpu_s"]
                            for p in row["phases"].values()) / 3600
    stages = report["dspo"]["stages"]
    hours["dspo"] = sum(stages[k]["cpu_s_per_it"] * stages[k]["paper_iterations"] + stages[k]["setup_cpu_s"]
                        for k in ("discriminator", "diffusion", "bc", f"generation/{generation}")) / 3600
    return hours


def price(report: dict, grid_file: Path) -> list[str]:
    import yaml

    grid = yaml.safe_load(grid_file.read_text())
    n_tasks, n_seeds, n_configs = len(grid["tasks"]), len(grid["seeds"]), grid["num_samples"]
    workers = 16  # clusters/aws.yaml max_workers: one trial per g5.xlarge
    b, d = report["baselines"]["measured"], report["dspo"]["measured"]
    lines = ["# The paper grid, priced", "",
             "Written by `python benchmarks/bench_grid_cost.py --price` from `grid_cost.json`.", "",
             f"- measured inputs (`grid_cost.json`): `{b['command']}` (baselines: {b['date']}; DSPO: "
             f"{d['date']}; load average at start {b['load_at_start']}); {b['machine']}; task "
             f"{b['task']} (obs {b['obs_dim']}, act {b['act_dim']}); DSPO's labels stage (scoring "
             "every trajectory once) is not included",
             f"- grid: {grid_file.resolve().relative_to(Path(__file__).resolve().parents[1])} -- "
             f"{n_tasks} tasks x {n_seeds} seeds x "
             f"{len(grid['methods'])} methods; DSPO searched over {n_configs} configurations per task",
             f"- prices (stated input): {PRICES_DATE}: " + ", ".join(
                 f"{k} ${v:.3f}/h" for k, v in PRICES_USD_PER_H.items()),
             "- ASSUMPTION (no GPU measured): a g5.xlarge runs an iteration S x faster than one CPU "
             f"thread here; shown for S = {', '.join(map(str, GPU_SPEEDUPS))}",
             f"- evaluation: {EVAL_S_PER_TRIAL:.0f} s per trial (20 episodes, slowest measured task), "
             "not sped up", "",
             "Formula: trial CPU-h(method) = sum over its loops (CPU s/it x paper iterations + setup) / "
             "3600; node-h = trials x (CPU-h / S + eval h); cost = node-h x g5.xlarge $/h + "
             f"(node-h / {workers} workers) x m5.2xlarge $/h (the head, for the grid's wall time).", "",
             "## Measured per-iteration costs (1 CPU thread)", "",
             "| method | loop | CPU s/it | paper iterations | setup CPU s | CPU-h per trial |",
             "|---|---|---|---|---|---|"]
    for method, row in report["baselines"]["methods"].items():
        for phase, p in row["phases"].items():
            lines.append(f"| {method} | {phase} | {p['cpu_s_per_it']:.4f} | {p['paper_iterations']:,} | "
                         f"{p['setup_cpu_s']:.1f} | "
                         f"{(p['cpu_s_per_it'] * p['paper_iterations'] + p['setup_cpu_s']) / 3600:.2f} |")
    for stage, p in report["dspo"]["stages"].items():
        unit = " (per window)" if p.get("unit") == "window" else ""
        lines.append(f"| dspo (paper profile) | {stage}{unit} | {p['cpu_s_per_it']:.4f} | "
                     f"{p['paper_iterations']:,} | {p['setup_cpu_s']:.1f} | "
                     f"{(p['cpu_s_per_it'] * p['paper_iterations'] + p['setup_cpu_s']) / 3600:.2f} |")
    lines += ["", "## Grid cost", ""]
    header = ("| method | trials | CPU-h per trial | " + " | ".join(
        f"node-h, S={s} | $ S={s}" for s in GPU_SPEEDUPS) + " |")
    lines += [header, "|---|---|---|" + "---|---|" * len(GPU_SPEEDUPS)]
    totals = {s: [0.0, 0.0] for s in GPU_SPEEDUPS}
    for generation in ("ddpm-100", "ddim-10"):
        hours = trial_cpu_hours(report, generation)
        methods = list(hours) if generation == "ddpm-100" else ["dspo"]
        for method in methods:
            trials = n_tasks * n_seeds * (n_configs if method == "dspo" else 1)
            name = method if method != "dspo" else f"dspo ({n_configs} configs, {generation} generation)"
            cells = []
            for s in GPU_SPEEDUPS:
                node_h = trials * (hours[method] / s + EVAL_S_PER_TRIAL / 3600)
                dollars = node_h * (PRICES_USD_PER_H["g5.xlarge"] + PRICES_USD_PER_H["m5.2xlarge"] / workers)
                cells.append(f"{node_h:,.0f} | {dollars:,.0f}")
                if generation == "ddpm-100":
                    totals[s][0] += node_h
                    totals[s][1] += dollars
            lines.append(f"| {name} | {trials} | {hours[method]:.2f} | " + " | ".join(cells) + " |")
    lines.append("| **total (DSPO with DDPM-100)** | | | " + " | ".join(
        f"**{totals[s][0]:,.0f}** | **{totals[s][1]:,.0f}**" for s in GPU_SPEEDUPS) + " |")
    lines += ["", f"Wall time of the grid on {workers} GPU workers: " + ", ".join(
        f"S={s}: {totals[s][0] / workers / 24:.1f} days" for s in GPU_SPEEDUPS) + ".", ""]
    return lines


def git_commit() -> str:
    """The checkout's commit (and whether it had local changes), for the record."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=Path(__file__).resolve().parents[1],
                              capture_output=True, text=True).stdout.strip()
    changed = " + local changes" if git("status", "--porcelain", "-uno") else ""
    return git("rev-parse", "--short", "HEAD") + changed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="CarCircle")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only", nargs="+", default=["baselines", "dspo"], choices=["baselines", "dspo"])
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "grid_cost.json")
    p.add_argument("--price", action="store_true",
                   help="measure nothing: turn --out's measurements into the priced grid (.md beside it)")
    p.add_argument("--grid", type=Path, default=Path(__file__).parents[1] / "experiments/configs/paper.yaml")
    args = p.parse_args(argv)
    if args.price:
        lines = price(json.loads(args.out.read_text()), args.grid)
        args.out.with_suffix(".md").write_text("\n".join(lines))
        print("\n".join(lines))
        return 0
    torch.set_num_threads(args.threads)
    data, _ = load_task_data(args.task)
    report = json.loads(args.out.read_text()) if args.out.exists() else {}
    cmd = "python " + " ".join([str(Path(sys.argv[0]))] + (argv if argv is not None else sys.argv[1:]))
    meta = {"command": cmd, "date": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}",
            "commit": git_commit(),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, no GPU, "
                       f"torch {torch.__version__}, {args.threads} torch thread(s)",
            "load_at_start": " / ".join(f"{v:.1f}" for v in os.getloadavg()), "task": args.task,
            "obs_dim": data.task.obs_dim, "act_dim": data.task.act_dim}
    with tempfile.TemporaryDirectory() as tmp:
        if "baselines" in args.only:
            report["baselines"] = {"measured": meta, "methods": baseline_costs(data, Path(tmp))}
            args.out.write_text(json.dumps(report, indent=1) + "\n")
        if "dspo" in args.only:
            report["dspo"] = {"measured": meta, "stages": dspo_costs(data)}
            args.out.write_text(json.dumps(report, indent=1) + "\n")
    print("written", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
