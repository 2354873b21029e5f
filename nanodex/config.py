"""YAML config files read into typed dataclasses.

Each stage declares its own dataclass; this module only knows how to fill one from a YAML
mapping plus overrides keyed by dotted config keys (`summary.style`: the `style` key of the
`summary` section), which is what command-line flags become (nanodex.flags). Unknown keys and
wrongly typed values are errors that name the key, whether they come from a file or a flag,
because a silently ignored typo in a training config costs hours.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from nanodex.errors import NanodexError

T = TypeVar("T")


def load_config(cls: type[T], path: str | Path | None, overrides: dict[str, Any] | None = None) -> T:
    """Build `cls` from the YAML file at `path` (may be None) with non-None `overrides` on top.

    Override keys may be dotted (`summary.style`, `counts.explain`): they change that one key of
    a nested section and keep the rest of it as the file (or the defaults) set it.
    """
    data: dict[str, Any] = {}
    where = "defaults"
    if path:
        where = str(path)
        p = Path(path)
        if not p.is_file():
            raise NanodexError(f"config file not found: {p}", "pass an existing YAML file with CONFIG=")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise NanodexError(
                f"{p}: invalid YAML ({err.__class__.__name__})", "fix the file's syntax"
            ) from err
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise NanodexError(
                f"{p}: top level must be a mapping of keys to values", "see config/ for examples"
            )
        data.update(loaded)
    cfg = from_dict(cls, data, where)
    return apply_overrides(cfg, overrides) if overrides else cfg


def apply_overrides(cfg: T, overrides: dict[str, Any], where: str = "command line") -> T:
    """A copy of dataclass `cfg` with each non-None override (dotted key -> value) set.

    The whole config goes back through `from_dict`, so an override is checked exactly like the
    same key in a YAML file (unknown key, wrong type) and a mapping key such as
    `build.embed.channel_budgets.symbols` changes one entry of the mapping, not all of it.
    """
    data = dataclasses.asdict(cfg)  # type: ignore[call-overload]
    for key, value in overrides.items():
        if value is None:
            continue
        node = data
        *sections, last = key.split(".")
        for i, part in enumerate(sections):
            child = node.get(part)
            if not isinstance(child, dict):
                if part in node:
                    raise NanodexError(
                        f"{where}: config key '{'.'.join(sections[: i + 1])}' is not a section",
                        f"set '{'.'.join(sections[: i + 1])}' itself, not '{key}'",
                    )
                child = node[part] = {}  # from_dict names the unknown key
            node = child
        node[last] = value
    return from_dict(type(cfg), data, where)


def from_dict(cls: type[T], data: dict[str, Any], where: str) -> T:
    """Fill dataclass `cls` from `data`, checking key names and value types recursively."""
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    for key in data:
        if key not in fields:
            known = ", ".join(sorted(fields))
            raise NanodexError(f"{where}: unknown config key '{key}'", f"use one of: {known}")
    hints = typing.get_type_hints(cls)
    values = {key: _coerce(hints[key], value, f"{where}: key '{key}'") for key, value in data.items()}
    for key, value in values.items():
        lo = fields[key].metadata.get("min")
        if lo is not None and isinstance(value, int | float) and value < lo:
            raise NanodexError(f"{where}: key '{key}' must be at least {lo}, got {value!r}", "fix the value")
    return cls(**values)


def at_least(lo: float, default: Any) -> Any:
    """A dataclass field whose value, from YAML or a flag, must be >= `lo` (checked by `from_dict`).

    Counts and budgets below their floor do not fail, they silently do nothing (`--k -2`
    printed results, `--count explain=-3` wrote a dataset without explain rows), so the
    floor is part of the field's declaration.
    """
    return dataclasses.field(default=default, metadata={"min": lo})


def to_dict(obj: Any) -> dict[str, Any]:
    """The plain-dict form of a config dataclass (for manifests and reports)."""
    return dataclasses.asdict(obj)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except NanodexError as err:
                errors.append(err)
        raise errors[0]
    if origin is typing.Literal:
        if value not in args:
            raise NanodexError(
                f"{where} must be one of {', '.join(map(str, args))}, got {value!r}", "fix the value"
            )
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise NanodexError(f"{where} must be a mapping", "see config/ for the expected shape")
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise NanodexError(f"{where} must be a list", "write it as [a, b] or one '- item' per line")
        item = args[0] if args else Any
        return [_coerce(item, v, where) for v in value]
    if origin is dict:
        if not isinstance(value, dict):
            raise NanodexError(f"{where} must be a mapping", "write it as {key: value}")
        vt = args[1] if len(args) == 2 else Any
        return {k: _coerce(vt, v, where) for k, v in value.items()}
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp in (int, float, str, bool):
        if isinstance(value, bool) and tp is not bool:
            raise NanodexError(f"{where} must be {tp.__name__}, got {value!r}", "fix the value")
        if not isinstance(value, tp):
            raise NanodexError(f"{where} must be {tp.__name__}, got {value!r}", "fix the value")
        return value
    return value
