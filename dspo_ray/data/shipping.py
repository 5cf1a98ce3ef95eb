"""The datasets shipped in the repository: a lossless pack, several times smaller than the HDF5 file.

A pack ``<DSRL file stem>.pack.xz`` is an xz-compressed numpy ``.npz`` (read with
``allow_pickle=False``) that rebuilds, bit for bit, the validated columns of a DSRL file (what
``read_dsrl`` returns: float32 / bool, 1-D rewards, costs and flags). ``find_dataset``
(dspo_ray.data.lookup) unpacks it once into ``~/.cache/dspo-ray/datasets`` (:func:`unpacked`) as an
ordinary DSRL file. Two encodings, both checked
against a SHA-256 of every column at pack time and again at every unpack:

- ``columns`` (any task): every column stored, each byte-shuffled (the k-th bytes of all values
  together: xz then sees the slowly varying sign/exponent bytes apart from the noisy low mantissa
  bytes), and ``next_observations`` only on episode-end rows (elsewhere it is the next row's
  observation).
- ``replay`` (Safety-Gymnasium velocity tasks): the simulator is MuJoCo, whose step is a
  deterministic function of its state and the action, so a pack keeps only the actions, the episode
  ends and each episode's initial MuJoCo state; unpacking re-runs the simulator. Observations are
  the bulk of a dataset and their low mantissa bits are incompressible noise, so this is what lets
  a 1000-step task fit the repository's 40 MB at all (SwimmerVel: 83 MB of HDF5, 32 MB as
  ``columns``, 5 MB as ``replay``). A simulator build that steps differently (another MuJoCo
  version or CPU architecture) fails the checksum and gets an error naming the fix.
"""

from __future__ import annotations

import hashlib
import io
import json
import lzma
import os
from pathlib import Path
from typing import Iterable

import h5py
import numpy as np

from dspo_ray.data.dsrl import REQUIRED_KEYS, DatasetError, read_dsrl
from dspo_ray.io import atomic_path
from dspo_ray.tasks import TaskSpec, get_task

FORMAT_VERSION = 1
PACK_SUFFIX = ".pack.xz"
# Datasets collected by this project and shipped in the repository as packs, and where they are
# unpacked (once) as ordinary DSRL files.
SHIPPED_DATASET_DIR = Path(__file__).resolve().parents[2] / "datasets"
SHIPPED_CACHE_DIR = Path(os.environ.get("DSPO_CACHE_DIR", "~/.cache/dspo-ray")).expanduser() / "datasets"
_DTYPES = {k: (np.bool_ if k in ("terminals", "timeouts") else np.float32) for k in REQUIRED_KEYS}
_REPLAYED = ("observations", "next_observations", "rewards", "costs")


def can_replay(task: str | TaskSpec) -> bool:
    """Whether the task's simulator is deterministic MuJoCo (the Safety-Gymnasium velocity tasks)."""
    spec = get_task(task)
    return spec.suite == "SafetyGym" and "Velocity" in spec.env_id


def _sha256(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _shuffle(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    return a.view(np.uint8).reshape(len(a), -1, a.dtype.itemsize).transpose(2, 1, 0).copy()


def _unshuffle(b: np.ndarray, dtype, shape) -> np.ndarray:
    return np.ascontiguousarray(b.transpose(2, 1, 0)).view(dtype).reshape(shape)


def pack_dataset(path: str | Path, task: str | TaskSpec, out_dir: str | Path,
                 reset_seeds: Iterable[int] | None = None) -> Path:
    """Pack a DSRL file into ``out_dir/<stem>.pack.xz``; returns the pack's path.

    ``reset_seeds``: for a task that :func:`can_replay`, the seeds its episodes may have been
    reset with (a collection's, see ``dspo_ray.data.collect.episode_reset_seeds``); each episode's
    initial state is found by matching its first observation, and the pack uses ``replay``.
    Without them, ``columns``. The pack is unpacked and verified before it is renamed into place.
    """
    path, spec = Path(path), get_task(task)
    data = read_dsrl(path, spec)
    ends = np.flatnonzero(data["terminals"] | data["timeouts"])
    meta = {"format": FORMAT_VERSION, "task": spec.name, "env_id": spec.env_id,
            "file": path.name, "rows": len(data["rewards"]),
            "shapes": {k: list(v.shape) for k, v in data.items()},
            "sha256": {k: _sha256(v) for k, v in data.items()}}
    arrays: dict[str, np.ndarray] = {}
    if reset_seeds is not None:
        if not can_replay(spec):
            raise ValueError(f"{spec.name}: its simulator cannot be replayed; pack it without reset seeds")
        meta["codec"] = "replay"
        arrays["initial_states"] = _initial_states(spec, data, ends, reset_seeds)
        stored = [k for k in REQUIRED_KEYS if k not in _REPLAYED]
    else:
        meta["codec"] = "columns"
        stored = [k for k in REQUIRED_KEYS if k != "next_observations"]
        arrays["next_observations_at_ends"] = _shuffle(data["next_observations"][ends])
    for k in stored:
        arrays[k] = _shuffle(data[k])
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)

    out = Path(out_dir) / f"{path.name[:-len('.hdf5')]}{PACK_SUFFIX}"
    with atomic_path(out) as tmp:
        tmp.write_bytes(lzma.compress(buffer.getvalue(), preset=9 | lzma.PRESET_EXTREME))
        unpack_columns(tmp)  # raises if the pack does not rebuild the file exactly
    return out


def unpack_columns(pack: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The pack's metadata and the DSRL columns it rebuilds, verified against its checksums."""
    pack = Path(pack)
    try:
        with np.load(io.BytesIO(lzma.decompress(pack.read_bytes())), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        meta = json.loads(arrays.pop("meta").tobytes())
    except (OSError, lzma.LZMAError, ValueError, KeyError) as e:
        raise DatasetError(f"{pack}: not a readable dataset pack ({e}); restore it with "
                           f"'git checkout -- {pack.name}' or re-collect the task") from e
    if meta.get("format") != FORMAT_VERSION:
        raise DatasetError(f"{pack}: pack format {meta.get('format')}, this version reads "
                           f"{FORMAT_VERSION}; update dspo-ray or re-pack the file")
    if meta.get("codec") not in ("columns", "replay"):
        raise DatasetError(f"{pack}: unknown pack encoding {meta.get('codec')!r}; update dspo-ray")
    spec = get_task(meta["task"])
    shapes = {k: tuple(v) for k, v in meta["shapes"].items()}
    data = {k: _unshuffle(arrays[k], _DTYPES[k], shapes[k]) for k in REQUIRED_KEYS if k in arrays}
    ends = np.flatnonzero(data["terminals"] | data["timeouts"])
    if meta["codec"] == "columns":
        next_obs = np.empty(shapes["next_observations"], np.float32)
        next_obs[:-1] = data["observations"][1:]
        next_obs[ends] = _unshuffle(arrays["next_observations_at_ends"], np.float32,
                                    (len(ends), spec.obs_dim))
        data["next_observations"] = next_obs
    else:
        data.update(_replay(spec, data["actions"], ends, arrays["initial_states"]))
    wrong = [k for k in REQUIRED_KEYS if _sha256(data[k]) != meta["sha256"][k]]
    if wrong:
        fix = (f"this simulator build steps differently from the one that made it; re-collect "
               f"with 'python experiments/collect.py --task {spec.name}' (see datasets/DATASETS.md)"
               if meta["codec"] == "replay" else "the file is damaged; restore it from git")
        raise DatasetError(f"{pack}: rebuilt column(s) {wrong} do not match the pack's checksums: {fix}")
    return meta, data


def unpack_dataset(pack: str | Path, target: str | Path) -> Path:
    """Rebuild the DSRL file at ``target`` (atomically: a temporary name, then a rename)."""
    _, data = unpack_columns(pack)
    with atomic_path(target) as tmp, h5py.File(tmp, "w") as f:
        for k in REQUIRED_KEYS:
            f.create_dataset(k, data=data[k])
    return Path(target)


def unpacked(pack: Path) -> Path:
    """A shipped pack's DSRL file in the cache, rebuilt when the pack is newer than it."""
    target = SHIPPED_CACHE_DIR / (pack.name[: -len(PACK_SUFFIX)] + ".hdf5")
    if target.exists() and target.stat().st_mtime >= pack.stat().st_mtime:
        return target
    return unpack_dataset(pack, target)


# ---------------------------------------------------------------------------------- replay

def _initial_states(spec: TaskSpec, data: dict[str, np.ndarray], ends: np.ndarray,
                    reset_seeds: Iterable[int]) -> np.ndarray:
    from dspo_ray.envs import make_env, simulator_state

    starts = np.concatenate([[0], ends[:-1] + 1])
    waiting: dict[bytes, list[int]] = {}
    for i, s in enumerate(starts):
        waiting.setdefault(data["observations"][s].tobytes(), []).append(i)
    states: list[np.ndarray | None] = [None] * len(starts)
    env = make_env(spec, seed=0)
    try:
        for seed in reset_seeds:
            obs, _ = env.reset(seed=int(seed))
            for i in waiting.pop(obs.tobytes(), []):
                states[i] = simulator_state(env)
            if not waiting:
                break
    finally:
        env.close()
    if waiting:
        missing = sorted(i for group in waiting.values() for i in group)
        raise ValueError(f"{spec.name}: {len(missing)} episode(s) (first: {missing[:5]}) start in no "
                         "state that the given reset seeds produce; give the collection's seeds "
                         "or pack without them (the columns encoding)")
    return np.stack(states)


def _replay(spec: TaskSpec, actions: np.ndarray, ends: np.ndarray,
            initial_states: np.ndarray) -> dict[str, np.ndarray]:
    from dspo_ray.envs import make_env, restore_simulator_state

    n = len(actions)
    out = {"observations": np.empty((n, spec.obs_dim), np.float32),
           "next_observations": np.empty((n, spec.obs_dim), np.float32),
           "rewards": np.empty(n, np.float32), "costs": np.empty(n, np.float32)}
    env = make_env(spec, seed=0)
    try:
        start = 0
        for end, state in zip(ends, initial_states):
            env.reset()  # the time limit's step counter
            obs = restore_simulator_state(env, state)
            for row in range(start, end + 1):
                out["observations"][row] = obs
                obs, reward, _, _, info = env.step(actions[row])
                out["next_observations"][row] = obs
                out["rewards"][row], out["costs"][row] = reward, info["cost"]
            start = end + 1
    finally:
        env.close()
    return out
