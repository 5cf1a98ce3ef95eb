"""DSPO throughput: denoiser and discriminator training iterations/s and samples/s, at the paper's
shapes and the quick profile's, plus each stage's wall time in a quick-profile run.

    python benchmarks/bench_dspo.py [--threads 1] [--quick-result RUN/result.json]
                                    [--out benchmarks/bench_dspo.md]

Shapes: CarCircle (obs 8, act 2, 300-step episodes). Each number is the median of ``--repeats``
timed blocks after a warm-up; wall and process-CPU seconds are both reported because the machine
may be shared (the load average at the start is recorded). Stage wall times are read from a
quick-profile run's ``result.json`` (``python experiments/dspo.py --profile quick``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dspo_ray.dspo.config import profile_config  # noqa: E402
from dspo_ray.dspo.diffusion import make_diffusion  # noqa: E402
from dspo_ray.dspo.discriminator import make_discriminator  # noqa: E402

OBS_DIM, ACT_DIM, MAX_T = 8, 2, 300


def timed(fn, n: int, repeats: int, warmup: bool = True) -> tuple[float, float]:
    """(median wall s, median CPU s) per call of fn over ``repeats`` blocks of ``n`` calls."""
    if warmup:
        fn()
    walls, cpus = [], []
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        for _ in range(n):
            fn()
        walls.append((time.perf_counter() - w) / n)
        cpus.append((time.process_time() - c) / n)
    return float(np.median(walls)), float(np.median(cpus))


def bench_discriminator(profile: str, device, repeats: int) -> dict:
    cfg = profile_config(profile).discriminator
    model = make_discriminator(cfg, OBS_DIM, ACT_DIM, MAX_T).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate)
    b, w = cfg.batch_size, cfg.window
    obs, act = torch.randn(b, w, OBS_DIM, device=device), torch.randn(b, w, ACT_DIM, device=device)
    steps = torch.arange(w, device=device).repeat(b, 1)
    mask = torch.ones(b, w, dtype=torch.bool, device=device)
    labels = torch.cat([torch.ones(b // 2), torch.zeros(b - b // 2)]).to(device)

    def train_step():
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(obs, act, steps, mask), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
    train_wall, train_cpu = timed(train_step, 3, repeats)
    model.eval()
    sb = 256
    sobs, sact = torch.randn(sb, w, OBS_DIM, device=device), torch.randn(sb, w, ACT_DIM, device=device)
    ssteps, smask = torch.arange(w, device=device).repeat(sb, 1), torch.ones(sb, w, dtype=torch.bool, device=device)

    def score():
        with torch.no_grad():
            model.step_values(sobs, sact, ssteps, smask)
    score_wall, score_cpu = timed(score, 1, repeats)
    return {"params": sum(p.numel() for p in model.parameters()), "batch": b, "window": w,
            "train_it_per_s": 1 / train_wall, "train_cpu_s_per_it": train_cpu,
            "train_windows_per_s": b / train_wall,
            "score_windows_per_s": sb / score_wall, "score_steps_per_s": sb * w / score_wall}


def bench_denoiser(profile: str, device, repeats: int, sample_batch: int) -> dict:
    cfg = profile_config(profile).diffusion
    model = make_diffusion(cfg, OBS_DIM, ACT_DIM).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate)
    x = torch.randn(cfg.batch_size, cfg.horizon, OBS_DIM + ACT_DIM, device=device)
    cond = torch.randn(cfg.batch_size, 2, device=device)

    def train_step():
        loss = model(x, cond)
        opt.zero_grad()
        loss.backward()
        opt.step()
    train_wall, train_cpu = timed(train_step, 3, repeats)
    model.eval()
    scond = torch.randn(sample_batch, 2, device=device)
    # a sampling call is 2 x n_diffusion_steps network passes: no separate warm-up needed
    sample_wall, sample_cpu = timed(lambda: model.sample(scond, cfg.guidance_weight), 1, 1,
                                    warmup=False)
    return {"params": sum(p.numel() for p in model.parameters()), "batch": cfg.batch_size,
            "horizon": cfg.horizon, "denoising_steps": cfg.n_diffusion_steps,
            "train_it_per_s": 1 / train_wall, "train_cpu_s_per_it": train_cpu,
            "sample_batch": sample_batch, "sample_windows_per_s": sample_batch / sample_wall,
            "sample_state_action_pairs_per_s": sample_batch * cfg.horizon / sample_wall,
            "sample_cpu_s_per_window": sample_cpu / sample_batch}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick-result", type=Path, default=None)
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("bench_dspo.md"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    load = os.getloadavg()
    started = datetime.now(timezone.utc)
    rows = {}
    for profile in ("quick", "paper"):
        rows[f"discriminator/{profile}"] = bench_discriminator(profile, device, args.repeats)
        print(profile, "discriminator", rows[f"discriminator/{profile}"], flush=True)
        rows[f"denoiser/{profile}"] = bench_denoiser(profile, device, args.repeats,
                                                    sample_batch=32 if profile == "paper" else 250)
        print(profile, "denoiser", rows[f"denoiser/{profile}"], flush=True)
    stages = {}
    if args.quick_result is not None:
        result = json.loads(args.quick_result.read_text())
        stages = {k: v for k, v in result.items() if k.startswith("time/")}

    cmd = "python " + " ".join([str(Path(sys.argv[0]))] + (argv if argv is not None else sys.argv[1:]))
    lines = [
        "# DSPO benchmark", "",
        f"- command: `{cmd}`",
        f"- date: {started:%Y-%m-%d %H:%M UTC}",
        f"- machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"device {device}, torch {torch.__version__}, {args.threads} torch thread(s)",
        f"- load average at start (1/5/15 min): {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} "
        "(a shared machine: wall numbers are pessimistic; CPU s/it is the contention-robust one)",
        "- shapes: CarCircle, obs 8 + act 2; profiles from dspo_ray/dspo/config.py", "",
        "## Training and sampling throughput", "",
        "| model / profile | params | batch x length | train it/s | train CPU s/it | inference |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        if name.startswith("discriminator"):
            inference = (f"scoring {r['score_windows_per_s']:.0f} windows/s "
                         f"({r['score_steps_per_s']:.0f} steps/s)")
            shape = f"{r['batch']} x {r['window']} steps"
        else:
            inference = (f"sampling {r['sample_windows_per_s']:.2f} windows/s = "
                         f"{r['sample_state_action_pairs_per_s']:.0f} (s,a)/s "
                         f"({r['denoising_steps']} DDPM steps, CFG, batch {r['sample_batch']})")
            shape = f"{r['batch']} x {r['horizon']} steps"
        lines.append(f"| {name} | {r['params']:,} | {shape} | {r['train_it_per_s']:.2f} | "
                     f"{r['train_cpu_s_per_it']:.3f} | {inference} |")
    if stages:
        names = [k[len("time/"):-len("_s")] for k in stages
                 if not k.endswith("_cpu_s") and k != "time/total_s"]
        lines += ["", f"## Stage times, quick profile ({args.quick_result})", "",
                  "| stage | wall s | CPU s (main process) |", "|---|---|---|"]
        for n in names:
            cpu = stages.get(f"time/{n}_cpu_s")
            lines.append(f"| {n} | {stages[f'time/{n}_s']:.1f} | "
                         f"{'' if cpu is None else f'{cpu:.1f}'} |")
        if "time/total_s" in stages:
            lines.append(f"| total | {stages['time/total_s']:.1f} | |")
    lines += ["", "Raw numbers:", "", "```json", json.dumps(rows, indent=1), "```", ""]
    args.out.write_text("\n".join(lines))
    print("written", args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
