"""Build or update the code graph: walk, diff against the last run, parse in parallel, resolve.

A re-run parses only files whose content changed and re-resolves only the files whose edges
could have changed (see `_affected`); the result equals a fresh full build. A new graph is built
in a temporary file and renamed into place; an existing one is updated in a single transaction,
so a failure never leaves a half-written graph behind.
"""

from __future__ import annotations

import gc
import hashlib
import os
import re
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from extractor import coverage, languages, scip_edges, scip_proto, scip_run, store
from extractor.config import ExtractConfig
from extractor.graph import DAMAGED, FOLDER, FOREIGN, graph_state
from extractor.modules import ModuleIndex
from extractor.parse import NODE_NAME, NODE_TYPE, FileFacts, parse_file
from extractor.resolve import resolve_facts, resolve_files
from extractor.walk import SourceFile, walk
from nanodex.errors import NanodexError
from nanodex.git import git
from nanodex.log import get_logger, progress
from nanodex.paths import atomic_path

log = get_logger("extractor")
_IN_PROCESS_MAX = 24  # below this many changed files, worker start-up costs more than it saves


@dataclass
class BuildReport:
    files: int = 0
    parsed: int = 0
    unchanged: int = 0
    deleted: int = 0
    resolved_files: int = 0
    resolved_nodes: int = 0  # nodes of other files whose repo-wide lookups were redone
    skipped: dict[str, str] = field(default_factory=dict)
    parse_errors: int = 0
    files_with_errors: int = 0
    references: dict[str, int] = field(default_factory=dict)
    coverage: dict[str, object] = field(default_factory=dict)  # report, files matched, nodes with a row
    scip: dict[str, object] = field(default_factory=dict)  # use_scip: indexers run/cached, edges changed
    seconds: float = 0.0
    full: bool = False

    def summary(self) -> str:
        refs = ", ".join(f"{k} {v}" for k, v in sorted(self.references.items()))
        cov = (
            f"coverage of {self.coverage['nodes']} nodes in {self.coverage['files']} files from "
            f"{self.coverage['report']}; "
            if self.coverage
            else ""
        )
        return (
            f"{self.files} files: {self.parsed} parsed, {self.unchanged} unchanged, {self.deleted} deleted, "
            f"{len(self.skipped)} skipped; {self.parse_errors} parse errors in {self.files_with_errors} files; "
            f"{self.resolved_files} files + {self.resolved_nodes} nodes resolved ({refs or 'no references'}); "
            f"{cov}{self._scip_summary()}{self.seconds:.2f}s"
        )

    def _scip_summary(self) -> str:
        if not self.scip:
            return ""
        e = self.scip["edges"]
        assert isinstance(e, dict)
        ran = ", ".join(f"{k} {v}" for k, v in sorted(self.scip["indexers"].items()))  # type: ignore[union-attr]
        return (
            f"scip ({ran}): {e['confirmed']} calls edges confirmed, {e['added']} added, "
            f"{e['removed']} removed; "
        )


def _fingerprint(cfg: ExtractConfig, root: Path, langs: list[str]) -> dict:
    """Settings that change what a file contributes: a mismatch forces a full rebuild."""
    return {
        "schema": store.SCHEMA_VERSION,
        "root": str(root),
        "languages": langs,
        "exclude": cfg.exclude,
        "max_file_bytes": cfg.max_file_bytes,
        "gitignore": cfg.respect_gitignore,
        **(scip_run.fingerprint() if cfg.use_scip else {}),  # absent when off: old graphs stay valid
    }


def _git_commit(root: Path) -> str | None:
    """HEAD of the git repository `root` is in; None outside one, and when that repository
    ignores `root` (a package installed in a project's venv: the project's commit says nothing
    about this code)."""

    try:
        head = git(root, "rev-parse", "HEAD", text=True, timeout=10)
        if head.returncode != 0 or git(root, "check-ignore", "-q", ".", timeout=10).returncode == 0:
            return None
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() or None


def _check_out(out: Path, force_full: bool) -> None:
    """Refuse an output path that is not a graph: never overwrite a folder or someone's file.

    A damaged graph (cut off, a table gone, another schema version) is rebuilt only on --full.
    """
    state, why = graph_state(out)
    if state == FOLDER:
        raise NanodexError(
            f"--out {out} is a folder, not a graph file",
            f"pass a file path, e.g. --out {out / 'graph.sqlite'}",
        )
    if state == FOREIGN:
        raise NanodexError(
            f"--out {out} exists and is not a nanodex code graph ({why}); refusing to overwrite it",
            "pass another --out, or move that file away",
        )
    if state == DAMAGED:
        if not force_full:
            raise NanodexError(
                f"graph {out} is damaged or from another version: {why}",
                "rebuild it with --full (`make extract ... --full`); the damaged file is then replaced",
            )
        log.warning("replacing damaged graph %s (%s)", out, why)
    for parent in out.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise NanodexError(f"--out {out}: {parent} is not a folder", "pass a path inside a folder")
            break


def _indexed_files(graph: Path) -> dict[str, tuple[int, int]] | None:
    """path -> (mtime_ns, size) of the files an existing graph indexed (None: no usable graph)."""
    if not graph.is_file():
        return None
    try:
        conn = sqlite3.connect(f"file:{graph}?mode=ro", uri=True)
        try:
            return {p: (mt, size) for p, mt, size in conn.execute("SELECT path, mtime_ns, bytes FROM files")}
        finally:
            conn.close()
    except sqlite3.Error:
        return None


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _parse_all(root: Path, files: list[SourceFile], workers: int) -> list[FileFacts | tuple[str, str]]:
    """Parse files (in processes when there are many); unreadable files come back as (path, reason)."""
    jobs = [(str(root), f.path, f.lang) for f in files]
    if len(jobs) <= _IN_PROCESS_MAX or workers == 1:
        return [_safe_parse(j) for j in progress(jobs, total=len(jobs), desc="parse", unit="file")]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        chunk = max(1, min(32, len(jobs) // (workers * 8)))
        return list(
            progress(pool.map(_safe_parse, jobs, chunksize=chunk), total=len(jobs), desc="parse", unit="file")
        )


def _safe_parse(job: tuple[str, str, str]) -> FileFacts | tuple[str, str]:
    root, path, lang = job
    try:
        return parse_file(root, path, lang)
    except OSError as err:
        return (path, f"unreadable ({err.__class__.__name__})")


_NAME_PARTS = re.compile(r"[^\w$]+")


def _affected(
    conn: sqlite3.Connection,
    changed: set[str],
    new_names: set[str],
    imports_changed: bool,
) -> tuple[set[str], dict[str, set[str]], set[str]]:
    """What to re-resolve when `changed` files change (`new_names`: the names they define now).

    Returns whole files, single nodes (path -> node ids) and files whose import edges alone
    must be rebuilt. Whole files: the changed ones, and files whose classes inherit,
    transitively, from a class in a changed file (a method lookup through `self` may now end
    elsewhere) or whose out-of-line methods belong to a type defined there (a defined_in edge
    into it). Files with any other edge into a changed file (calls, imports, depends_on ...),
    and the other files of a changed Go/Java file's package (they see its names unimported):
    their import edges, and their nodes with a reference that names a name the changed files
    define before or after the change (as its name or in its receiver); when the changed
    files' own imports changed, what they re-export may have changed, so these files are
    redone whole. Further single nodes: nodes of any file with a reference that fell through
    to the repo-wide lookup by name (via global, ambiguous or unresolved) whose name or
    receiver head a changed file defines before or after the change. Every other reference
    sees only its own file, its imports and its ancestors, none of which changed.
    """
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS changed_paths(path TEXT PRIMARY KEY)")
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS changed_names(name TEXT PRIMARY KEY)")
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS dependent_paths(path TEXT PRIMARY KEY)")
    for table in ("changed_paths", "changed_names", "dependent_paths"):
        conn.execute(f"DELETE FROM {table}")
    conn.executemany("INSERT INTO changed_paths VALUES(?)", [(p,) for p in changed])
    old_names = {
        r[0]
        for r in conn.execute(
            "SELECT name FROM nodes WHERE path IN (SELECT path FROM changed_paths) AND type != 'module'"
        )
    }
    names = old_names | new_names
    conn.executemany("INSERT OR IGNORE INTO changed_names VALUES(?)", [(n,) for n in names])
    whole = set(changed)
    whole.update(
        r[0]
        for r in conn.execute(
            """WITH RECURSIVE sub(id) AS (
               SELECT id FROM nodes WHERE path IN (SELECT path FROM changed_paths)
               UNION SELECT e.src_id FROM edges e JOIN sub ON e.dst_id = sub.id WHERE e.kind IN ('extends', 'implements'))
           SELECT DISTINCT n.path FROM sub JOIN nodes n ON n.id = sub.id"""
        )
    )
    dependents: set[str] = set()
    for path, kind in conn.execute(
        "SELECT DISTINCT e.src_path, e.kind FROM edges e JOIN nodes n ON n.id = e.dst_id "
        "WHERE n.path IN (SELECT path FROM changed_paths)"
    ):
        # An out-of-line method (C++ Foo::bar, a Go receiver, a Rust impl) whose type lives in a
        # changed file: its owner lookup may now end elsewhere; structure edges are per file.
        (whole if kind in ("defined_in", "extends", "implements") else dependents).add(path)
    dependents |= _package_mates(conn, changed)
    dependents -= whole
    partial: dict[str, set[str]] = {}
    whole_too: set[str] = set()
    if imports_changed:
        whole |= dependents
        dependents = set()
    else:
        conn.executemany("INSERT INTO dependent_paths VALUES(?)", [(p,) for p in dependents])
        for path, src, name, receiver in conn.execute(
            "SELECT path, src_id, name, receiver FROM refs WHERE path IN (SELECT path FROM dependent_paths)"
        ):
            if name in names or (receiver and not names.isdisjoint(_NAME_PARTS.split(receiver))):
                if src.startswith("@type:"):
                    whole_too.add(path)
                partial.setdefault(path, set()).add(src)
    for path, src in conn.execute(
        """SELECT DISTINCT path, src_id FROM refs WHERE via IN ('global', 'ambiguous', 'unresolved') AND (
               name IN (SELECT name FROM changed_names)
               OR substr(receiver, 1, instr(receiver || '.', '.') - 1) IN (SELECT name FROM changed_names))"""
    ):
        if path in whole:
            continue
        if src.startswith("@type:"):  # relations of a type defined elsewhere: redo the whole file
            whole_too.add(path)
            continue
        partial.setdefault(path, set()).add(src)
    whole |= whole_too
    return whole, {p: ids for p, ids in partial.items() if p not in whole}, dependents - whole


def _package_mates(conn: sqlite3.Connection, changed: set[str]) -> set[str]:
    """Go/Java: files of the changed files' packages, which see their top-level names with no
    import (so with no edge into them while such a name is still undefined)."""
    files = dict(conn.execute("SELECT path, lang FROM files ORDER BY path"))
    in_packages = [p for p in changed if files.get(p) and languages.LANGUAGES[files[p]].package_is_dir]
    if not in_packages:
        return set()
    index = ModuleIndex(files)
    mates: set[str] = set()
    for path in in_packages:
        mates.update(index.package(path.rsplit("/", 1)[0] if "/" in path else "", files[path]))
    return mates - changed


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector (forked workers inherit the pause).

    Extraction allocates millions of tuples, strings and Tree-sitter nodes, none of them in
    reference cycles, and each full collection rescans all that are alive: about a tenth of a
    full build's CPU time for nothing. Reference counting still frees everything as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def extract(cfg: ExtractConfig, force_full: bool = False) -> BuildReport:
    """Index `cfg.repo` into `cfg.out_graph` and return what was done."""
    with _gc_paused():
        return _extract(cfg, force_full)


def _extract(cfg: ExtractConfig, force_full: bool) -> BuildReport:
    t0 = time.perf_counter()
    root = Path(cfg.repo).expanduser()
    if not root.exists():
        raise NanodexError(f"repository path does not exist: {root}", "pass an existing folder with REPO=")
    if not root.is_dir():
        raise NanodexError(
            f"repository path is not a folder: {root}", "pass the repository's root folder with REPO="
        )
    root = root.resolve()
    _check_out(Path(cfg.out_graph), force_full)
    if cfg.use_scip:
        scip_run.preflight()
    langs = languages.expand(cfg.languages)
    for name in langs:
        languages.query(name)  # fail early, with the install hint, if a grammar or query is missing
    walked = walk(
        root,
        languages.by_extension(langs),
        cfg.exclude,
        cfg.max_file_bytes,
        cfg.respect_gitignore,
        None if force_full else _indexed_files(Path(cfg.out_graph)),
    )
    if not walked.files:
        reason = f" ({len(walked.skipped)} skipped: see --verbose)" if walked.skipped else ""
        raise NanodexError(
            f"no source files of {', '.join(langs)} found in {root}{reason}",
            "point REPO= at a repository with code, or adjust languages/exclude in the extract config",
        )
    cov = coverage.load_report(cfg.coverage_json, root) if cfg.coverage_json else None
    out = Path(cfg.out_graph)
    fingerprint = _fingerprint(cfg, root, langs)
    workers = cfg.workers or os.cpu_count() or 1

    if out.exists() and out.stat().st_size > 0 and not force_full:
        try:
            conn = store.connect(out)
            if store.get_meta(conn, "fingerprint") == fingerprint:
                try:
                    report = _update(conn, root, walked.files, workers, resolve_all=cfg.use_scip)
                    if cfg.use_scip and (report.parsed or report.deleted):
                        _apply_scip(conn, root, report)
                    _finish(conn, report, walked.skipped, root, fingerprint, cov)
                    conn.commit()
                except BaseException:
                    conn.rollback()
                    raise
                finally:
                    conn.close()
                report.seconds = time.perf_counter() - t0
                return report
            conn.close()
        except sqlite3.DatabaseError as err:  # damage the header check could not see
            raise NanodexError(
                f"graph {out} is damaged: {err}", "rebuild it with --full (`make extract ... --full`)"
            ) from err
        log.info("graph settings changed since the last run: full rebuild")

    with atomic_path(out) as tmp:
        conn = store.connect(tmp, bulk=True)
        try:
            report = _update(conn, root, walked.files, workers, fresh=True)
            report.full = True
            if cfg.use_scip:
                _apply_scip(conn, root, report)
            _finish(conn, report, walked.skipped, root, fingerprint, cov)
            conn.commit()
            conn.execute("PRAGMA journal_mode=DELETE")  # a single file to rename
        finally:
            conn.close()
        for suffix in ("-wal", "-shm"):
            Path(str(tmp) + suffix).unlink(missing_ok=True)
            Path(str(out) + suffix).unlink(missing_ok=True)
        # The bulk build wrote without syncing; sync once before the rename makes it the graph
        # (else the next run's first write, or its switch to WAL, pays for it).
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
    report.seconds = time.perf_counter() - t0
    return report


def _update(
    conn: sqlite3.Connection,
    root: Path,
    files: list[SourceFile],
    workers: int,
    fresh: bool = False,
    resolve_all: bool = False,
) -> BuildReport:
    """Bring the graph in `conn` up to date with `files`; `fresh`: `conn` is a new, empty graph.

    `resolve_all` (use_scip): when anything changed, every file's edges are resolved again, so
    that the SCIP overlay applies to Tree-sitter's edges as a full build has them (a changed
    file can change what the index says about calls in any other file)."""
    report = BuildReport(files=len(files))
    store.set_meta(conn, "repo_root", str(root))  # resolution reads go.mod / Cargo.toml from here
    old = {
        p: (sha, mt, size)
        for p, sha, mt, size in conn.execute("SELECT path, sha256, mtime_ns, bytes FROM files")
    }
    current = {f.path for f in files}
    deleted = set(old) - current
    to_parse: list[SourceFile] = []
    touch: list[tuple[int, str]] = []
    for f in files:
        prev = old.get(f.path)
        if prev is not None and prev[1] == f.mtime_ns and prev[2] == f.size:
            continue
        if prev is not None and prev[2] == f.size and _sha256(root / f.path) == prev[0]:
            touch.append((f.mtime_ns, f.path))
            continue
        to_parse.append(f)
    report.unchanged = len(files) - len(to_parse)
    report.deleted = len(deleted)
    conn.executemany("UPDATE files SET mtime_ns = ? WHERE path = ?", touch)
    if not to_parse and not deleted:
        return report

    results = _parse_all(root, to_parse, workers)
    parsed = [r for r in results if isinstance(r, FileFacts)]
    unreadable = [r for r in results if not isinstance(r, FileFacts)]
    report.parsed = len(parsed)
    for path, reason in unreadable:
        log.warning("skipped %s: %s", path, reason)
    if fresh:
        _build_fresh(conn, root, parsed, {f.path: f.mtime_ns for f in to_parse}, report, workers)
        return report
    changed = {f.path for f in to_parse} | deleted
    file_set_changed = bool(deleted) or any(p not in old for p in changed)
    partial: dict[str, set[str]] = {}
    imports_only: set[str] = set()
    if file_set_changed or resolve_all:
        affected = current | set(old)
    else:
        new_names = {n[NODE_NAME] for fx in parsed for n in fx.nodes if n[NODE_TYPE] != "module"}
        affected, partial, imports_only = _affected(
            conn, changed, new_names, _imports_changed(conn, parsed, changed)
        )
    store.delete_files(conn, changed)
    conn.executemany("DELETE FROM edges WHERE src_path = ?", [(p,) for p in affected])
    mtimes = {f.path: f.mtime_ns for f in to_parse}
    store.insert_facts(conn, ((fx, mtimes[fx.path]) for fx in parsed))
    present = sorted(p for p in affected if p in current)
    report.resolved_files = len(present)
    report.resolved_nodes = sum(len(ids) for ids in partial.values())
    report.references = resolve_files(conn, present, partial, sorted(imports_only & current), workers)
    return report


def _apply_scip(conn: sqlite3.Connection, root: Path, report: BuildReport) -> None:
    """use_scip: index the graph's files with the SCIP indexers (or read their cached index)
    and let the indexes confirm or replace the calls edges Tree-sitter resolution wrote."""
    files = conn.execute("SELECT path, lang, sha256 FROM files ORDER BY path").fetchall()
    runs = scip_run.indexes(root, files)
    total = scip_edges.ScipEdgeStats()
    for run in runs:
        try:
            docs = scip_proto.read_index(run.data)
        except scip_proto.ScipFormatError as err:
            raise NanodexError(
                f"use_scip: the index {run.indexer.name} wrote is malformed ({err})",
                "delete the nanodex cache's scip/ folder and run again, or set use_scip: false",
            ) from err
        stats = scip_edges.apply_index(conn, root, docs)
        for key, value in stats.as_dict().items():
            setattr(total, key, getattr(total, key) + value)
    report.scip = {"indexers": scip_run.describe(runs), "edges": total.as_dict()}


def _imports_changed(conn: sqlite3.Connection, parsed: list[FileFacts], changed: set[str]) -> bool:
    """Whether any changed file's imports differ (line numbers aside) from what the graph holds."""
    sql = "SELECT module, name, alias, wildcard FROM imports WHERE path = ? ORDER BY rowid"
    new = {fx.path: [row[1:5] for row in fx.imports] for fx in parsed}
    return any(conn.execute(sql, (path,)).fetchall() != new.get(path, []) for path in changed)


def _build_fresh(
    conn: sqlite3.Connection,
    root: Path,
    parsed: list[FileFacts],
    mtimes: dict[str, int],
    report: BuildReport,
    workers: int,
) -> None:
    """A new graph: resolve from the facts in memory, then store rows once, already final.

    Same result as inserting the facts and running `resolve_files` over every file (which an
    incremental run does for the files it touches), without reading them back through SQL and
    updating each reference and node afterwards.
    """
    batch = [(fx, mtimes[fx.path]) for fx in parsed]

    def while_resolving() -> None:
        store.insert_unresolved(conn, batch)
        store.create_indexes(conn, ("nodes", "imports"))

    refs = store.ResolvedRefs(conn, batch)
    resolution = resolve_facts(
        conn, parsed, root, workers, while_waiting=while_resolving, on_progress=refs.add
    )
    store.merge_node_meta(conn, batch, resolution.meta)
    store.create_indexes(conn)
    report.resolved_files = len(parsed)
    report.references = resolution.stats


def _finish(
    conn: sqlite3.Connection,
    report: BuildReport,
    skipped: dict[str, str],
    root: Path,
    fingerprint: dict,
    cov: coverage.CoverageReport | None,
) -> None:
    """Record what was skipped and the run's settings. A run that changed nothing writes
    nothing (no transaction to commit, no WAL to checkpoint, `updated_at` kept, so later stages
    do not see a stale graph)."""
    changed = bool(report.full or report.parsed or report.deleted)
    if dict(conn.execute("SELECT path, reason FROM skipped")) != skipped:
        conn.execute("DELETE FROM skipped")
        conn.executemany("INSERT INTO skipped VALUES(?, ?)", sorted(skipped.items()))
        changed = True
    report.skipped = skipped
    changed = _sync_coverage(conn, cov, changed, report) or changed
    report.parse_errors, report.files_with_errors = conn.execute(
        "SELECT COALESCE(SUM(parse_errors), 0), COALESCE(SUM(parse_errors > 0), 0) FROM files"
    ).fetchone()
    for key, value in (("fingerprint", fingerprint), ("commit", _git_commit(root))):
        if changed or store.get_meta(conn, key) != value:
            store.set_meta(conn, key, value)
            changed = True
    if changed:
        store.set_meta(conn, "updated_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))


def _sync_coverage(
    conn: sqlite3.Connection, cov: coverage.CoverageReport | None, graph_changed: bool, report: BuildReport
) -> bool:
    """Keep the coverage table in step with the report: re-applied when the graph or the report
    changed, emptied when the config no longer names one. Returns whether it wrote."""
    stamp = {"report": cov.source, "sha256": cov.sha256} if cov is not None else None
    wrote = graph_changed or store.get_meta(conn, "coverage") != stamp
    if wrote:
        if cov is None:
            conn.execute("DELETE FROM coverage")
            conn.execute("DELETE FROM meta WHERE key = 'coverage'")
        else:
            coverage.apply(conn, cov)
            store.set_meta(conn, "coverage", stamp)
    if cov is not None:
        nodes, files = conn.execute("SELECT COUNT(*), COUNT(DISTINCT path) FROM coverage").fetchone()
        not_indexed = coverage.not_indexed(conn, cov)
        report.coverage = {
            "report": cov.source,
            "files": files,
            "nodes": nodes,
            "outside_repo": len(cov.outside),
            "not_indexed": len(not_indexed),
        }
        if wrote and (cov.outside or not_indexed):
            log.warning(
                "coverage report %s: %d files outside the repository and %d not in the graph ignored "
                "(e.g. %s); paths are read relative to the repository root",
                cov.source,
                len(cov.outside),
                len(not_indexed),
                (cov.outside + not_indexed)[0],
            )
    return wrote
