"""Writing files so that a crash never leaves half of one: a temporary name, then a rename."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Iterator


def _jsonable(value: Any) -> Any:
    # numpy scalars and arrays, paths: what our metrics and configs hold besides plain types
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """A temporary name beside ``path`` for the block to write; renamed onto ``path`` if the block
    succeeds, deleted if it raises. ``suffix`` for writers that insist on an extension."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}{suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_json_atomic(path: str | Path, obj: Any) -> Path:
    text = json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n"
    return write_bytes_atomic(path, text.encode())


class ArtefactError(RuntimeError):
    """A file an earlier run wrote that cannot be used as it is; the message names the file and
    the command that clears it."""


def unreadable(path: str | Path, load: Any) -> str | None:
    """None if ``load(path)`` succeeds, else a one-line reason (for files written by an earlier run
    that may have been truncated or corrupted since)."""
    try:
        load(Path(path))
    except Exception as e:  # torch, numpy and json raise many types for a damaged file
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}".rstrip(": ")
    return None


@contextlib.contextmanager
def removed_on_failure(folder: str | Path) -> Iterator[Path]:
    """For a run folder: if it did not exist before the block and the block raises (or is
    interrupted), it is removed again, so a failed run leaves nothing behind."""
    import shutil

    folder = Path(folder)
    existed = folder.exists()
    try:
        yield folder
    except BaseException:
        if not existed:
            shutil.rmtree(folder, ignore_errors=True)
        raise
