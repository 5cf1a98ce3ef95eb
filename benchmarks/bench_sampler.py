"""Generation samplers: DDPM over all 100 steps (the paper) against DDIM with fewer steps.

    python benchmarks/bench_sampler.py [--threads 1] [--task CarCircle] [--workdir DIR]
                                       [--parts throughput quality policy]
                                       [--out benchmarks/results/sampler.md]

* ``throughput``: sampling windows/s (wall and process-CPU) of each sampler at the quick and the
  paper profile's denoiser shapes (CarCircle: obs 8 + act 2), untrained weights (the cost does not
  depend on them), CFG as in generation; plus DDPM at a small batch, for what batching buys.
* ``quality``: a quick-profile DSPO run on the shipped dataset of ``--task`` up to its trained
  diffusion model (``run_dspo`` with ``stop_after=diffusion`` in ``DIR/base``; reused when there),
  then D^G generated exactly as the pipeline does (``generate``, the run's conditions) by each
  sampler, compared with the safe demonstrations' windows (the data at the generation
  conditions: safe, returns in the demonstrations' range) in the diffusion model's standardised
  units: per-dimension mean and std gaps, RBF-kernel MMD^2 (median-distance bandwidth) and mean
  nearest-neighbour distances both ways. DDPM with a second seed gives the noise floor.
* ``policy``: for each sampler, the rest of the quick pipeline (generation, BC, 20-episode
  evaluation) in ``DIR/<sampler>`` on copies of the base run's stage 1-2 artefacts: one seed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench_dspo import ACT_DIM, OBS_DIM  # noqa: E402
from bench_grid_cost import git_commit  # noqa: E402
from dspo_ray.data import load_task_data  # noqa: E402
from dspo_ray.dspo.config import profile_config  # noqa: E402
from dspo_ray.dspo.diffusion import load_diffusion, make_diffusion  # noqa: E402
from dspo_ray.dspo.generate import generate  # noqa: E402
from dspo_ray.dspo.pipeline import ARTEFACTS, _sidecar, run_dspo  # noqa: E402
from dspo_ray.dspo.windows import ragged_from_data  # noqa: E402
from dspo_ray.tasks import action_bounds  # noqa: E402

# (label, generation overrides); DDPM's second seed is the sampling noise floor of the metrics
SAMPLERS = {"ddpm-100": {}, "ddim-50": {"sampler": "ddim", "sampling_steps": 50},
            "ddim-20": {"sampler": "ddim", "sampling_steps": 20},
            "ddim-10": {"sampler": "ddim", "sampling_steps": 10}}
POLICY_SAMPLERS = ("ddpm-100", "ddim-20", "ddim-10")


def time_sampling(model, condition, weight, **sampler) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    model.sample(condition, weight, torch.Generator().manual_seed(0), **sampler)
    return time.perf_counter() - wall, time.process_time() - cpu


def throughput(batches: dict[str, int]) -> list[dict]:
    rows = []
    for profile, batch in batches.items():
        cfg = profile_config(profile).diffusion
        model = make_diffusion(cfg, OBS_DIM, ACT_DIM).eval()
        condition = torch.randn(batch, 2)
        time_sampling(model, condition[:8], cfg.guidance_weight, sampler="ddim", sampling_steps=2)
        runs = [(name, batch, s) for name, s in SAMPLERS.items()] + [("ddpm-100", 25, {})]
        for name, b, sampler in runs:
            wall, cpu = time_sampling(model, condition[:b], cfg.guidance_weight, **sampler)
            row = {"profile": profile, "sampler": name, "batch": b, "wall_s": wall, "cpu_s": cpu,
                   "windows_per_s": b / wall, "windows_per_cpu_s": b / cpu}
            rows.append(row)
            print(row, flush=True)
    return rows


def rbf_mmd2(x: torch.Tensor, y: torch.Tensor, bandwidth: float) -> float:
    """Unbiased MMD^2 with k(a, b) = exp(-|a - b|^2 / (2 bandwidth^2))."""
    k = lambda a, b: torch.exp(-torch.cdist(a, b).pow(2) / (2 * bandwidth ** 2))  # noqa: E731
    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    n, m = len(x), len(y)
    return float((kxx.sum() - kxx.trace()) / (n * (n - 1)) + (kyy.sum() - kyy.trace()) / (m * (m - 1))
                 - 2 * kxy.mean())


def window_metrics(generated: np.ndarray, real: np.ndarray, bandwidth: float) -> dict:
    """Gaps between generated and real windows (B, H, C), both in standardised units."""
    g, r = torch.as_tensor(generated).double(), torch.as_tensor(real).double()
    g_steps, r_steps = g.reshape(-1, g.shape[-1]), r.reshape(-1, r.shape[-1])
    mean_gap = (g_steps.mean(0) - r_steps.mean(0)).abs()
    std_ratio = g_steps.std(0) / r_steps.std(0)
    gf, rf = g.flatten(1), r.flatten(1)
    return {"mean_gap_max": float(mean_gap.max()), "mean_gap_avg": float(mean_gap.mean()),
            "std_ratio_min": float(std_ratio.min()), "std_ratio_max": float(std_ratio.max()),
            "mmd2": rbf_mmd2(gf, rf, bandwidth),
            "nn_generated_to_real": float(torch.cdist(gf, rf).min(1).values.mean()),
            "nn_real_to_generated": float(torch.cdist(rf, gf).min(1).values.mean())}


def base_config(task: str, **generation):
    return profile_config("quick", task=task, **{f"generation.{k}": v for k, v in generation.items()})


def quality(task: str, workdir: Path) -> tuple[list[dict], dict]:
    config = profile_config("quick", task=task, stop_after="diffusion")
    base = workdir / "base"
    trained = run_dspo(config, base)  # trains stages 1-2, or reads them back
    data, _ = load_task_data(config.task, config.dataset, config.split)
    trajectories = ragged_from_data(data)
    artefact = torch.load(base / ARTEFACTS["diffusion"], map_location="cpu", weights_only=False)
    with np.load(base / ARTEFACTS["labels"]) as f:
        signals = f["safety_signal"]
    model = load_diffusion(artefact)
    demo = trajectories.is_demo
    # the reference: every window of the safe demonstrations, in the model's standardised units
    h = model.horizon
    x = np.concatenate([trajectories.observations, trajectories.actions], 1)
    rows = [s + np.arange(h) + o for s, n in zip(trajectories.starts[demo], trajectories.lengths[demo])
            for o in range(0, n - h + 1, h // 2)]
    real = model.normalize(torch.as_tensor(x[np.array(rows)])).numpy()
    flat = torch.as_tensor(real).flatten(1).double()
    bandwidth = float(torch.cdist(flat, flat).median())
    low, high = action_bounds(config.task)
    results = []
    for name, overrides in [*SAMPLERS.items(), ("ddpm-100 (seed 1)", {})]:
        gen_config = base_config(task, **overrides).generation
        seed = 1 if "seed 1" in name else config.seed
        wall, cpu = time.perf_counter(), time.process_time()
        generated = generate(artefact, gen_config, config.diffusion.guidance_weight,
                             trajectories.returns[demo], signals[demo], low, high, seed=seed)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        windows = np.concatenate([generated["observations"], generated["actions"]], -1)
        metrics = window_metrics(model.normalize(torch.as_tensor(windows)).numpy(), real, bandwidth)
        row = {"sampler": name, "n_windows": len(windows), "wall_s": wall, "cpu_s": cpu, **metrics}
        results.append(row)
        print(row, flush=True)
    info = {"task": config.task, "n_real_windows": len(real), "bandwidth": bandwidth,
            "diffusion_steps_trained": config.diffusion.steps,
            "stage_times": {k: v for k, v in trained.items() if k.startswith("time/")}}
    return results, info


def policy(task: str, workdir: Path) -> list[dict]:
    base = workdir / "base"
    keep = [ARTEFACTS[s] for s in ("discriminator", "labels", "diffusion")]
    results = []
    for name in POLICY_SAMPLERS:
        run = workdir / name
        run.mkdir(parents=True, exist_ok=True)
        for file in keep:  # stages 1-2 as trained once; no config.json: this run's settings differ
            for path in (base / file, _sidecar(base / file)):
                if not (run / path.name).exists():
                    shutil.copy2(path, run / path.name)
        result = run_dspo(base_config(task, **SAMPLERS[name]), run)
        row = {"sampler": name, **{k: result[k] for k in sorted(result) if k.startswith(
            ("eval/", "generation/", "time/generation", "time/bc", "time/evaluation"))}}
        results.append(row)
        print(row, flush=True)
    return results


def fmt(v, digits=3):
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def header(part: dict) -> list[str]:
    return [f"- command: `{part['command']}`" + (f" at commit {part['commit']}" if "commit" in part else ""),
            f"- date: {part['date']}", f"- machine: {part['machine']}",
            f"- load average at start (1/5/15 min): {part['load']} (shared machine: wall numbers "
            "are pessimistic; CPU s is the contention-robust one)", ""]


def render(report: dict) -> list[str]:
    lines = ["# Generation samplers: DDPM-100 (paper) vs DDIM", "",
             "Written by `benchmarks/bench_sampler.py` from `sampler.json` (each part records the "
             "command that measured it).", ""]
    if "throughput" in report:
        part, rows = report["throughput"], report["throughput"]["rows"]
        lines += ["## Sampling throughput (untrained weights, CFG, CarCircle shapes)", "", *header(part),
                  "| profile | sampler | batch | wall s | CPU s | windows/s (wall) | windows per CPU s | "
                  "speed-up vs DDPM-100 at the full batch (CPU) |", "|---|---|---|---|---|---|---|---|"]
        for r in rows:
            ref = next(q for q in rows if q["profile"] == r["profile"])  # DDPM-100, full batch
            lines.append(f"| {r['profile']} | {r['sampler']} | {r['batch']} | {r['wall_s']:.1f} | "
                         f"{r['cpu_s']:.1f} | {r['windows_per_s']:.2f} | {r['windows_per_cpu_s']:.2f} | "
                         f"{r['windows_per_cpu_s'] / ref['windows_per_cpu_s']:.1f}x |")
        lines.append("")
    if "quality" in report:
        part, info = report["quality"], report["quality"]["info"]
        lines += [f"## Generated data ({info['task']}, quick-profile diffusion model, "
                  f"{info['diffusion_steps_trained']} training steps, seed 0)", "", *header(part),
                  f"Reference: {info['n_real_windows']} windows of the safe demonstrations (stride "
                  "horizon/2), standardised per dimension by the model's statistics. Mean gap: "
                  "|generated mean - real mean| per dimension (max, average over the dims); std "
                  "ratio: generated/real std per dimension (min, max); MMD^2: RBF kernel, bandwidth "
                  f"{info['bandwidth']:.2f} (median real-real distance), unbiased; NN: mean Euclidean "
                  "distance of each flattened window to its nearest neighbour in the other set "
                  "(generated->real: realism; real->generated: coverage). DDPM seed 1 = noise floor.",
                  "", "| sampler | windows | CPU s | wall s | mean gap max / avg | std ratio min-max | "
                  "MMD^2 | NN gen->real | NN real->gen |", "|---|---|---|---|---|---|---|---|---|"]
        for r in part["rows"]:
            lines.append(f"| {r['sampler']} | {r['n_windows']} | {r['cpu_s']:.1f} | {r['wall_s']:.1f} | "
                         f"{r['mean_gap_max']:.3f} / {r['mean_gap_avg']:.3f} | "
                         f"{r['std_ratio_min']:.2f}-{r['std_ratio_max']:.2f} | {r['mmd2']:.4f} | "
                         f"{r['nn_generated_to_real']:.3f} | {r['nn_real_to_generated']:.3f} |")
        lines.append("")
    if "policy" in report:
        part = report["policy"]
        keys = ["eval/normalized_reward", "eval/normalized_cost", "eval/reward_mean", "eval/reward_std",
                "eval/cost_mean", "eval/cost_std"]
        lines += [f"## Final policy (quick DSPO on {part['task']}: ONE seed (0), 20 episodes; stages "
                  "1-2 trained once and shared, generation + BC + evaluation per sampler)", "",
                  *header(part), "| sampler | " + " | ".join(keys) + " | generation CPU s |",
                  "|---|" + "---|" * (len(keys) + 1)]
        for r in part["rows"]:
            lines.append(f"| {r['sampler']} | " + " | ".join(fmt(r.get(k)) for k in keys)
                         + f" | {fmt(r.get('time/generation_cpu_s'), 1)} |")
        lines.append("")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--task", default="CarCircle")
    p.add_argument("--workdir", type=Path, default=Path("results/bench_sampler"))
    p.add_argument("--parts", nargs="*", default=["throughput", "quality", "policy"],
                   choices=["throughput", "quality", "policy"],
                   help="what to measure; none: rewrite the report from its .json")
    p.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "sampler.md",
                   help="the report; its numbers are kept in the .json beside it, one entry per part")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    raw = args.out.with_suffix(".json")
    report = json.loads(raw.read_text()) if raw.exists() else {}
    cmd = "python " + " ".join([str(Path(sys.argv[0]))] + (argv if argv is not None else sys.argv[1:]))
    machine = (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, no GPU, "
               f"torch {torch.__version__}, {args.threads} torch thread(s)")
    for name in args.parts:
        load = " / ".join(f"{v:.1f}" for v in os.getloadavg())
        part = {"command": cmd, "date": f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M UTC}",
                "commit": git_commit(),
                "machine": machine, "load": load, "task": args.task}
        if name == "throughput":
            part["rows"] = throughput({"quick": 500, "paper": 64})
        elif name == "quality":
            part["rows"], part["info"] = quality(args.task, args.workdir)
        else:
            part["rows"] = policy(args.task, args.workdir)
        report[name] = part
        args.out.parent.mkdir(parents=True, exist_ok=True)
        raw.write_text(json.dumps(report, indent=1, default=float) + "\n")
        args.out.write_text("\n".join(render(report)))
        print("written", args.out, raw, flush=True)
    if not args.parts:
        args.out.write_text("\n".join(render(report)))
        print("written", args.out, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
