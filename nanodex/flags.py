"""Command-line flags bound to config keys: the one flag -> config-key mapping every stage uses.

The policy (DESIGN.md, "CLI vocabulary"), stated here once:

- `--config FILE` names the stage's YAML. Without it a stage reads `config/<stage>.yaml` when that
  file exists in the working directory, else it starts from its config dataclass's defaults
  (`config_option`, `config_file`). Every stage resolves its default file this way, and so does
  code that builds another stage's config (`stage_config_file`: the query CLI's brain search).
- A flag that sets a config key is declared with `config_flag(parser, "--out", key="save_dir")`.
  The key is the dotted path in the stage's config dataclass (`summary.style`, `server.port`,
  `build.embed.channel_budgets`; a stage that reads one section of its file names keys
  relative to it). The key is checked when the parser is built, so renaming a field without
  its flag fails at once. The flag's value is converted from the field's type (int,
  float, `a,b` for a list, `name=value,...` for a mapping or a section, repeatable: each entry
  changes that one key), a bad value is the same one-line error a bad YAML value gives, and
  its help ends with `(config: KEY)`.
- `overrides_from(args)` collects the values of exactly the config flags that were given;
  `load_config` applies them on top of the file, so a flag left out never hides the YAML.
- Flags that are not config keys (`--json`, `--verbose`, `--resume`, ...) stay plain argparse.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nanodex.config import load_config
from nanodex.errors import NanodexError

DEST_PREFIX = "config:"  # a config flag's argparse dest is DEST_PREFIX + its key(s)
_CLASS_DEST = "_nanodex_config_class"
_FILE_DEST = "_nanodex_default_config"
_SECTION_DEST = "_nanodex_config_section"
_VALUE_ACTIONS = (None, "store", "append")


def config_option(parser: argparse.ArgumentParser, cls: type, stage: str, section: str = "") -> None:
    """Add `--config` with the shared default (`config/<stage>.yaml` when it exists) and record
    `cls` as the dataclass the parser's config flags are checked against.

    `section`: the stage reads only that section of the file (`server` of config/serve.yaml);
    its flags' keys are then relative to it, and `load_from_args` returns that section.
    """
    default = default_config_file(stage)
    where = f", its `{section}:` section" if section else ""
    parser.add_argument(
        "--config",
        metavar="FILE",
        help=f"YAML config{where} (default: {default} when it exists, else built-in defaults)",
    )
    parser.set_defaults(**{_CLASS_DEST: cls, _FILE_DEST: default, _SECTION_DEST: section})


def config_class(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> type | None:
    """The config dataclass `config_option` recorded on `parser` (None: the stage has no config)."""
    return parser.get_default(_CLASS_DEST)


def default_config_file(stage: str) -> str:
    """Where stage `stage` looks for its YAML when no `--config` names one (working directory)."""
    return f"config/{stage}.yaml"


def stage_config_file(stage: str, given: str | Path | None = None) -> str | None:
    """The YAML stage `stage`'s config comes from: `given`, else its default file when present,
    else None (defaults). For code that builds another stage's config without its flags (the query
    CLI's brain search), so that config reads the user's file exactly as the stage itself would."""
    return _config_path(given, default_config_file(stage))


def config_file(args: argparse.Namespace) -> str | None:
    """The YAML a stage reads: `--config`, else its default file when present, else None (defaults)."""
    return _config_path(args.config, getattr(args, _FILE_DEST, None))


def _config_path(given: str | Path | None, default: str | None) -> str | None:
    if given:
        return str(given)
    return default if default and Path(default).is_file() else None


def config_flag(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    *names: str,
    key: str | tuple[str, ...],
    help: str = "",
    **kwargs: Any,
) -> argparse.Action:
    """`parser.add_argument(*names, ...)` for a flag that sets config `key` (or several keys at once:
    then `type` must turn the text into one value per key)."""
    cls = config_class(parser)
    if cls is None:
        raise TypeError(f"{names[0]}: call config_option(parser, Config, stage) before config_flag")
    section = parser.get_default(_SECTION_DEST)
    keys = tuple(f"{section}.{k}" if section else k for k in ((key,) if isinstance(key, str) else key))
    types_ = [key_type(cls, k) for k in keys]  # fails on a key the dataclass lacks
    action = kwargs.get("action")
    if action in _VALUE_ACTIONS:
        if len(keys) == 1 and "type" not in kwargs:
            tp = _optional_inner(types_[0])
            if action == "append" and typing.get_origin(tp) is list:
                tp = typing.get_args(tp)[0]  # each occurrence is one item of the list
            elif _entries_type(tp):
                kwargs["action"] = _MergeEntries
                kwargs.setdefault("metavar", "NAME=VALUE")
            kwargs["type"] = text_converter(tp, names[0], keys[0])
        if "choices" not in kwargs:  # (argparse shows the choices then)
            kwargs.setdefault("metavar", names[0].lstrip("-").replace("-", "_").upper())
    kwargs.setdefault("default", None)
    text = f"{help} (config: {', '.join(keys)})".strip()
    return parser.add_argument(*names, dest=DEST_PREFIX + ",".join(keys), help=text, **kwargs)


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """{dotted key: value} for the config flags that were given (None = left out, never set)."""
    out: dict[str, Any] = {}
    for dest, value in vars(args).items():
        if not dest.startswith(DEST_PREFIX) or value is None:
            continue
        keys = dest[len(DEST_PREFIX) :].split(",")
        values = value if len(keys) > 1 else (value,)
        for key, val in zip(keys, values, strict=True):
            if isinstance(val, dict):  # name=value entries: each changes one key, the rest stays
                out.update({f"{key}.{name}": v for name, v in val.items()})
            else:
                out[key] = val
    return out


def load_from_args(args: argparse.Namespace) -> Any:
    """The stage's config (its section, if it reads one): the YAML `config_file` names with the
    given config flags on top."""
    cls = getattr(args, _CLASS_DEST, None)
    if cls is None:
        raise TypeError("the parser has no config_option")
    cfg = load_config(cls, config_file(args), overrides_from(args))
    section = getattr(args, _SECTION_DEST, "")
    return getattr(cfg, section) if section else cfg


def config_flags(parser: argparse.ArgumentParser) -> dict[str, tuple[str, ...]]:
    """{option string: config keys} of every config flag on `parser` (for tests and docs)."""
    return {
        action.option_strings[0]: tuple(action.dest[len(DEST_PREFIX) :].split(","))
        for action in parser._actions
        if action.dest.startswith(DEST_PREFIX)
    }


def key_type(cls: type, key: str) -> Any:
    """The type of dotted `key` in dataclass `cls`, through nested sections and mappings."""
    tp: Any = cls
    for part in key.split("."):
        tp = _optional_inner(tp)
        if dataclasses.is_dataclass(tp):
            hints = typing.get_type_hints(tp)
            if part not in hints:
                raise TypeError(f"{cls.__name__} has no config key '{key}'")
            tp = hints[part]
        elif typing.get_origin(tp) is dict:
            tp = typing.get_args(tp)[1] if typing.get_args(tp) else Any
        else:
            raise TypeError(f"{cls.__name__}: '{key}' goes inside a key that is not a section")
    return tp


def text_converter(tp: Any, flag: str, key: str) -> Callable[[str], Any]:
    """Command-line text -> a value of config type `tp`; a bad value is the one-line config error
    a bad YAML value gives, naming the flag and its key."""

    def convert(text: str) -> Any:
        return _from_text(tp, text, flag, f"{flag}: key '{key}'")

    return convert


def _from_text(tp: Any, text: str, flag: str, where: str) -> Any:
    tp = _optional_inner(tp)
    if tp in (str, Any):
        return text
    if tp in (int, float):
        try:
            return tp(text)
        except ValueError:
            raise NanodexError(f"{where} must be {tp.__name__}, got {text!r}", "pass a number") from None
    if tp is bool:
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise NanodexError(f"{where} must be bool, got {text!r}", f"pass {flag} true or {flag} false")
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        item = typing.get_args(tp)[0] if typing.get_args(tp) else str
        return [_from_text(item, part.strip(), flag, where) for part in text.split(",") if part.strip()]
    if _entries_type(tp):
        out: dict[str, Any] = {}
        for part in (p.strip() for p in text.split(",")):
            if not part:
                continue
            name, sep, value = part.partition("=")
            if not sep or not name.strip():
                raise NanodexError(
                    f"{where}: bad entry {part!r}", f"write NAME=VALUE entries, e.g. {flag} a=1,b=2"
                )
            name = name.strip()
            out[name] = _from_text(_entry_type(tp, name, where), value.strip(), flag, f"{where[:-1]}.{name}'")
        return out
    return text


def _entries_type(tp: Any) -> bool:
    """Whether a key of type `tp` takes `name=value` entries (a mapping or a nested section)."""
    tp = _optional_inner(tp)
    return typing.get_origin(tp) is dict or dataclasses.is_dataclass(tp)


def _entry_type(tp: Any, name: str, where: str) -> Any:
    tp = _optional_inner(tp)
    if dataclasses.is_dataclass(tp):
        hints = typing.get_type_hints(tp)
        if name not in hints:
            raise NanodexError(
                f"{where}: unknown config key '{name}'", f"use one of: {', '.join(sorted(hints))}"
            )
        return hints[name]
    args = typing.get_args(tp)
    return args[1] if len(args) == 2 else str


def _optional_inner(tp: Any) -> Any:
    """`X | None` -> X (a flag never sets None: left out means "keep the file's value")."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(inner) == 1:
            return inner[0]
    return tp


class _MergeEntries(argparse.Action):
    """A repeatable `NAME=VALUE[,NAME=VALUE]` flag: every occurrence adds its entries."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, {**(getattr(namespace, self.dest) or {}), **dict(values or {})})  # type: ignore[arg-type]
