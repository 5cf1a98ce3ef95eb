"""DSRL-format HDF5 files: read them as they are, write the same format, cut rows into episodes.

Format (one file per task, N rows, episodes concatenated in order): observations, next_observations
(N x obs), actions (N x act), rewards, costs (N), terminals, timeouts (N, bool). An episode ends at a
row where terminals or timeouts is true; rows after the last such row end no episode and are
dropped with a :class:`TrailingRowsWarning` (DSRL's own loader ignores them). DSRL names files
``<EnvId>-<max cost>-<count>.hdf5`` (the task registry knows each published name); where a task's
file is looked for is ``dspo_ray.data.lookup``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import h5py
import numpy as np

from dspo_ray.data.trajectory import CostedTrajectory
from dspo_ray.io import atomic_path
from dspo_ray.tasks import TaskSpec, get_task

REQUIRED_KEYS = ("observations", "next_observations", "actions", "rewards", "costs",
                 "terminals", "timeouts")


class DatasetError(ValueError):
    """A dataset file that cannot be used; the message names the file, the problem and the fix."""


class TrailingRowsWarning(UserWarning):
    """A file's last rows end no trajectory; they are dropped (DSRL's loader ignores them too)."""


def dsrl_filename(task: str | TaskSpec, n_trajectories: int) -> str:
    return f"{get_task(task).dsrl_filename_prefix}{n_trajectories}.hdf5"


def read_columns(path: Path, read=lambda column: np.asarray(column[()])) -> dict:
    """``read(column)`` of each required column of a DSRL file (its arrays by default; e.g. its
    shapes for a header check), or a DatasetError naming the file: missing, not HDF5, or
    missing columns."""
    if not path.is_file():
        raise DatasetError(f"{path}: no such file; check the path or $DSRL_DATASET_DIR")
    try:
        with h5py.File(path, "r") as f:
            missing = [k for k in REQUIRED_KEYS if k not in f]
            if missing:
                raise DatasetError(
                    f"{path}: missing key(s) {missing}; a DSRL file holds {list(REQUIRED_KEYS)}")
            return {k: read(f[k]) for k in REQUIRED_KEYS}
    except OSError as e:
        raise DatasetError(f"{path}: not a readable HDF5 file ({e}); re-download or re-collect it") from e


def read_dsrl(path: str | Path, task: str | TaskSpec) -> dict[str, np.ndarray]:
    """Read and validate a DSRL file against ``task``; returns its columns as arrays."""
    path = Path(path)
    data = read_columns(path)
    _validate(path, get_task(task), data)
    return data


def _validate(path: Path, spec: TaskSpec, data: dict[str, np.ndarray]) -> None:
    # DSRL stores some columns as (N, 1): squeeze them so every 1-D column really is 1-D.
    for k in ("rewards", "costs", "terminals", "timeouts"):
        if data[k].ndim == 2 and data[k].shape[1] == 1:
            data[k] = data[k][:, 0]
    problem = columns_error(path, spec, {k: data[k].shape for k in REQUIRED_KEYS})
    if problem:
        raise DatasetError(problem)
    n = len(data["rewards"])
    data["terminals"] = data["terminals"].astype(bool)
    data["timeouts"] = data["timeouts"].astype(bool)
    ends = np.flatnonzero(data["terminals"] | data["timeouts"])
    if len(ends) == 0:
        raise DatasetError(
            f"{path}: no trajectory ends in the file: 'terminals' and 'timeouts' are set on none of "
            f"its {n} rows; the file is truncated or malformed")
    last = int(ends[-1])
    if last < n - 1:
        # DSRL's and OSRL's loaders cut episodes at the flags and ignore rows after the last one
        warnings.warn(
            f"{path}: rows {last + 1}..{n - 1} ({n - 1 - last} row(s)) end no trajectory (neither "
            "'terminals' nor 'timeouts' is set after them): dropped, as DSRL's loader does",
            TrailingRowsWarning, stacklevel=3)
        for k in data:
            data[k] = data[k][: last + 1]
    for k in ("observations", "next_observations", "actions", "rewards", "costs"):
        data[k] = data[k].astype(np.float32, copy=False)
        bad = ~np.isfinite(data[k])
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise DatasetError(
                f"{path}: '{k}' holds {int(bad.sum())} NaN/inf value(s), first at row {row}; "
                "clean or re-collect the dataset")


def columns_error(path: Path, spec: TaskSpec, shapes: dict[str, tuple[int, ...]]) -> str | None:
    """What is wrong with a DSRL file's column shapes for ``spec`` (None: nothing): columns of
    different lengths (a damaged file) are told apart from widths of another task."""
    shapes = {k: tuple(v[:1]) if len(v) == 2 and v[1] == 1 and k in ("rewards", "costs", "terminals",
                                                                      "timeouts") else tuple(v)
              for k, v in shapes.items()}
    lengths = {k: (v[0] if v else None) for k, v in shapes.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{k} {n}" for k, n in lengths.items())
        return (f"{path}: its columns have different numbers of rows ({listed}); the file is "
                "truncated or malformed: re-download or re-collect it")
    n = lengths["rewards"]
    if not n:
        return f"{path}: the file holds no transitions"
    expected = {
        "observations": (n, spec.obs_dim), "next_observations": (n, spec.obs_dim),
        "actions": (n, spec.act_dim), "rewards": (n,), "costs": (n,),
        "terminals": (n,), "timeouts": (n,),
    }
    for k, shape in expected.items():
        if shapes[k] != shape:
            return (f"{path}: '{k}' has shape {shapes[k]}, task {spec.name} needs {shape} "
                    f"(obs_dim={spec.obs_dim}, act_dim={spec.act_dim}); is this the right task's file?")
    return None


def split_into_trajectories(data: dict[str, np.ndarray]) -> list[CostedTrajectory]:
    """Cut validated DSRL columns into episodes at rows where terminals or timeouts is set."""
    ends = np.flatnonzero(data["terminals"] | data["timeouts"]) + 1
    starts = np.concatenate([[0], ends[:-1]])
    return [
        CostedTrajectory(**{k: data[k][s:e] for k in REQUIRED_KEYS})
        for s, e in zip(starts, ends)
    ]


def load_trajectories(path: str | Path, task: str | TaskSpec) -> list[CostedTrajectory]:
    return split_into_trajectories(read_dsrl(path, task))


def write_dsrl(path: str | Path, trajectories: list[CostedTrajectory],
               compression: str | None = "gzip") -> Path:
    """Write episodes as a DSRL file, atomically (a temporary name, then a rename).

    ``compression``: HDF5's per-column filter; None for files that will be xz-compressed whole
    (xz then finds the rows repeated between observations and next observations).
    """
    path = Path(path)
    if not trajectories:
        raise ValueError("refusing to write a dataset with no trajectories")
    for i, t in enumerate(trajectories):
        if len(t) == 0:
            raise ValueError(f"trajectory {i} is empty")
        if not (t.terminals[-1] or t.timeouts[-1]):
            raise ValueError(f"trajectory {i} is unterminated: set terminals or timeouts on its last step")
    dtypes = {"terminals": bool, "timeouts": bool}
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        for k in REQUIRED_KEYS:
            column = np.concatenate([getattr(t, k) for t in trajectories])
            f.create_dataset(k, data=column.astype(dtypes.get(k, np.float32)),
                             **({"compression": compression, "compression_opts": 4}
                                if compression == "gzip" else {"compression": compression}))
    return path
