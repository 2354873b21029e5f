"""Issue 17, extraction stage: hostile git config (F1), unreadable folders (F4), bad --out (F5),
damaged graphs (F6, F7), stale temporaries and artifact permissions (smaller items).

Each test failed on the code before the fix (noted per test)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
import subprocess
import tempfile
from pathlib import Path

import pytest

from extractor.graph import Graph
from nanodex.errors import NanodexError
from nanodex.paths import atomic_write_text
from tests.conftest import build_graph
from tests.hardening import assert_one_line_error, run_cli, unprivileged_prefix


def _small_repo(root: Path) -> Path:
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "a.py").write_text("def alpha():\n    return beta()\n\n\ndef beta():\n    return 1\n")
    (root / "pkg" / "b.py").write_text("from pkg.a import alpha\n\n\ndef gamma():\n    return alpha()\n")
    return root


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def hostile_git_repo(repo: Path, marker_dir: Path) -> list[Path]:
    """A git repository whose .git/config runs a command from fsmonitor, the pager, hooks,
    credential helper, ssh and a diff driver; returns the marker files each would create."""
    _git(repo, "init", "-q")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    _git(repo, "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "init")
    (repo / "untracked_extra.py").write_text("def delta():\n    return 4\n")
    markers = {k: marker_dir / f"PWNED-{k}" for k in ("fsmonitor", "pager", "hook", "cred", "ssh", "diff")}
    hooks = repo / "evil-hooks"
    hooks.mkdir()
    for name in ("pre-commit", "post-checkout", "post-index-change", "reference-transaction", "pre-auto-gc"):
        hook = hooks / name
        hook.write_text(f"#!/bin/sh\ntouch {markers['hook']}\n")
        hook.chmod(0o755)
    for key, value in (
        ("core.fsmonitor", f"touch {markers['fsmonitor']}; false"),
        ("core.pager", f"touch {markers['pager']}; cat"),
        ("core.hooksPath", str(hooks)),
        ("credential.helper", f"!touch {markers['cred']}"),
        ("core.sshCommand", f"touch {markers['ssh']}"),
        ("diff.external", f"touch {markers['diff']}"),
        ("pager.ls-files", f"touch {markers['pager']}; cat"),
    ):
        _git(repo, "config", key, value)
    # the hostile config really runs commands for plain git (so the test can fail)
    subprocess.run(["git", "-C", str(repo), "ls-files", "-co", "--exclude-standard"], capture_output=True)
    assert markers["fsmonitor"].exists(), "git no longer runs core.fsmonitor: the test proves nothing"
    markers["fsmonitor"].unlink()
    return list(markers.values())


def test_f1_hostile_git_config_runs_nothing(tmp_path: Path) -> None:
    """F1 (failed before: `git ls-files` in walk.py ran core.fsmonitor and created the marker)."""
    repo = _small_repo(tmp_path / "repo")
    markers = hostile_git_repo(repo, tmp_path)
    graph = tmp_path / "graph.sqlite"
    ran = run_cli("extractor", "--repo", str(repo), "--out", str(graph), "--languages", "python")
    assert ran.returncode == 0, ran.stderr
    ran = run_cli("extractor", "--repo", str(repo), "--out", str(graph), "--languages", "python")
    assert ran.returncode == 0, ran.stderr
    assert [m.name for m in markers if m.exists()] == []
    with Graph(graph) as g:  # git's listing was still used: the untracked file is indexed
        assert g.node("untracked_extra.py") is not None
        assert g.meta("commit")


def test_f1_every_git_call_goes_through_the_safe_helper() -> None:
    """F1 audit: no module outside nanodex/git.py starts git itself (failed before: walk.py, build.py)."""
    root = Path(__file__).resolve().parents[1]
    offenders = []
    # tests and scripts/probe.py run git on repositories they built themselves
    packages = [
        d
        for d in root.iterdir()
        if d.is_dir()
        and not d.is_symlink()
        and not d.name.startswith(".")
        and d.name not in ("tests", "scripts")
    ]
    for path in (p for d in packages for p in d.rglob("*.py")):
        if path.relative_to(root).parts == ("nanodex", "git.py"):
            continue
        text = path.read_text(encoding="utf-8")
        if '["git"' in text or "['git'" in text or '("git"' in text:
            offenders.append(str(path.relative_to(root)))
    assert offenders == []


def test_f4_unreadable_folder_is_skipped_and_counted() -> None:
    """F4 (failed before: PermissionError on `pyvenv.cfg` in walk.py, a traceback)."""
    prefix = unprivileged_prefix()
    if prefix is None:
        pytest.skip("cannot drop root's permission override here")
    # outside pytest's 0700 tmp folders, so that the unprivileged extractor can reach it
    base = Path(tempfile.mkdtemp(prefix="nanodex-f4-"))
    try:
        base.chmod(0o777)
        repo = _small_repo(base / "repo")
        locked = repo / "locked"
        (locked / "inner").mkdir(parents=True)
        (locked / "inner" / "c.py").write_text("def hidden():\n    pass\n")
        (locked / "inner").chmod(0)
        (repo / "pkg").chmod(0o755)
        for p in (repo, locked):
            p.chmod(0o755)
        graph = base / "out" / "graph.sqlite"
        graph.parent.mkdir()
        graph.parent.chmod(0o777)
        ran = run_cli(
            "extractor",
            "--repo",
            str(repo),
            "--out",
            str(graph),
            "--languages",
            "python",
            "--json",
            prefix=prefix,
        )
        assert ran.returncode == 0, ran.stderr
        assert "Traceback" not in ran.stderr
        import json

        report = json.loads(ran.stdout)
        assert report["skipped"] == {"locked/inner": "unreadable folder (PermissionError)"}
        assert report["files"] == 2
    finally:
        for p in base.rglob("*"):
            if p.is_dir() and not p.is_symlink():
                p.chmod(0o755)
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("full", [False, True])
def test_f5_out_that_is_not_a_graph_is_refused_and_kept(tmp_path: Path, full: bool) -> None:
    """F5 (failed before: a traceback, and with --full the file was silently replaced)."""
    repo = _small_repo(tmp_path / "repo")
    precious = tmp_path / "notes.txt"
    precious.write_text("my notes, not a graph\n")
    args = [
        "--repo",
        str(repo),
        "--out",
        str(precious),
        "--languages",
        "python",
        *(["--full"] if full else []),
    ]
    assert_one_line_error(run_cli("extractor", *args), "not a nanodex code graph", "refusing to overwrite")
    assert precious.read_text() == "my notes, not a graph\n"
    other_db = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other_db)
    conn.execute("CREATE TABLE accounts(id INTEGER)")
    conn.commit()
    conn.close()
    before = other_db.read_bytes()
    args[3] = str(other_db)
    assert_one_line_error(run_cli("extractor", *args), "not a nanodex code graph")
    assert other_db.read_bytes() == before


def test_f5_out_that_is_a_folder_is_one_line(tmp_path: Path) -> None:
    """F5 (failed before: IsADirectoryError traceback)."""
    repo = _small_repo(tmp_path / "repo")
    folder = tmp_path / "outdir"
    folder.mkdir()
    ran = run_cli("extractor", "--repo", str(repo), "--out", str(folder), "--languages", "python")
    assert_one_line_error(ran, "is a folder")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    ran = run_cli(
        "extractor", "--repo", str(repo), "--out", str(blocker / "sub" / "g.sqlite"), "--languages", "python"
    )
    assert_one_line_error(ran, "is not a folder")


def _damage(graph: Path, how: str) -> None:
    if how == "truncated":
        data = graph.read_bytes()
        graph.write_bytes(data[: len(data) // 2])
    elif how == "garbage-tail":
        data = bytearray(graph.read_bytes())
        for i in range(4096, len(data), 97):
            data[i] ^= 0xFF
        graph.write_bytes(bytes(data))
    elif how == "no-edges":
        conn = sqlite3.connect(graph)
        conn.execute("DROP TABLE edges")
        conn.commit()
        conn.close()
    elif how == "other-version":
        conn = sqlite3.connect(graph)
        conn.execute("UPDATE meta SET value = '0' WHERE key = 'schema_version'")
        conn.commit()
        conn.close()


@pytest.mark.parametrize("how", ["truncated", "garbage-tail", "no-edges", "other-version"])
def test_f6_extract_onto_a_damaged_graph_names_full(tmp_path: Path, how: str) -> None:
    """F6 (failed before: a traceback for truncated/garbage graphs): one line naming --full, and
    --full rebuilds it."""
    repo = _small_repo(tmp_path / "repo")
    graph = tmp_path / "graph.sqlite"
    build_graph(repo, graph, ["python"])
    _damage(graph, how)
    args = ["--repo", str(repo), "--out", str(graph), "--languages", "python"]
    assert_one_line_error(run_cli("extractor", *args), "damaged", "--full")
    ran = run_cli("extractor", *args, "--full")
    assert ran.returncode == 0, ran.stderr
    with Graph(graph) as g:
        assert g.node("pkg/a.py::alpha") is not None


@pytest.mark.parametrize("how", ["truncated", "no-edges", "other-version"])
def test_f7_graph_reader_checks_schema_and_version(tmp_path: Path, how: str) -> None:
    """F7 (failed before: Graph() checked only `nodes`; a dropped `edges` table crashed inspect)."""
    repo = _small_repo(tmp_path / "repo")
    graph = tmp_path / "graph.sqlite"
    build_graph(repo, graph, ["python"])
    _damage(graph, how)
    with pytest.raises(NanodexError, match="damaged or from another version") as err:
        Graph(graph)
    assert "--full" in str(err.value)
    assert_one_line_error(run_cli("extractor.inspect", "--graph", str(graph)), "damaged", "--full")


def test_f7_flipped_text_bytes_are_one_line(tmp_path: Path) -> None:
    """F7 (failed before: UnicodeDecodeError/OperationalError traceback from a text column)."""
    repo = _small_repo(tmp_path / "repo")
    graph = tmp_path / "graph.sqlite"
    build_graph(repo, graph, ["python"])
    conn = sqlite3.connect(graph)
    conn.execute("UPDATE nodes SET signature = CAST(X'C3FFFE' AS TEXT) WHERE id = 'pkg/a.py::alpha'")
    conn.commit()
    conn.close()
    ran = run_cli(
        "extractor.export", "--graph", str(graph), "--format", "jsonl", "--out", str(tmp_path / "x.jsonl")
    )
    assert_one_line_error(ran, "damaged")
    from extractor.graph import graph_state

    assert graph_state(graph)[0] == "ok"  # the structure is fine: only a value is damaged


def test_stale_temporaries_of_killed_runs_are_removed(tmp_path: Path) -> None:
    """Smaller (failed before: `.graph.sqlite.tmp-*` of a killed run stayed forever)."""
    repo = _small_repo(tmp_path / "repo")
    graph = tmp_path / "graph.sqlite"
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = tmp_path / f".graph.sqlite.tmp-{dead.pid}-abc123"
    stale.write_bytes(b"half a graph")
    live = tmp_path / f".graph.sqlite.tmp-{os.getppid()}-def456"  # a live process's: kept
    live.write_bytes(b"being written")
    build_graph(repo, graph, ["python"])
    assert not stale.exists()
    assert live.exists()
    assert sorted(p.name for p in tmp_path.glob(".graph.sqlite.tmp-*")) == [live.name]


def test_artifacts_get_the_umask_permissions(tmp_path: Path) -> None:
    """Smaller (failed before: artifacts came out 0600, folders 0700)."""
    old = os.umask(0o022)
    try:
        repo = _small_repo(tmp_path / "repo")
        graph = tmp_path / "graph.sqlite"
        build_graph(repo, graph, ["python"])
        assert stat.S_IMODE(graph.stat().st_mode) == 0o644
        from nanodex.paths import current_umask

        assert current_umask() == 0o022
        atomic_write_text(tmp_path / "x.json", "{}")
        assert stat.S_IMODE((tmp_path / "x.json").stat().st_mode) == 0o644
        from nanodex.paths import atomic_path

        with atomic_path(tmp_path / "folder", is_dir=True) as tmp:
            (tmp / "f").write_text("x")
        assert stat.S_IMODE((tmp_path / "folder").stat().st_mode) == 0o755
    finally:
        os.umask(old)
