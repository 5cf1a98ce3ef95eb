"""A content-addressed cache of DSPO's stage artefacts, shared by runs and by sweep trials.

A stage's artefact depends on the settings it and the stages before it read, on the dataset file
and on the code; :func:`artefact_key` hashes exactly those (which settings: ``Stage.settings`` in
``dspo_ray.dspo.pipeline``), so two runs that differ only in, say, generation settings share
stages 1-3 (the expensive ones) and train only generation and BC.

Layout: ``<cache>/<stage>-<key>/`` holds the stage's finished files (the artefact and its
``.metrics.json`` sidecar, which carries the stage's metrics and training time, so a reused
stage's metrics are the ones it was trained with). An entry is published by writing a hidden
temporary folder beside it and renaming it into place, so an entry either is complete or does not
exist; a leftover temporary folder (a publish that was interrupted) is never read. When two runs
publish the same key, the first rename wins and the other run keeps its own files in its workdir.

Not in the key, on purpose: the hardware (device, Ray Train worker count: fixed within a sweep)
and the library versions. A stage's algorithm is in it through ``Stage.code_version``: bump it by
hand when a change to the stage's code changes what it produces (later stages' keys change too).
Deleting the folder is always safe: the next run trains again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from dspo_ray.io import atomic_path

KEY_LENGTH = 24
"""Hex digits of the SHA-256 kept in an entry's name (96 bits: no collision in any real cache)."""


def settings_values(config: Mapping[str, Any], prefixes: Iterable[str]) -> dict[str, Any]:
    """The leaf values of a nested config dict (``to_dict(DSPOConfig)``) whose dotted key is one
    of ``prefixes`` or lies under one, flat: ``{"discriminator.steps": 400, ...}``."""
    prefixes = tuple(prefixes)
    return {key: value for key, value in leaf_settings(config).items()
            if any(key == p or key.startswith(p + ".") for p in prefixes)}


def leaf_settings(config: Mapping[str, Any], _prefix: str = "") -> dict[str, Any]:
    """Every leaf of a nested config dict, by dotted key (lists are leaves)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, Mapping):
            out.update(leaf_settings(value, f"{_prefix}{key}."))
        else:
            out[f"{_prefix}{key}"] = value
    return out


def file_identity(path: str | Path) -> dict[str, Any]:
    """Which file, as cheaply as that can be told: resolved path, size and modification time
    (a rewritten or replaced dataset gets a new mtime, so its stages are trained again)."""
    path = Path(path).resolve()
    stat = path.stat()
    return {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def artefact_key(stage: str, settings: Mapping[str, Any], dataset: Mapping[str, Any],
                 code_versions: Mapping[str, int]) -> str:
    """The hash naming a stage's artefact: its cumulative settings' values, the dataset file's
    identity and the code versions of the stage and those before it."""
    text = json.dumps({"stage": stage, "settings": dict(settings), "dataset": dict(dataset),
                       "code_versions": dict(code_versions)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LENGTH]


def _link_or_copy(source: Path, target: Path) -> None:
    # a hard link costs no disk; artefacts are replaced (atomic rename), never rewritten in place,
    # so sharing the inode between the cache and workdirs is safe. Copy across filesystems.
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


@dataclass(frozen=True)
class StageCache:
    """A cache folder and the key of every stage of one run (:func:`artefact_key`)."""

    folder: Path
    keys: Mapping[str, str]

    def entry(self, stage: str) -> Path:
        return self.folder / f"{stage}-{self.keys[stage]}"

    def fetch(self, stage: str, names: tuple[str, ...], workdir: Path,
              unreadable: Callable[[Path], str | None]) -> Path | None:
        """Put the entry's files ``names`` (in that order: the metrics sidecar before the
        artefact) into ``workdir``; the entry, or None when there is none. An entry holding an
        unreadable file (damaged since) is moved out of the way and counts as none."""
        entry = self.entry(stage)
        if not all((entry / name).is_file() for name in names):
            return None
        for name in names:
            reason = unreadable(entry / name)
            if reason is not None:
                print(f"warning: stage cache entry {entry} holds an unreadable {name} ({reason}); "
                      "removed, the stage runs again", file=sys.stderr, flush=True)
                self._discard(entry)
                return None
        for name in names:
            with atomic_path(workdir / name) as tmp:
                _link_or_copy(entry / name, tmp)
        return entry

    def publish(self, stage: str, names: tuple[str, ...], workdir: Path) -> bool:
        """Add the workdir's files ``names`` as the stage's entry, atomically (a temporary folder,
        then a rename). False when the entry already exists (another run published it first:
        its files came from the same settings, data and code)."""
        entry = self.entry(stage)
        if entry.exists():
            return False
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{entry.name}.tmp-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            tmp.mkdir()
            for name in names:
                _link_or_copy(workdir / name, tmp / name)
            os.rename(tmp, entry)  # fails if another run's entry got there first
            return True
        except OSError as e:
            if not entry.exists():
                # a cache that cannot be written (full disk, permissions) costs hits, not the run
                print(f"warning: stage {stage} not added to the stage cache {self.folder} "
                      f"({type(e).__name__}: {e})", file=sys.stderr, flush=True)
            return False
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _discard(self, entry: Path) -> None:
        # renamed first, so no other run reads it half deleted
        trash = self.folder / f".{entry.name}.discarded-{os.getpid()}-{os.urandom(4).hex()}"
        try:
            os.rename(entry, trash)
        except OSError:
            return  # another run moved it already
        shutil.rmtree(trash, ignore_errors=True)
