"""Typed configs from plain dicts and YAML, validated on load.

Every method's config is a (nested) dataclass whose defaults are the paper's values. This module
turns a plain mapping (parsed YAML, a Tune search-space sample, a CLI override) into such a
dataclass and refuses anything it does not understand, naming the offending key:

* unknown keys (a typo must not silently fall back to a default),
* values of the wrong type (``"0.1"`` for a float, ``1.5`` for an int, ``1`` for a bool),
* values outside a field's declared range or choices.

Ranges are declared on the field: ``x: float = field(default=0.1, metadata=bounds(ge=0))``, or
with the shorthand ``x: float = bounded(0.1, ge=0)``. ``Literal[...]`` fields accept only their
choices; nested dataclasses recurse; ``tuple[int, ...]`` accepts a YAML list.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Literal, Mapping, TypeVar, Union

T = TypeVar("T")


class ConfigError(ValueError):
    """A config value that cannot be used; the message names the key and what is wrong."""


def bounds(ge: float | None = None, le: float | None = None, gt: float | None = None,
           lt: float | None = None) -> dict[str, float]:
    """Field metadata declaring the allowed range of a number."""
    return {k: v for k, v in dict(ge=ge, le=le, gt=gt, lt=lt).items() if v is not None}


def bounded(default: Any, **limits: float) -> Any:
    """``dataclasses.field`` with a default and a range (``ge``, ``le``, ``gt``, ``lt``)."""
    return dataclasses.field(default=default, metadata=bounds(**limits))


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str) -> Any:
    """``value`` as type ``tp``, or a ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        if dataclasses.is_dataclass(value) and isinstance(value, tp):
            return value
        return from_dict(tp, value, _prefix=key)
    if origin in (Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{key}: None is not allowed (expected {_type_name(tp)})")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{key}: {value!r} does not fit {_type_name(tp)} ({'; '.join(errors)})")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {list(args)}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if args and len(args) != len(value):
            raise ConfigError(f"{key}: expected {len(args)} items, got {len(value)}")
        return tuple(_convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        return [_convert(v, args[0], f"{key}[{i}]") if args else v for i, v in enumerate(value)]
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {type(value).__name__}")
        return dict(value)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {type(value).__name__} {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)  # YAML's 1e5 is a float; accept it when it is whole
            raise ConfigError(f"{key}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {type(value).__name__} {value!r}")
        return value
    if tp is Path:
        if not isinstance(value, (str, Path)):
            raise ConfigError(f"{key}: expected a path, got {type(value).__name__} {value!r}")
        return Path(value)
    raise ConfigError(f"{key}: unsupported field type {_type_name(tp)}")


def _check_range(value: Any, meta: Mapping[str, Any], key: str) -> None:
    if isinstance(value, (tuple, list)):  # a range on a list field holds for every item
        for i, item in enumerate(value):
            _check_range(item, meta, f"{key}[{i}]")
        return
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    checks = {"ge": (lambda v, b: v >= b, ">="), "le": (lambda v, b: v <= b, "<="),
              "gt": (lambda v, b: v > b, ">"), "lt": (lambda v, b: v < b, "<")}
    for name, (ok, symbol) in checks.items():
        if name in meta and not ok(value, meta[name]):
            raise ConfigError(f"{key}: {value!r} is out of range (must be {symbol} {meta[name]})")


def from_dict(cls: type[T], data: Mapping[str, Any] | None, _prefix: str = "") -> T:
    """Build dataclass ``cls`` from ``data``; missing keys take the defaults.

    Raises :class:`ConfigError` naming the dotted key for unknown keys, wrong types and values
    out of range; nested dataclass fields recurse.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        where = _prefix or cls.__name__
        raise ConfigError(f"{where}: expected a mapping of settings, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        key = f"{_prefix}.{unknown[0]}" if _prefix else unknown[0]
        raise ConfigError(f"{key}: unknown setting; valid settings of {_prefix or cls.__name__} "
                          f"are: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        key = f"{_prefix}.{name}" if _prefix else name
        converted = _convert(value, hints[name], key)
        _check_range(converted, fields[name].metadata, key)
        kwargs[name] = converted
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{_prefix or cls.__name__}: {e}") from e


def validate(config: Any, _prefix: str = "") -> Any:
    """Check the ranges of an already built config (e.g. made in code); returns it."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        key = f"{_prefix}.{f.name}" if _prefix else f.name
        if dataclasses.is_dataclass(value):
            validate(value, key)
        else:
            _check_range(value, f.metadata, key)
    return config


def to_dict(config: Any) -> dict[str, Any]:
    """A plain, YAML/JSON-friendly dict (tuples become lists, paths strings)."""
    def plain(x):
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [plain(v) for v in x]
        if isinstance(x, Path):
            return str(x)
        return x
    return plain(dataclasses.asdict(config))


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``, recursing into nested mappings."""
    out = dict(base)
    for k, v in override.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}`` (for sweep parameters and CLI overrides)."""
    out: dict[str, Any] = {}
    for dotted, value in flat.items():
        node = out
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"{dotted}: {p} is both a value and a group")
        node[leaf] = value
    return out


def with_overrides(config: T, overrides: Mapping[str, Any]) -> T:
    """A copy of ``config`` with dotted-key overrides (``{"discriminator.vclub_coef": 0.2}``),
    validated like a file."""
    return from_dict(type(config), deep_merge(to_dict(config), unflatten(overrides)))


def load_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML file's top-level mapping; a missing, empty or unparsable file is a ConfigError
    naming the file (and, for a syntax error, the line)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a" if path.is_dir() else "does not exist: give an existing"
        raise ConfigError(f"config file {path} {what} YAML file")
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where} ({problem}); fix the file's syntax") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the file ({e})") from None
    if data is None:
        raise ConfigError(f"{path}: the file is empty; give at least one setting")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return data
