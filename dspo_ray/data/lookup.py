"""Where a task's DSRL file is found: a given file or folder, ``$DSRL_DATASET_DIR``, then the
datasets shipped in the repository (unpacked once by dspo_ray.data.shipping).

Its own module, above both the DSRL format (dsrl.py) and the shipped packs (shipping.py), because
the lookup needs both and the pack format needs the DSRL reader.
"""

from __future__ import annotations

import os
from pathlib import Path

from dspo_ray.data import shipping
from dspo_ray.data.dsrl import DatasetError
from dspo_ray.tasks import TaskSpec, get_task

DEFAULT_DATASET_DIR = Path("~/.dsrl/datasets")


def dataset_dir() -> Path:
    return Path(os.environ.get("DSRL_DATASET_DIR", DEFAULT_DATASET_DIR)).expanduser()


def find_dataset(task: str | TaskSpec, directory: str | Path | None = None) -> Path:
    """The task's DSRL file: in ``directory`` if given, else in ``$DSRL_DATASET_DIR``, else shipped.

    With several candidates in a folder, the one with the most trajectories wins (DSRL puts the
    count in the name). A shipped pack (``.pack.xz``, see ``dspo_ray.data.shipping``) is unpacked
    once into ``~/.cache/dspo-ray/datasets``.
    """
    spec = get_task(task)
    # shipping's folders read at call time, so that tests can point them elsewhere
    folders = ([Path(directory).expanduser()] if directory is not None
               else [dataset_dir(), shipping.SHIPPED_DATASET_DIR])
    prefix = spec.dsrl_filename_prefix

    def count(p: Path) -> int:
        tail = p.name[len(prefix):].split(".")[0]
        return int(tail) if tail.isdigit() else -1

    for folder in folders:
        candidates = [p for p in folder.glob(f"{prefix}*")
                      if p.name.endswith((".hdf5", shipping.PACK_SUFFIX))]
        if candidates:
            best = max(candidates, key=lambda p: (count(p), p.suffix == ".hdf5"))
            return best if best.suffix == ".hdf5" else shipping.unpacked(best)
    raise DatasetError(
        f"no dataset for task {spec.name!r} in {' or '.join(map(str, folders))} (looked for "
        f"'{prefix}<count>.hdf5'); put DSRL's file there, point $DSRL_DATASET_DIR at the "
        f"folder that holds it, or make one with 'python experiments/collect.py --task {spec.name}'")
