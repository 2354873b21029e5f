"""The shared kernel: typed config loading, atomic writes, the umbrella CLI."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from nanodex.config import load_config
from nanodex.errors import NanodexError
from nanodex.paths import atomic_path, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Inner:
    max_tokens: int = 64
    style: str = "terse"


@dataclass
class Sample:
    name: str = "x"
    rate: float = 0.1
    tags: list[str] = field(default_factory=list)
    inner: Inner = field(default_factory=Inner)
    path: str | None = None


def test_yaml_fills_typed_dataclass_with_overrides(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("name: y\nrate: 1\ntags: [a, b]\ninner: {max_tokens: 8}\n")
    got = load_config(Sample, cfg, {"name": "z", "path": None})
    assert got == Sample(name="z", rate=1.0, tags=["a", "b"], inner=Inner(max_tokens=8))
    assert isinstance(got.rate, float)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("nmae: y\n", "unknown config key 'nmae'"),
        ("inner: {max_tokenz: 3}\n", "unknown config key 'max_tokenz'"),
        ("rate: fast\n", "key 'rate' must be float"),
        ("tags: a\n", "key 'tags' must be a list"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("name: [unclosed\n", "invalid YAML"),
    ],
)
def test_bad_config_is_named(tmp_path: Path, text: str, match: str) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text)
    with pytest.raises(NanodexError, match=match):
        load_config(Sample, cfg)


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(NanodexError, match="config file not found"):
        load_config(Sample, tmp_path / "nope.yaml")


def test_atomic_path_keeps_old_file_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out" / "a.txt"
    atomic_write_text(target, "good")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "good"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.txt"]


def test_atomic_dir_replaces_whole_folder(tmp_path: Path) -> None:
    target = tmp_path / "adapter"
    target.mkdir()
    (target / "stale.bin").write_text("old")
    with atomic_path(target, is_dir=True) as tmp:
        (tmp / "new.bin").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.bin"]


def test_umbrella_cli_dispatches_to_stage_help() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "nanodex.cli", "extract", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0 and "--repo" in out.stdout
    listing = subprocess.run(
        [sys.executable, "-m", "nanodex.cli", "--help"], capture_output=True, text=True, cwd=ROOT
    )
    assert "graph-inspect" in listing.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "nanodex.cli", "nope"], capture_output=True, text=True, cwd=ROOT
    )
    assert bad.returncode == 2 and "unknown stage 'nope'" in bad.stderr
