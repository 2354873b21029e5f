"""Inputs that must not crash the extractor: each is counted, skipped or named in one line."""

from __future__ import annotations

import gc
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from extractor.build import extract
from extractor.config import ExtractConfig
from nanodex.errors import NanodexError
from tests.conftest import build_graph

ROOT = Path(__file__).resolve().parents[1]


def _skipped(graph: Path) -> dict[str, str]:
    conn = sqlite3.connect(graph)
    try:
        return dict(conn.execute("SELECT path, reason FROM skipped"))
    finally:
        conn.close()


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    repo = tmp_path / "messy"
    (repo / "pkg").mkdir(parents=True)
    (repo / "pkg" / "ok.py").write_text("def fine():\n    return 1\n")
    (repo / "pkg" / "binary.py").write_bytes(b"\x00\x01\x02def x(): pass\n")
    (repo / "pkg" / "latin1.py").write_bytes("def caf\xe9():\n    return 'd\xe9j\xe0'\n".encode("latin-1"))
    (repo / "pkg" / "broken.py").write_text(
        "def good():\n    return 1\n\ndef bad(:\n    pass\n\nclass Kept:\n    pass\n"
    )
    big = "x = 1\n" * (5 * 1024 * 1024 // 6 + 1)
    (repo / "pkg" / "huge.py").write_text(big)
    os.symlink(repo / "pkg", repo / "pkg" / "loop")  # a folder that links to itself
    outside = tmp_path / "outside.py"
    outside.write_text("def secret():\n    pass\n")
    os.symlink(outside, repo / "pkg" / "outside_link.py")
    os.symlink(repo / "pkg" / "missing.py", repo / "pkg" / "dangling.py")
    return repo


def test_messy_repository_is_indexed_with_counts(messy: Path, graph_path: Path) -> None:
    report = build_graph(messy, graph_path, ["python"])
    skipped = _skipped(graph_path)
    assert "binary" in skipped["pkg/binary.py"]
    assert "max_file_bytes" in skipped["pkg/huge.py"]
    assert "outside" in skipped["pkg/outside_link.py"]
    assert "symlinked folder" in skipped["pkg/loop"]
    assert "unreadable" in skipped["pkg/dangling.py"]
    assert len(report.skipped) == 5
    conn = sqlite3.connect(graph_path)
    names = {r[0] for r in conn.execute("SELECT name FROM nodes")}
    # invalid UTF-8 is parsed as bytes; syntax errors keep what parsed and are counted
    assert {"fine", "good", "Kept"} <= names
    assert any(n.startswith("caf") for n in names)
    errors = dict(conn.execute("SELECT path, parse_errors FROM files"))
    assert errors["pkg/broken.py"] > 0 and errors["pkg/ok.py"] == 0
    assert report.parse_errors == sum(errors.values())


def test_empty_repository_is_a_clear_error(tmp_path: Path, graph_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(NanodexError, match="no source files"):
        build_graph(tmp_path / "empty", graph_path, ["python"])
    assert not graph_path.exists()


def test_missing_path_is_a_clear_error(tmp_path: Path, graph_path: Path) -> None:
    with pytest.raises(NanodexError, match="does not exist"):
        build_graph(tmp_path / "nope", graph_path, ["python"])


def test_cli_prints_one_line_and_exits_nonzero(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "extractor",
            "--repo",
            str(tmp_path / "nope"),
            "--out",
            str(tmp_path / "g.sqlite"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not exist" in lines[0] and "fix:" in lines[0]


def test_unknown_config_key_is_named(tmp_path: Path) -> None:
    cfg = tmp_path / "extract.yaml"
    cfg.write_text("languages: [python]\nlanguagez: [go]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "extractor", "--config", str(cfg)], capture_output=True, text=True, cwd=ROOT
    )
    assert proc.returncode == 2 and "languagez" in proc.stderr


def test_failed_full_build_leaves_no_graph(
    tmp_path: Path, graph_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "r"
    repo.mkdir()
    (repo / "a.py").write_text("def a():\n    pass\n")

    def boom(*_a, **_k):
        raise RuntimeError("resolution failed")

    monkeypatch.setattr("extractor.build.resolve_facts", boom)
    with pytest.raises(RuntimeError):
        extract(ExtractConfig(repo=str(repo), out_graph=str(graph_path), languages=["python"], workers=1))
    assert not graph_path.exists()
    assert list(graph_path.parent.glob(".graph.sqlite.tmp-*")) == []
    assert gc.isenabled(), "the garbage collector stays paused after a failed build"


def test_gitignore_and_exclude_are_respected(tmp_path: Path, graph_path: Path) -> None:
    repo = tmp_path / "g"
    (repo / "build").mkdir(parents=True)
    (repo / "vendor").mkdir()
    (repo / "a.py").write_text("def a():\n    pass\n")
    (repo / "build" / "gen.py").write_text("def gen():\n    pass\n")
    (repo / "vendor" / "v.py").write_text("def v():\n    pass\n")
    (repo / ".gitignore").write_text("build/\n")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    build_graph(repo, graph_path, ["python"], exclude=["vendor/**"])
    conn = sqlite3.connect(graph_path)
    assert {r[0] for r in conn.execute("SELECT path FROM files")} == {"a.py"}


def test_commit_is_recorded_only_for_the_repository_itself(tmp_path: Path) -> None:
    """A package inside another project's ignored folder (its venv) gets no commit: the
    enclosing project's HEAD would say nothing about that code."""
    repo = tmp_path / "proj"
    (repo / "venvlike" / "pkg").mkdir(parents=True)
    (repo / "a.py").write_text("def a():\n    pass\n")
    (repo / "venvlike" / "pkg" / "m.py").write_text("def m():\n    pass\n")
    (repo / ".gitignore").write_text("venvlike/\n")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    head = subprocess.run([*git, "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    for folder, expected in ((repo, head), (repo / "venvlike" / "pkg", None)):
        graph = tmp_path / f"{folder.name}.sqlite"
        build_graph(folder, graph, ["python"])
        with sqlite3.connect(graph) as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = 'commit'").fetchone()
        assert json.loads(row[0]) == expected
