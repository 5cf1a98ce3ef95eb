"""The denoiser's training speed on this machine at the paper profile's shapes, against the CPU's
own fp32 matmul peak, for each CPU option: torch threads, Adam's fused step, ``torch.compile``.

    python benchmarks/bench_denoiser.py [--channels 10 88] [--steps 20]

One training step is what ``train_diffusion`` does per iteration (the loss, backward, gradient
clipping, Adam; EMA every 5th step is left out: a copy of the weights, under 1% here). Each
variant runs in a fresh process, after warm-up steps (compilation included there, timed apart).
The FLOPs of one step are counted by ``torch.utils.flop_counter``; the peak is the best of
large square float32 matmuls on the same thread count. Writes
benchmarks/results/denoiser_cpu.md (command, machine, date, load).
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

OUT = Path(__file__).parent / "results" / "denoiser_cpu.md"
VARIANTS = {  # name: (threads, fused Adam, compile)
    "eager, 1 thread": (1, False, False),
    "eager, 2 threads": (2, False, False),
    "eager + fused Adam, 2 threads": (2, True, False),
    "torch.compile + fused Adam, 2 threads": (2, True, True),
}


def matmul_gflops(threads: int) -> float:
    import torch
    torch.set_num_threads(threads)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    best = 0.0
    for _ in range(5):
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * 2048 ** 3 / (time.perf_counter() - start) / 1e9)
    return best


def measure(channels: int, variant: str, steps: int) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from dspo_ray.dspo.config import profile_config
    from dspo_ray.dspo.diffusion import make_diffusion

    threads, fused, compiled = VARIANTS[variant]
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    cfg = profile_config("paper").diffusion
    model = make_diffusion(cfg, channels - 2, 2)
    x = torch.randn(cfg.batch_size, cfg.horizon, channels)
    condition = torch.randn(cfg.batch_size, 2)
    with FlopCounterMode(display=False) as counter:
        model(x, condition).backward()
    model.zero_grad(set_to_none=True)
    if compiled:
        model.unet.compile()
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, fused=fused or None)

    def step() -> None:
        loss = model(x, condition)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()

    start = time.perf_counter()
    for _ in range(3):
        step()
    warmup_s = time.perf_counter() - start
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    wall = (time.perf_counter() - start) / steps
    return {"s_per_step": wall, "cpu_s_per_step": (time.process_time() - cpu) / steps,
            "windows_per_s": cfg.batch_size / wall, "gflop_per_step": counter.get_total_flops() / 1e9,
            "warmup_s": warmup_s, "peak_gflops": matmul_gflops(threads), "threads": threads,
            "batch": cfg.batch_size, "horizon": cfg.horizon,
            "params": sum(p.numel() for p in model.parameters())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--channels", type=int, nargs="+", default=[10, 88],
                        help="state + action dimensions (10: CarCircle, 88: AntRun)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(int(args.one[0]), args.one[1], args.steps)))
        return
    import torch

    load_start = os.getloadavg()
    rows = []
    for channels in args.channels:
        for variant in args.variants:
            out = subprocess.run([sys.executable, __file__, "--steps", str(args.steps),
                                  "--one", str(channels), variant],
                                 capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            achieved = r["gflop_per_step"] / r["s_per_step"]
            rows.append(f"| {r['batch']} x {r['horizon']} x {channels} | {variant} | "
                        f"{r['s_per_step'] * 1000:.0f} | {r['cpu_s_per_step'] * 1000:.0f} | "
                        f"{r['windows_per_s']:.0f} | {achieved:.0f} | {r['peak_gflops']:.0f} | "
                        f"{achieved / r['peak_gflops']:.0%} | {r['warmup_s']:.1f} |")
            print(rows[-1], flush=True)
    text = "\n".join([
        "# The denoiser's CPU training speed (paper profile shapes)",
        "",
        f"- command: `python {' '.join(sys.argv)}`",
        f"- machine: {platform.node()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, torch {torch.__version__}",
        f"- date: {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; load average at the "
        f"start {load_start[0]:.2f}, at the end {os.getloadavg()[0]:.2f}",
        f"- model: the paper profile's TemporalUnet (dim 64, mults 1-2-4-8, attention), "
        f"{r['params'] / 1e6:.1f} M parameters, {r['gflop_per_step']:.1f} GFLOP per training "
        f"step (forward + backward, flop_counter); {args.steps} timed steps after 3 warm-up ones",
        "- peak: the best of 5 float32 2048x2048 matmuls on the same threads",
        "",
        "| batch x horizon x channels | variant | ms/step | CPU ms/step | windows/s | GFLOP/s "
        "| matmul peak GFLOP/s | share of peak | warm-up s |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows, "",
    ])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    tmp = OUT.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(OUT)
    print(f"written to {OUT}")


if __name__ == "__main__":
    main()
