"""Where a task's DSRL file is found: a given file or folder, ``$DSRL_DATASET_DIR``, the
datasets shipped in the repository (unpacked once by dspo_ray.data.shipping), then the ones built
on this machine from their recipe (``dspo-collect --build``, dspo_ray.data.recipes).

Its own module, above the DSRL format (dsrl.py), the shipped packs (shipping.py) and the recipes
(recipes.py), because the lookup needs them all and the pack format needs the DSRL reader.
"""

from __future__ import annotations

import os
from pathlib import Path

from dspo_ray.data import recipes, shipping
from dspo_ray.data.dsrl import DatasetError
from dspo_ray.tasks import TaskSpec, get_task

DEFAULT_DATASET_DIR = Path("~/.dsrl/datasets")


def dataset_dir() -> Path:
    return Path(os.environ.get("DSRL_DATASET_DIR", DEFAULT_DATASET_DIR)).expanduser()


def find_dataset(task: str | TaskSpec, directory: str | Path | None = None) -> Path:
    """The task's DSRL file: in ``directory`` if given, else in ``$DSRL_DATASET_DIR``, else shipped,
    else built from its recipe (a user's own file always wins).

    With several candidates in a folder, the one with the most trajectories wins (DSRL puts the
    count in the name). A shipped pack (``.pack.xz``, see ``dspo_ray.data.shipping``) is unpacked
    once into ``~/.cache/dspo-ray/datasets``; a built file (``dspo_ray.data.recipes``) counts once
    its build finished (its JSON sidecar, written last, is there).
    """
    spec = get_task(task)
    # shipping's folders read at call time, so that tests can point them elsewhere
    built = recipes.built_dataset_dir(spec)
    folders = ([Path(directory).expanduser()] if directory is not None
               else [dataset_dir(), shipping.SHIPPED_DATASET_DIR, built])
    prefix = spec.dsrl_filename_prefix

    def count(p: Path) -> int:
        tail = p.name[len(prefix):].split(".")[0]
        return int(tail) if tail.isdigit() else -1

    for folder in folders:
        candidates = [p for p in folder.glob(f"{prefix}*")
                      if p.name.endswith((".hdf5", shipping.PACK_SUFFIX))
                      and (folder != built or recipes.is_complete(p))]
        if candidates:
            best = max(candidates, key=lambda p: (count(p), p.suffix == ".hdf5"))
            return best if best.suffix == ".hdf5" else shipping.unpacked(best)
    where = (f"no dataset for task {spec.name!r} in {' or '.join(map(str, folders))} (looked for "
             f"'{prefix}<count>.hdf5')")
    hint = recipes.build_hint(spec) if directory is None else None  # a build lands in `built`
    if hint is not None:
        raise DatasetError(f"{where}; build it with {hint}, or point $DSRL_DATASET_DIR at a "
                           "folder that holds DSRL's file")
    raise DatasetError(
        f"{where}; put DSRL's file there, point $DSRL_DATASET_DIR at the "
        f"folder that holds it, or make one with 'python experiments/collect.py --task {spec.name}'")


def missing_buildable(tasks, directory: str | Path | None = None) -> list[str]:
    """The tasks, of ``tasks``, that have no dataset here but a recipe to build one
    (``dspo-collect --build``); none when ``directory`` is given, as a build lands elsewhere."""
    if directory is not None:
        return []
    missing = []
    for task in dict.fromkeys(get_task(t).name for t in tasks):
        if task in recipes.RECIPES:
            try:
                find_dataset(task)
            except DatasetError:
                missing.append(task)
    return missing
