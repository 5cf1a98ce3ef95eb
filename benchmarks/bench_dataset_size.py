#!/usr/bin/env python
"""How big would a shipped velocity-task dataset be? (the 40 MB budget of datasets/)

    python benchmarks/bench_dataset_size.py [--task SwimmerVel] [--episodes 20]

Records ``--episodes`` full episodes with smoothed random actions (PPO's data compresses about the
same: the simulator's states dominate), writes them as an uncompressed DSRL file, xz-compresses it
like ``compress_for_shipping`` and extrapolates to Table 3's split (N_safe + N_unlabelled) and to
1.02x that. Also measures a lossy option: the low mantissa bits of every float32 zeroed before xz.
Writes benchmarks/dataset_size_<task>.txt.
"""

from __future__ import annotations

import argparse
import lzma
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--task", default="SwimmerVel")
    p.add_argument("--episodes", type=int, default=20)
    args = p.parse_args()
    import h5py
    import torch

    torch.set_num_threads(1)
    from dspo_ray.data.dsrl import write_dsrl
    from dspo_ray.data.rollout import record_episode
    from dspo_ray.envs import make_env
    from dspo_ray.tasks import get_task

    spec = get_task(args.task)
    env = make_env(spec, seed=0)
    rng = np.random.default_rng(0)
    started, trajs = time.time(), []
    for k in range(args.episodes):
        state = {"a": np.zeros(spec.act_dim)}

        def act(obs):
            state["a"] = 0.8 * state["a"] + 0.6 * rng.uniform(-1, 1, spec.act_dim)
            return np.clip(state["a"], -1, 1)

        trajs.append(record_episode(env, act, seed=k, max_steps=spec.max_episode_steps))
    steps = sum(len(t) for t in trajs)
    record_s = time.time() - started
    need = spec.n_safe + spec.n_unlabelled
    lines = [f"# bench_dataset_size.py: shipped size of a {spec.name} dataset",
             f"command: python benchmarks/bench_dataset_size.py --task {args.task} --episodes {args.episodes}",
             f"date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
             f"machine: {platform.platform()}, {os.cpu_count()} CPUs; 1-minute load {os.getloadavg()[0]:.1f}",
             f"{args.episodes} episodes, {steps} steps (obs {spec.obs_dim}, act {spec.act_dim}), "
             f"smoothed random actions, recorded in {record_s:.1f} s ({steps / record_s:.0f} steps/s)",
             f"Table 3 split: {spec.n_safe} safe + {spec.n_unlabelled} unlabelled = {need} trajectories", ""]
    with tempfile.TemporaryDirectory() as tmp:
        path = write_dsrl(Path(tmp) / "d.hdf5", trajs, compression=None)
        raw = path.read_bytes()
        lines.append(f"uncompressed DSRL file: {len(raw) / 1e6:.2f} MB "
                     f"({len(raw) / args.episodes / 1e3:.1f} kB per trajectory)")
        with h5py.File(path) as f:
            columns = {k: f[k][()] for k in f}
    lines.append("mantissa bits zeroed | xz kB per trajectory | xz MB for "
                 f"{need} | xz MB for {int(need * 1.02)}")
    for bits in (0, 8, 12):
        if bits == 0:
            data = raw  # the file itself, as compress_for_shipping does
        else:
            mask = np.uint32((0xFFFFFFFF << bits) & 0xFFFFFFFF)
            data = b"".join((v.view(np.uint32) & mask).view(np.float32).tobytes()
                            if v.dtype == np.float32 else v.tobytes() for v in columns.values())
        per = len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)) / args.episodes
        lines.append(f"{bits:>20} | {per / 1e3:>20.1f} | {per * need / 1e6:>10.1f} "
                     f"| {per * int(need * 1.02) / 1e6:>10.1f}")
    text = "\n".join(lines) + "\n"
    print(text)
    (ROOT / "benchmarks" / f"dataset_size_{spec.name}.txt").write_text(text)


if __name__ == "__main__":
    main()
