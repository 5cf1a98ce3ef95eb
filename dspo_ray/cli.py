"""What every entry point (``experiments/*.py``, ``analysis/make_tables.py``) does with bad input.

:func:`run_cli` runs a script's ``main``: an error caused by the input (a config, a dataset, a
file written by an earlier run, a command-line value) becomes one line ``error: <problem and fix>``
on stderr and exit status 2, with no traceback; Ctrl-C becomes exit 130 and a line saying that
rerunning the command resumes (where it does). Anything else is a bug and keeps its traceback.

Also the argparse types the scripts share (``positive_int``, ``yaml_override``).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Callable


class UsageError(ValueError):
    """A command-line value that cannot be used; the message names the option and the fix."""


def input_errors() -> tuple[type[BaseException], ...]:
    """The exception types that mean "bad input", not "bug"."""
    from dspo_ray.config import ConfigError
    from dspo_ray.data import DatasetError, SplitError
    from dspo_ray.io import ArtefactError
    from dspo_ray.policies import PolicyError
    from dspo_ray.tasks import UnknownTaskError

    errors: list[type[BaseException]] = [UsageError, ConfigError, DatasetError, SplitError,
                                         ArtefactError, PolicyError, UnknownTaskError,
                                         FileNotFoundError, FileExistsError, NotADirectoryError,
                                         IsADirectoryError, PermissionError]
    try:
        from dspo_ray.analysis import ResultsError
        errors.append(ResultsError)
    except ImportError:  # pragma: no cover - pandas missing
        pass
    from dspo_ray.baselines.common import UnknownMethodError
    errors.append(UnknownMethodError)
    return tuple(errors)


def one_line(error: BaseException) -> str:
    text = str(error).strip()
    if isinstance(error, OSError) and error.filename is not None and error.strerror:
        text = f"{error.filename}: {error.strerror}"
    return "; ".join(line.strip() for line in text.splitlines() if line.strip()) or type(error).__name__


def run_cli(main: Callable[[list[str] | None], int], argv: list[str] | None = None,
            resume_hint: str | None = None,
            extra: Callable[[], tuple[type[BaseException], ...]] | None = None) -> int:
    """``main(argv)``'s exit status; bad input -> ``error: ...`` and 2; Ctrl-C -> 130.

    ``resume_hint``: what to do to resume after Ctrl-C (for scripts that checkpoint).
    ``extra``: returns more exception types that mean bad input for this script (a function, so
    that heavy modules are imported only when something went wrong).
    """
    try:
        return main(argv)
    except KeyboardInterrupt:
        print("interrupted" + (f"; {resume_hint}" if resume_hint else ""), file=sys.stderr)
        return 130
    except Exception as e:
        if isinstance(e, input_errors() + (extra() if extra else ())):
            print(f"error: {one_line(e)}", file=sys.stderr)
            return 2
        raise


def _int_at_least(text: str, least: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < least:
        raise argparse.ArgumentTypeError(f"must be >= {least}, got {value}")
    return value


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (counts of workers, threads, episodes, CPUs)."""
    return _int_at_least(text, 1)


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0 (seeds)."""
    return _int_at_least(text, 0)


def yaml_override(text: str) -> tuple[str, Any]:
    """argparse type for ``--set key=value``; the value is read as YAML (``3e-4``, ``[64, 64]``)."""
    import yaml

    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expects KEY=VALUE, got {text!r}")
    try:
        return key.strip(), yaml.safe_load(value)
    except yaml.YAMLError as e:
        raise argparse.ArgumentTypeError(
            f"{key.strip()}: cannot read {value!r} as a value ({one_line(e)})") from None
