"""What every command (``dspo_ray/commands/``: ``dspo-sweep``, ``dspo-train``, ... and their
``experiments/*.py`` wrappers) does with bad input.

:func:`run_cli` runs a script's ``main``: an error caused by the input (a config, a dataset, a
file written by an earlier run, a command-line value) becomes one line ``error: <problem and fix>``
on stderr and exit status 2, with no traceback; Ctrl-C becomes exit 130 and a line saying that
rerunning the command resumes (where it does). Anything else is a bug and keeps its traceback.

Also the argparse pieces the commands share: types (``positive_int``, ``yaml_override``) and the
one spelling of a repeatable option (``--task A --task B``, :func:`add_repeatable`), with the old
spellings still accepted, with a warning (:func:`add_deprecated_alias`).
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


class _DeprecatedSpelling(argparse.Action):
    """An old spelling of an option: does what the new one does, and says so on stderr."""

    def __init__(self, option_strings, dest, replacement: str, extend: bool = False, **kwargs):
        self.replacement, self.extend = replacement, extend
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"warning: {option_string} is deprecated; use {self.replacement}", file=sys.stderr)
        if self.extend:
            values = (getattr(namespace, self.dest) or []) + list(values)
        setattr(namespace, self.dest, values)


def add_repeatable(parser: argparse.ArgumentParser, flag: str, old_plural: str | None = None,
                   **kwargs: Any) -> None:
    """A list-valued option spelled the one way: ``flag`` repeated (``--task A --task B``); its
    value is None when not given (so that a default list is not appended to). ``old_plural``
    (``--tasks A B``) is still accepted, with a warning."""
    dest = kwargs.pop("dest", (old_plural or flag).lstrip("-").replace("-", "_"))
    help_text = kwargs.pop("help", None)
    metavar = kwargs.pop("metavar", flag.lstrip("-").replace("-", "_").upper())
    parser.add_argument(flag, dest=dest, action="append", default=None, help=help_text,
                        metavar=metavar, **kwargs)
    if old_plural:
        parser.add_argument(old_plural, dest=dest, nargs="+", action=_DeprecatedSpelling,
                            replacement=f"{flag} A {flag} B", extend=True, help=argparse.SUPPRESS,
                            **kwargs)


def add_deprecated_alias(parser: argparse.ArgumentParser, old: str, new: str, **kwargs: Any) -> None:
    """``old`` sets what ``new`` sets (give it ``new``'s type), with a warning; not in --help."""
    parser.add_argument(old, dest=new.lstrip("-").replace("-", "_"), action=_DeprecatedSpelling,
                        replacement=new, help=argparse.SUPPRESS, **kwargs)
