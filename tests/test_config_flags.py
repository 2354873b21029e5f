"""One flag -> config-key mapping for every stage (nanodex/flags.py, DESIGN.md "CLI vocabulary").

Dotted keys land in nested sections, a bad value from a flag is the same one-line error a bad
YAML value gives, a flag left out never hides the file's value, and every stage declares each
flag that sets a config key through `config_flag`, with a key its config dataclass has.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nanodex.cli import STAGES
from nanodex.config import apply_overrides, at_least, load_config
from nanodex.errors import NanodexError
from nanodex.flags import (
    DEST_PREFIX,
    config_class,
    config_file,
    config_flag,
    config_flags,
    config_option,
    key_type,
    load_from_args,
    overrides_from,
    stage_config_file,
)

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Summary:
    style: str = "extractive"
    max_tokens: int = at_least(1, 120)


@dataclass
class Sample:
    graph: str = "work/graph.sqlite"
    summary: Summary = field(default_factory=Summary)
    weights: dict[str, float] = field(default_factory=lambda: {"a": 1.0, "b": 2.0})
    langs: list[str] = field(default_factory=lambda: ["python"])
    all: bool = False


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="sample")
    config_option(ap, Sample, "sample-stage-that-has-no-file")
    config_flag(ap, "--graph", key="graph", help="code graph")
    config_flag(ap, "--style", key="summary.style", choices=["extractive", "llm"])
    config_flag(ap, "--max-tokens", key="summary.max_tokens")
    config_flag(ap, "--weights", key="weights")
    config_flag(ap, "--languages", key="langs")
    config_flag(ap, "--all", key="all", action="store_true")
    ap.add_argument("--json", action="store_true")
    return ap


def test_dotted_keys_land_in_nested_sections(tmp_path: Path) -> None:
    yaml_file = tmp_path / "s.yaml"
    yaml_file.write_text("graph: g.sqlite\nsummary: {style: llm, max_tokens: 50}\nweights: {a: 3}\n")
    args = _parser().parse_args(
        ["--config", str(yaml_file), "--max-tokens", "7", "--weights", "b=5", "--languages", "go,rust"]
    )
    assert overrides_from(args) == {"summary.max_tokens": 7, "weights.b": 5.0, "langs": ["go", "rust"]}
    cfg = load_from_args(args)
    assert cfg.summary == Summary(style="llm", max_tokens=7), (
        "the flag sets one key, the file keeps the other"
    )
    assert cfg.weights == {"a": 3.0, "b": 5.0} and cfg.langs == ["go", "rust"] and cfg.graph == "g.sqlite"
    # the same through load_config directly, from the dataclass defaults
    cfg = load_config(Sample, None, {"summary.style": "llm", "weights.c": 1})
    assert cfg.summary == Summary(style="llm") and cfg.weights == {"a": 1.0, "b": 2.0, "c": 1.0}


def test_unset_flags_do_not_override_the_file(tmp_path: Path) -> None:
    yaml_file = tmp_path / "s.yaml"
    yaml_file.write_text("graph: from-file.sqlite\nall: true\nsummary: {max_tokens: 9}\n")
    args = _parser().parse_args(["--config", str(yaml_file), "--json"])
    assert overrides_from(args) == {}, "only given config flags become overrides (--json is plain)"
    cfg = load_from_args(args)
    assert cfg.graph == "from-file.sqlite" and cfg.all is True and cfg.summary.max_tokens == 9


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--max-tokens", "lots"], r"--max-tokens: key 'summary.max_tokens' must be int, got 'lots'"),
        (["--weights", "a=heavy"], r"--weights: key 'weights.a' must be float, got 'heavy'"),
        (["--weights", "a"], r"--weights: key 'weights': bad entry 'a'"),
    ],
)
def test_a_bad_flag_value_is_the_config_error(argv: list[str], match: str) -> None:
    with pytest.raises(NanodexError, match=match) as err:
        _parser().parse_args(argv)
    assert err.value.fix, "every config error says how to fix it"


def test_a_bad_override_is_checked_like_a_yaml_key() -> None:
    with pytest.raises(NanodexError, match="key 'max_tokens' must be int, got 'x'"):
        load_config(Sample, None, {"summary.max_tokens": "x"})
    with pytest.raises(NanodexError, match="unknown config key 'stlye'"):
        load_config(Sample, None, {"summary.stlye": "llm"})
    with pytest.raises(NanodexError, match="'graph' is not a section"):
        apply_overrides(Sample(), {"graph.path": "x"})


def test_a_value_below_its_floor_is_refused_from_a_flag_and_from_yaml(tmp_path: Path) -> None:
    """`at_least` fields: a count or budget under its floor would silently do nothing."""
    with pytest.raises(NanodexError, match="key 'max_tokens' must be at least 1, got -3") as err:
        load_from_args(_parser().parse_args(["--max-tokens", "-3"]))
    assert err.value.fix
    cfg = tmp_path / "c.yaml"
    cfg.write_text("summary:\n  max_tokens: 0\n", encoding="utf-8")
    with pytest.raises(
        NanodexError, match=f"{re.escape(str(cfg))}: key 'summary': key 'max_tokens' must be at least 1"
    ):
        load_config(Sample, cfg)
    assert load_config(Sample, None, {"summary.max_tokens": 1}).summary.max_tokens == 1


def test_a_flag_for_a_missing_key_fails_when_the_parser_is_built() -> None:
    ap = argparse.ArgumentParser()
    config_option(ap, Sample, "sample")
    with pytest.raises(TypeError, match="no config key 'summary.styel'"):
        config_flag(ap, "--style", key="summary.styel")
    plain = argparse.ArgumentParser()
    with pytest.raises(TypeError, match="config_option"):
        config_flag(plain, "--graph", key="graph")


def test_the_default_config_file_policy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--config, else config/<stage>.yaml in the working directory when it exists, else defaults."""
    monkeypatch.chdir(tmp_path)
    ap = argparse.ArgumentParser()
    config_option(ap, Sample, "sample")
    assert config_file(ap.parse_args([])) is None
    assert stage_config_file("sample") is None  # the same policy without the stage's flags
    assert load_from_args(ap.parse_args([])) == Sample()
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "sample.yaml").write_text("graph: default-file.sqlite\n")
    assert config_file(ap.parse_args([])) == "config/sample.yaml" == stage_config_file("sample")
    assert stage_config_file("sample", "other.yaml") == "other.yaml"
    assert load_from_args(ap.parse_args([])).graph == "default-file.sqlite"
    (tmp_path / "other.yaml").write_text("graph: given.sqlite\n")
    assert load_from_args(ap.parse_args(["--config", "other.yaml"])).graph == "given.sqlite"


def test_a_wrong_flag_value_is_one_line_from_the_command_line() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "brain.search", "--k", "many", "--question", "where"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "NANODEX_PROGRESS": "0"},
        timeout=300,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "nanodex: error: --k: key 'search.k' must be int, got 'many' (fix: pass a number)"
    ]


def _stage_parser(module: str) -> argparse.ArgumentParser:
    """The parser a stage's `python -m module` builds (a package's lives in its __main__)."""
    spec = importlib.util.find_spec(module)
    assert spec is not None, module
    name = f"{module}.__main__" if spec.submodule_search_locations else module
    return importlib.import_module(name).build_parser()


# the words by which a flag's help says it sets a config value
_CLAIMS = ("(config: ", "overrides", "config key", "config `")


@pytest.mark.parametrize("module", sorted({module for module, _text in STAGES.values()}))
def test_every_config_flag_goes_through_the_one_mechanism(module: str) -> None:
    parser = _stage_parser(module)
    cls = config_class(parser)
    declared = config_flags(parser)
    for action in parser._actions:
        text = action.help or ""
        if any(claim in text for claim in _CLAIMS):
            assert action.dest.startswith(DEST_PREFIX), (
                f"{module} {action.option_strings}: help names a config key, but the flag is plain argparse"
            )
    has_config = any("--config" in a.option_strings for a in parser._actions)
    assert has_config == (cls is not None), f"{module}: --config must come from config_option (one policy)"
    if has_config:
        help_text = next(a.help for a in parser._actions if "--config" in a.option_strings)
        assert re.search(r"default: config/\w+\.yaml when it exists, else built-in defaults", help_text or "")
    assert not declared or cls is not None, f"{module}: config flags without config_option"
    for flag, keys in declared.items():
        for key in keys:
            key_type(cls, key)  # TypeError: the stage's config dataclass lost (or renamed) the key
            action = next(a for a in parser._actions if flag in a.option_strings)
            assert f"(config: {', '.join(keys)})" in (action.help or ""), (module, flag)
