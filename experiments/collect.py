#!/usr/bin/env python
"""Collect a task's dataset in the DSRL format with our own online agent (no download).

    python experiments/collect.py --task CarCircle                 # -> runs/datasets/<file>.hdf5
    python experiments/collect.py --task CarCircle --ship          # ... and datasets/<file>.hdf5.xz
    python experiments/collect.py --task DroneRun --episodes 300 --keep 200 --out /tmp/d

A PPO agent with a PID Lagrange multiplier plays ``--episodes`` episodes while its cost limit moves
from DSRL's max cost down to half the paper's limit; every episode is recorded, those above DSRL's
max cost are dropped, and a (cost, reward) grid filter keeps ``--keep`` of them
(see dspo_ray/data/collect.py). A JSON sidecar records the config and the data's statistics.
Point $DSRL_DATASET_DIR at --out, or use --ship to replace the repository's shipped file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv=None) -> int:
    from dspo_ray.tasks import TASKS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", choices=list(TASKS), help="the task to collect (required unless --table)")
    p.add_argument("--table", action="store_true",
                   help="print the markdown table of the shipped datasets (from their sidecars) and exit")
    p.add_argument("--episodes", type=int, default=2000, help="training episodes to play and record")
    p.add_argument("--keep", type=int, default=None,
                   help="trajectories in the file (default: 1.25 x Table 3's N_safe + N_unlabelled)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-envs", type=int, default=8)
    p.add_argument("--cost-limit-start", type=float, default=None)
    p.add_argument("--cost-limit-end", type=float, default=None)
    p.add_argument("--lr", type=float, default=None, help="PPO learning rate (default: CollectConfig's)")
    p.add_argument("--out", default=str(ROOT / "runs" / "datasets"))
    p.add_argument("--ship", action="store_true",
                   help="also xz-compress the file into datasets/, replacing that task's shipped file")
    args = p.parse_args(argv)
    if args.table:
        print(shipped_table())
        return 0
    if args.task is None:
        p.error("--task is required")

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch
    torch.set_num_threads(1)
    from dspo_ray.data import compress_for_shipping
    from dspo_ray.data.collect import CollectConfig, collect
    from dspo_ray.data.dsrl import SHIPPED_DATASET_DIR

    cfg = CollectConfig(task=args.task, episodes=args.episodes, keep=args.keep, seed=args.seed,
                        n_envs=args.n_envs, cost_limit_start=args.cost_limit_start,
                        cost_limit_end=args.cost_limit_end,
                        **({"lr": args.lr} if args.lr is not None else {}))
    result = collect(cfg, args.out, log=lambda m: print(m, flush=True))
    print(json.dumps({k: v for k, v in result.to_dict().items() if k != "config"}, indent=1))
    if args.ship:
        prefix = result.path.name.rsplit("-", 1)[0] + "-"
        for old in SHIPPED_DATASET_DIR.glob(f"{prefix}*"):
            old.unlink()  # one shipped file (and sidecar) per task: find_dataset takes the biggest count
        shipped = compress_for_shipping(result.path)
        (SHIPPED_DATASET_DIR / result.path.with_suffix(".json").name).write_text(
            result.path.with_suffix(".json").read_text())
        print(f"shipped {shipped} ({shipped.stat().st_size / 1e6:.1f} MB)")
    return 0


def shipped_table() -> str:
    """One row per shipped dataset, every figure read from its JSON sidecar (see DATASETS.md)."""
    from dspo_ray.data.dsrl import SHIPPED_DATASET_DIR
    from dspo_ray.evaluation import normalized_reward
    from dspo_ray.tasks import TASKS

    rows = ["| task | file | trajectories (steps) | safe (cost <= limit) | cost return min / median / max "
            "| reward return min / median / max | best safe reward (normalised) | training episodes "
            "| xz MB |", "|" + "---|" * 9]
    for spec in TASKS.values():
        for sidecar in sorted(SHIPPED_DATASET_DIR.glob(f"{spec.dsrl_filename_prefix}*.json")):
            d = json.loads(sidecar.read_text())
            k = d["stats"]["kept"]
            c, r = k["cost_return_quantiles"], k["reward_return_quantiles"]
            best = k["best_safe_reward_return"]
            xz = sidecar.with_suffix(".hdf5.xz")
            rows.append(
                f"| {spec.name} | `{xz.name}` | {k['trajectories']} ({k['transitions']}) "
                f"| {k['safe']} (<= {spec.cost_limit:g}) | {c[0]:g} / {c[2]:g} / {c[4]:g} "
                f"| {r[0]:.1f} / {r[2]:.1f} / {r[4]:.1f} "
                f"| {best:.1f} ({normalized_reward(spec, best):.2f}) | {d['recorded']} "
                f"| {xz.stat().st_size / 1e6:.1f} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
