"""Measured test coverage on the graph: a coverage.py JSON report -> the `coverage` table.

`coverage json` lists, per file, the statement lines that ran (`executed_lines`) and those that
did not (`missing_lines`); every format version has both. Nodes get coverage.py's own regions,
so their numbers match its per-function and per-class report (format 3):
- a function or method: the statements after its `def` line, without the bodies of functions
  defined inside it (theirs), but with classes defined inside it;
- a class: the regions of its methods (its `def` lines and class-level statements run at
  import, so they say nothing about tests);
- a module: the whole file.
A node with no statement in its region (a docstring-only function, a file the report does not
list) gets no row. The report is data about the repository, read once per run; nothing of the
repository runs. Only Python files can match (coverage.py measures Python).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from nanodex.errors import NanodexError

_FUNCTIONS = ("function", "method")
_CLASSES = ("class",)


@dataclass
class CoverageReport:
    """Statement lines per repo-relative path, and the files the report names outside the repo."""

    source: str
    sha256: str
    files: dict[str, tuple[frozenset[int], frozenset[int]]]  # path -> (executed, statements)
    outside: list[str]


def load_report(path: str | Path, root: Path) -> CoverageReport:
    """Read a coverage.py JSON report; its file names, absolute or relative to `root`, become
    repo-relative paths. A missing or malformed report is a clear error, not an empty overlay."""
    report = Path(path).expanduser()
    if not report.is_absolute():
        report = Path.cwd() / report
    try:
        raw = report.read_bytes()
    except OSError as err:
        raise NanodexError(
            f"coverage report not readable: {report} ({err.__class__.__name__})",
            "run `coverage json` in the repository, or set coverage_json: null in the extract config",
        ) from err
    try:
        data = json.loads(raw)
        files = data["files"]
        if not isinstance(files, dict):
            raise TypeError("'files' is not an object")
        parsed = {
            name: (
                frozenset(int(n) for n in entry["executed_lines"]),
                frozenset(int(n) for n in entry["missing_lines"]),
            )
            for name, entry in files.items()
        }
    except (ValueError, KeyError, TypeError) as err:
        raise NanodexError(
            f"{report} is not a coverage.py JSON report ({err.__class__.__name__}: {err})",
            "write it with `coverage json -o coverage.json`",
        ) from err
    out: dict[str, tuple[frozenset[int], frozenset[int]]] = {}
    outside: list[str] = []
    for name, (executed, missing) in sorted(parsed.items()):
        rel = _repo_path(name, root)
        if rel is None:
            outside.append(name)
        else:
            out[rel] = (executed, executed | missing)
    return CoverageReport(str(report), hashlib.sha256(raw).hexdigest(), out, outside)


def _repo_path(name: str, root: Path) -> str | None:
    """`name` as a graph path (repo-relative, '/'), or None when it lies outside the repository."""
    name = name.replace("\\", "/")
    path = PurePosixPath(name)
    if path.is_absolute():
        try:
            path = PurePosixPath(Path(name).resolve().relative_to(root).as_posix())
        except ValueError:
            return None
    parts = [p for p in path.parts if p != "."]
    return "/".join(parts) if parts and ".." not in parts else None


def not_indexed(conn: sqlite3.Connection, report: CoverageReport) -> list[str]:
    """The report's repo paths that are no file of the graph (excluded, not Python, or measured
    from another folder than the repository root)."""
    indexed = {p for (p,) in conn.execute("SELECT path FROM files")}
    return sorted(p for p in report.files if p not in indexed)


def apply(conn: sqlite3.Connection, report: CoverageReport) -> int:
    """Replace the graph's coverage rows with `report`'s; returns how many nodes got one."""
    conn.execute("DELETE FROM coverage")
    rows = []
    for path, (executed, statements) in report.files.items():  # a path not in the graph has no nodes
        nodes = conn.execute(
            "SELECT id, type, start_line, end_line, parent FROM nodes WHERE path = ?", (path,)
        )
        for node_id, (statements_in, executed_in) in _regions(nodes.fetchall(), executed, statements).items():
            rows.append((node_id, path, statements_in, executed_in))
    conn.executemany("INSERT INTO coverage VALUES(?,?,?,?)", rows)
    return len(rows)


def _regions(
    nodes: list[tuple[str, str, int, int, str]], executed: frozenset[int], statements: frozenset[int]
) -> dict[str, tuple[int, int]]:
    """Node id -> (statements, executed) of its region, for one file's nodes
    (id, type, start_line, end_line, parent)."""
    by_id = {n[0]: n for n in nodes}
    funcs = {n[0]: {s for s in statements if n[2] < s <= n[3]} for n in nodes if n[1] in _FUNCTIONS}
    for node_id, _type, start, end, parent in nodes:
        if node_id not in funcs:
            continue
        ancestor = by_id.get(parent)  # the nearest enclosing function gives this body up
        while ancestor is not None and ancestor[0] not in funcs:
            ancestor = by_id.get(ancestor[4])
        if ancestor is not None:
            funcs[ancestor[0]] -= {s for s in statements if start < s <= end}
    regions = dict(funcs)
    for node_id, typ, _start, _end, parent in nodes:
        if node_id in funcs and parent in by_id and by_id[parent][1] in _CLASSES:
            regions.setdefault(parent, set()).update(funcs[node_id])
        elif typ == "module":
            regions[node_id] = set(statements)
    return {i: (len(lines), len(lines & executed)) for i, lines in regions.items() if lines}
