#!/usr/bin/env python
"""Size and speed of the shipped dataset packs (dspo_ray/data/shipping.py) against plain xz.

    python benchmarks/bench_dataset_packing.py [--task CarCircle SwimmerVel ...]

For every task with a shipped dataset (or those given): the DSRL file's size uncompressed, xz over
the whole file (how the repository shipped data before packs), the ``columns`` pack and, for a
task whose simulator can be replayed, the ``replay`` pack, each with the time to make and to
unpack it. Writes benchmarks/results/dataset_packing.md.
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from dspo_ray.data import find_dataset
    from dspo_ray.data.collect import collection_reset_seeds
    from dspo_ray.data.shipping import PACK_SUFFIX, SHIPPED_DATASET_DIR
    from dspo_ray.data.shipping import can_replay, pack_dataset, unpack_columns
    from dspo_ray.tasks import TASKS

    shipped = [t for t, s in TASKS.items()
               if list(SHIPPED_DATASET_DIR.glob(f"{s.dsrl_filename_prefix}*{PACK_SUFFIX}"))]
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", nargs="+", default=shipped, choices=list(TASKS))
    args = p.parse_args()

    rows = ["| task | rows (steps) | HDF5 MB | xz MB | columns MB (pack s / unpack s) "
            "| replay MB (pack s / unpack s) |", "|---|---|---|---|---|---|"]
    for task in args.task:
        path = find_dataset(task)
        sidecar = path.with_suffix(".json")
        if not sidecar.exists():
            sidecar = SHIPPED_DATASET_DIR / sidecar.name
        with tempfile.TemporaryDirectory() as tmp:
            xz = len(lzma.compress(path.read_bytes(), preset=9 | lzma.PRESET_EXTREME))
            cells = []
            codecs = [None] + ([collection_reset_seeds(json.loads(sidecar.read_text()))]
                               if can_replay(task) and sidecar.exists() else [])
            for k, seeds in enumerate(codecs):
                started = time.perf_counter()
                pack = pack_dataset(path, task, Path(tmp) / str(k), reset_seeds=seeds)
                made = time.perf_counter() - started
                started = time.perf_counter()
                meta, _ = unpack_columns(pack)
                cells.append(f"{pack.stat().st_size / 1e6:.2f} ({made:.0f} / "
                             f"{time.perf_counter() - started:.0f})")
            cells += ["-"] * (2 - len(cells))
        rows.append(f"| {task} | {meta['rows']} | {path.stat().st_size / 1e6:.1f} "
                    f"| {xz / 1e6:.2f} | {cells[0]} | {cells[1]} |")
        print(rows[-1], flush=True)
    text = "\n".join([
        "# Dataset packs vs plain xz",
        "",
        f"Command: `python benchmarks/bench_dataset_packing.py --task {' '.join(args.task)}`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}  ",
        f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; 1-minute load at the end "
        f"{os.getloadavg()[0]:.1f} (times are wall seconds, one process)",
        "",
        "Pack time includes unpacking once to verify; every pack rebuilds every column bit for bit "
        "(checked against SHA-256s).",
        "",
        *rows, ""])
    out = ROOT / "benchmarks" / "results" / "dataset_packing.md"
    out.write_text(text)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
