"""Does pinning Intel MKL's code path (``MKL_CBWR``) cost speed, and does it change results?

The same code and seed give other digits on other machines: MKL picks its kernels by CPU, and
forcing one path changed BC-Safe's CarCircle seed-0 cost from 0.41 to 0.33
(``docs/results/table1/five_seeds/README.md``). This trains and evaluates one run per setting
(``experiments/train.py``, one thread) and writes, per setting: the CPU seconds of the whole run
(the child's user + system time, fair beside other jobs since it counts only this process's
work), the training's wall seconds, the last BC loss and the evaluation::

    python benchmarks/mkl_cbwr.py --out benchmarks/results/mkl_cbwr.md

It reads the simulator's evaluation: a measurement, never a choice.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from dspo_ray.io import write_bytes_atomic
from dspo_ray.provenance import cpu_model

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = ["unset", "AVX2", "AVX512", "COMPATIBLE"]


def run_once(setting: str, args: argparse.Namespace, out: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "MKL_CBWR"}
    if setting != "unset":
        env["MKL_CBWR"] = setting
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, str(ROOT / "experiments/train.py"), "--method", args.method,
               "--task", args.task, "--seed", str(args.seed), "--steps", str(args.steps),
               "--eval-episodes", str(args.eval_episodes), "--eval-workers", "1", "--threads", "1",
               "--out", str(out)]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(command, env=env, check=True, capture_output=True, text=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = json.loads((out / "result.json").read_text())
    return {"setting": setting,
            "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
            "train_s": result["time/train_s"], "loss": result.get("losses/bc", float("nan")),
            "reward": result["eval/normalized_reward"], "cost": result["eval/normalized_cost"],
            "kernels": result.get("machine/cpu_capability", "?")}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", default="bc_safe")
    p.add_argument("--task", default="CarCircle")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--eval-episodes", type=int, default=20)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for setting in SETTINGS:
                row = run_once(setting, args, Path(tmp) / f"{setting}-{repeat}")
                rows.append(row)
                print(f"{setting:10s} repeat {repeat}: {row['cpu_s']:.1f} CPU s, reward "
                      f"{row['reward']:.4f}, cost {row['cost']:.4f}", flush=True)
    lines = [
        f"# MKL_CBWR: speed and results ({args.method} on {args.task}, seed {args.seed}, "
        f"{args.steps} steps, {args.eval_episodes} evaluation episodes, one thread)", "",
        f"Command: `python benchmarks/mkl_cbwr.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        f"Machine: {cpu_model()} ({os.cpu_count()} CPUs), torch kernels {rows[0]['kernels']}; "
        f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC; load average at the end "
        f"{os.getloadavg()[0]:.1f} (CPU seconds count this run's own work only).", "",
        "| MKL_CBWR | repeat | CPU s (whole run) | training wall s | last BC loss | reward | cost |",
        "|---|---|---|---|---|---|---|"]
    for i, row in enumerate(rows):
        lines.append(f"| {row['setting']} | {i // len(SETTINGS)} | {row['cpu_s']:.1f} | "
                     f"{row['train_s']:.1f} | {row['loss']:.9f} | {row['reward']:.4f} | {row['cost']:.4f} |")
    write_bytes_atomic(args.out, ("\n".join(lines) + "\n").encode())
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
