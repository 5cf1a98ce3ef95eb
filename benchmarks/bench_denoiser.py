"""The denoiser's training speed on this machine at the paper profile's shapes, against the CPU's
own fp32 matmul peak, for each CPU option: torch threads, Adam's fused step, ``torch.compile``,
and bfloat16 (this CPU has avx512_bf16 and AMX): autocast as ``diffusion.autocast: bf16`` does on a
GPU, or oneDNN's bf16 arithmetic behind fp32 tensors (``torch.backends.mkldnn.*.fp32_precision``).

    python benchmarks/bench_denoiser.py [--channels 10 88] [--steps 20]

One training step is what ``train_diffusion`` does per iteration (the loss, backward, gradient
clipping, Adam; EMA every 5th step is left out: a copy of the weights, under 1% here). Each
variant runs in a fresh process, after warm-up steps (compilation included there, timed apart).
The FLOPs of one step are counted by ``torch.utils.flop_counter``; the peak is the best of
large square float32 matmuls on the same thread count. Then, on one thread: where a step's time
goes (torch.profiler), and each of the U-Net's convolution shapes as torch's Conv1d vs im2col +
one matmul (the one rewrite that could move the dominant operator). Writes
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

from dspo_ray.io import write_bytes_atomic

OUT = Path(__file__).parent / "results" / "denoiser_cpu.md"
VARIANTS = {  # name: (threads, fused Adam, compile, bf16: "off" | "autocast" | "onednn")
    "eager, 1 thread": (1, False, False, "off"),
    "eager, 2 threads": (2, False, False, "off"),
    "eager + fused Adam, 2 threads": (2, True, False, "off"),
    "torch.compile + fused Adam, 2 threads": (2, True, True, "off"),
    "bf16 autocast + fused Adam, 2 threads": (2, True, False, "autocast"),
    "oneDNN bf16 arithmetic + fused Adam, 2 threads": (2, True, False, "onednn"),
}


def matmul_gflops(threads: int, dtype: str = "float32") -> float:
    import torch
    torch.set_num_threads(threads)
    a, b = (torch.randn(2048, 2048, dtype=getattr(torch, dtype)) for _ in range(2))
    best = 0.0
    for _ in range(5):
        start = time.perf_counter()
        a @ b
        best = max(best, 2 * 2048 ** 3 / (time.perf_counter() - start) / 1e9)
    return best


def paper_denoiser(channels: int, threads: int, fused: bool = False, compiled: bool = False,
                   bf16: str = "off"):
    """(the model, one training step on a fixed random batch, FLOPs of a step) at the paper
    profile's shapes, seeded. ``bf16="autocast"``: the forward pass under CPU bf16 autocast;
    ``"onednn"``: fp32 tensors, oneDNN's convolutions and matmuls computing in bf16."""
    import contextlib

    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from dspo_ray.dspo.config import profile_config
    from dspo_ray.dspo.diffusion import make_diffusion

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
    if bf16 == "onednn":
        torch.backends.mkldnn.conv.fp32_precision = "bf16"
        torch.backends.mkldnn.matmul.fp32_precision = "bf16"
    precision = (torch.autocast("cpu", dtype=torch.bfloat16) if bf16 == "autocast"
                 else contextlib.nullcontext())

    def step() -> None:
        with precision:
            loss = model(x, condition)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()

    return model, step, counter.get_total_flops()


def measure(channels: int, variant: str, steps: int) -> dict:
    from dspo_ray.dspo.config import profile_config

    threads, fused, compiled, bf16 = VARIANTS[variant]
    cfg = profile_config("paper").diffusion
    model, step, flops = paper_denoiser(channels, threads, fused, compiled, bf16)
    start = time.perf_counter()
    for _ in range(3):
        step()
    warmup_s = time.perf_counter() - start
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    wall = (time.perf_counter() - start) / steps
    return {"s_per_step": wall, "cpu_s_per_step": (time.process_time() - cpu) / steps,
            "windows_per_s": cfg.batch_size / wall, "gflop_per_step": flops / 1e9,
            "warmup_s": warmup_s, "peak_gflops": matmul_gflops(threads), "threads": threads,
            "batch": cfg.batch_size, "horizon": cfg.horizon,
            "params": sum(p.numel() for p in model.parameters())}


def profile_ops(channels: int, steps: int = 10) -> list[str]:
    """Where one thread's training step goes: torch.profiler's top operators by self time."""
    from torch.profiler import profile

    _, step, _ = paper_denoiser(channels, threads=1)
    for _ in range(3):
        step()
    with profile() as prof:
        for _ in range(steps):
            step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in events)
    return [f"| {e.key} | {e.self_cpu_time_total / total:.1%} | {e.count // steps} |"
            for e in events[:8]]


def conv_as_matmul(threads: int = 1) -> list[str]:
    """Each Conv1d shape of the U-Net (forward + backward, batch 64): torch's (oneDNN) kernel vs
    the same convolution written as im2col + one matmul (equal to 1e-5)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    torch.manual_seed(0)

    def im2col_conv(x, weight, bias):
        b, c, length = x.shape
        out_c, _, k = weight.shape
        cols = F.pad(x, (k // 2, k // 2)).unfold(2, k, 1).permute(0, 2, 1, 3).reshape(b * length, c * k)
        return torch.addmm(bias, cols, weight.view(out_c, c * k).t()).view(b, length, out_c).transpose(1, 2)

    def per_call_ms(fn, n=20):
        for _ in range(3):
            fn()
        start = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - start) / n * 1000

    rows, totals = [], np.zeros(4)
    # (in, out, length): the U-Net's kernel-5 convolutions at horizon 32, dim 64, mults 1-2-4-8
    for c_in, c_out, length in [(10, 64, 32), (64, 64, 32), (64, 128, 16), (128, 128, 16),
                                (128, 256, 8), (256, 256, 8), (256, 512, 4), (512, 512, 4),
                                (1024, 256, 8), (512, 128, 16)]:
        times = []
        for dtype in (torch.float32, torch.bfloat16):
            x = torch.randn(64, c_in, length, dtype=dtype, requires_grad=True)
            conv = torch.nn.Conv1d(c_in, c_out, 5, padding=2).to(dtype)
            grad = torch.randn(64, c_out, length, dtype=dtype)
            if dtype == torch.float32:
                assert torch.allclose(conv(x), im2col_conv(x, conv.weight, conv.bias), atol=1e-5)

            def native():
                x.grad = None
                conv.zero_grad()
                conv(x).backward(grad)

            def matmul():
                x.grad = None
                conv.zero_grad()
                im2col_conv(x, conv.weight, conv.bias).backward(grad)

            times += [per_call_ms(native), per_call_ms(matmul)]
        totals += times
        rows.append(f"| {c_in} -> {c_out}, length {length} | "
                    + " | ".join(f"{t:.2f}" for t in times) + f" | {times[0] / min(times):.2f}x |")
    rows.append("| all ten shapes | " + " | ".join(f"{t:.1f}" for t in totals)
                + f" | {totals[0] / totals.min():.2f}x |")
    return rows


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
    ops = profile_ops(args.channels[0])
    convs = conv_as_matmul()
    fp32_peak = {t: matmul_gflops(t) for t in (1, 2)}
    bf16_peak = {t: matmul_gflops(t, "bfloat16") for t in (1, 2)}
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
        "- peak: the best of 5 float32 2048x2048 matmuls on the same threads; the same in "
        f"bfloat16: {bf16_peak[1]:.0f} GFLOP/s on 1 thread, {bf16_peak[2]:.0f} on 2 "
        f"(float32: {fp32_peak[1]:.0f}, {fp32_peak[2]:.0f})",
        "",
        "| batch x horizon x channels | variant | ms/step | CPU ms/step | windows/s | GFLOP/s "
        "| matmul peak GFLOP/s | share of peak | warm-up s |",
        "|---|---|---|---|---|---|---|---|---|",
        *rows, "",
        f"## Where a step goes (1 thread, {args.channels[0]} channels, torch.profiler self time)",
        "",
        "| operator | share of the step | calls per step |",
        "|---|---|---|",
        *ops, "",
        "## A convolution as im2col + matmul instead of torch's kernel, fp32 and bf16 tensors "
        "(1 thread, forward + backward, batch 64)",
        "",
        "| shape | torch Conv1d ms | im2col + matmul ms | bf16 Conv1d ms | bf16 im2col + matmul ms "
        "| best over fp32 Conv1d |",
        "|---|---|---|---|---|---|",
        *convs, "",
    ])
    OUT.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(OUT, text.encode())
    print(f"written to {OUT}")


if __name__ == "__main__":
    main()
