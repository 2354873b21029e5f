"""Optional SCIP ingestion (`use_scip`, issue 16): the index reader, the edges the real
scip-python indexer confirms, adds and removes, the cached index, and the one-line errors when
Node.js or npm cannot run it."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from extractor.build import extract
from extractor.config import ExtractConfig
from extractor.scip_edges import apply_index
from extractor.scip_proto import Document, Occurrence, ScipFormatError, descriptor_name, read_index

FIXTURE = Path(__file__).parent / "fixtures" / "python_scip"
ROOT = Path(__file__).resolve().parents[1]


# ---- the wire-format reader -------------------------------------------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def test_read_index_decodes_documents_and_skips_unknown_fields() -> None:
    packed_range = b"".join(_varint(v) for v in (4, 8, 12))
    occurrence = (
        _field(1, packed_range)
        + _field(2, b"scip-python python pkg 0 mod/Cls#meth().")
        + _field(3, 1)
        + _field(5, 15)  # syntax_kind: not read
        + _varint(9 << 3 | 5)
        + b"\0\0\0\0"  # an unknown fixed32 field
    )
    unpacked = _field(1, 2) + _field(1, 3) + _field(1, 4) + _field(1, 9) + _field(2, b"local 3")
    document = _field(4, b"python") + _field(1, b"src/mod.py") + _field(2, occurrence) + _field(2, unpacked)
    index = _field(1, _field(3, b"file:///x")) + _field(2, document) + _field(3, _field(1, b"ext"))
    (doc,) = read_index(index)
    assert doc.path == "src/mod.py"
    first, second = doc.occurrences
    assert (first.line, first.start_col, first.end_col, first.is_definition) == (4, 8, 12, True)
    assert first.symbol.endswith("Cls#meth().")
    assert (second.line, second.start_col, second.end_col, second.is_definition) == (2, 3, 9, False)
    with pytest.raises(ScipFormatError):
        read_index(index[:-3])


@pytest.mark.parametrize(
    ("symbol", "name"),
    [
        ("scip-python python pkg 0 mod/Cls#meth().", "meth"),
        ("scip-python python pkg 0 mod/Cls#", "Cls"),
        ("scip-python python pkg 0 mod/CONST.", "CONST"),
        ("scip-python python pkg 0 `pkg.sub`/__init__:", "__init__"),
        ("scip-typescript npm pkg 1.0 src/`a.ts`/Cls#`<constructor>`().", "<constructor>"),
        ("scip-python python pkg 0 mod/f().(arg)", "arg"),
        ("local 12", ""),
    ],
)
def test_descriptor_name(symbol: str, name: str) -> None:
    assert descriptor_name(symbol) == name


# ---- bad environments: one line, before any work ------------------------------------------------
def _cli(repo: Path, out: Path, path_env: str, cache: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": path_env, "NANODEX_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "extractor", "--repo", str(repo), "--out", str(out), "--languages", "python",
         "--use-scip"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )  # fmt: skip


def test_missing_node_is_one_line_error(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    out = tmp_path / "graph.sqlite"
    proc = _cli(FIXTURE, out, str(empty), tmp_path / "cache")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("nanodex: error: use_scip: `node` not found on PATH")
    assert "(fix: install Node.js" in lines[0]
    assert not out.exists()


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to get past the node check")
def test_failed_npm_install_is_one_line_error(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "node").symlink_to(shutil.which("node"))  # type: ignore[arg-type]
    npm = bin_dir / "npm"
    npm.write_text("#!/bin/sh\necho 'npm ERR! 404 Not Found - GET https://registry/x' >&2\nexit 1\n")
    npm.chmod(0o755)
    out = tmp_path / "graph.sqlite"
    proc = _cli(FIXTURE, out, str(bin_dir), tmp_path / "cache")
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.strip().splitlines() if not ln.startswith("I ")]
    assert len(lines) == 1, proc.stderr
    assert "npm install of @sourcegraph/scip-python@" in lines[0] and "404 Not Found" in lines[0]
    assert not out.exists()
    assert not list((tmp_path / "cache" / "scip").glob("npm-*"))  # no half-installed tools kept


# ---- the real indexer ---------------------------------------------------------------------------
def _calls(graph: Path) -> dict[tuple[str, str], dict]:
    conn = sqlite3.connect(graph)
    try:
        return {
            (s.split("::")[-1], d.split("::")[-1]): json.loads(m)
            for s, d, m in conn.execute("SELECT src_id, dst_id, meta_json FROM edges WHERE kind = 'calls'")
        }
    finally:
        conn.close()


def _meta(graph: Path, node: str) -> dict:
    conn = sqlite3.connect(graph)
    try:
        return json.loads(conn.execute("SELECT meta_json FROM nodes WHERE id = ?", (node,)).fetchone()[0])
    finally:
        conn.close()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("node") is None or shutil.which("npm") is None, reason="needs node and npm")
def test_scip_confirms_adds_and_removes_calls_and_reuses_its_index(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NANODEX_CACHE", str(tmp_path / "cache"))
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURE, repo)
    plain = tmp_path / "plain.sqlite"
    extract(ExtractConfig(repo=str(repo), out_graph=str(plain), languages=["python"], workers=1))
    before = _calls(plain)
    graph = tmp_path / "scip.sqlite"
    cfg = ExtractConfig(repo=str(repo), out_graph=str(graph), languages=["python"], workers=1, use_scip=True)

    first = extract(cfg)
    assert first.scip["indexers"]["scip-python"].startswith("indexed 2 files")  # type: ignore[index]
    after = _calls(graph)
    # Tree-sitter alone: `shape = make(); shape.area()` has two candidates, no edge.
    assert ("total", "Circle.area") not in before
    assert "area" in {a["name"] for a in _meta(plain, "lib/shapes.py::total")["ambiguous"]}
    assert after[("total", "Circle.area")] == {"confidence": 1.0, "line": 30, "via": "scip"}
    assert ("total", "Square.area") not in after
    assert "ambiguous" not in _meta(graph, "lib/shapes.py::total")  # the decided site's candidates go
    assert after[("pick", "Square.area")]["via"] == "scip"  # items[0].area(): list[Square]
    assert after[("pick", "Circle.area")]["via"] == "scip"  # make().area()
    # Confirmed: an edge Tree-sitter had, now via scip.
    assert before[("total", "make")]["via"] == "scope"
    assert after[("total", "make")]["via"] == "scip"
    # Removed: the global fallback bound the builtin file object's readline to a repo method.
    assert before[("first_line", "Log.readline")]["via"] == "global"
    assert ("first_line", "Log.readline") not in after
    edges = first.scip["edges"]
    assert edges["added"] >= 3 and edges["removed"] >= 1 and edges["confirmed"] >= 1  # type: ignore[index]

    index = next((tmp_path / "cache" / "scip" / "index").rglob("scip-python.scip"))
    stamp = index.stat().st_mtime_ns
    second = extract(cfg)  # nothing changed: nothing to do
    assert second.parsed == 0 and second.scip == {}
    third = extract(cfg, force_full=True)  # rebuilt from scratch, same files: the cached index
    assert third.scip["indexers"] == {"scip-python": "cached"}
    assert index.stat().st_mtime_ns == stamp
    assert _calls(graph) == after

    # A change: the index is rebuilt, and the incremental graph equals a full build's.
    (repo / "lib" / "__init__.py").write_text("# changed\n", encoding="utf-8")
    fourth = extract(cfg)
    assert fourth.parsed == 1
    assert fourth.scip["indexers"]["scip-python"].startswith("indexed")  # type: ignore[index]
    assert _calls(graph) == after
    full = tmp_path / "full.sqlite"
    extract(
        ExtractConfig(repo=str(repo), out_graph=str(full), languages=["python"], workers=1, use_scip=True)
    )
    assert _calls(full) == after
    # Switched off again: the graph's settings changed, so it is rebuilt without the overlay.
    off = extract(ExtractConfig(repo=str(repo), out_graph=str(graph), languages=["python"], workers=1))
    assert off.full and off.scip == {}
    assert _calls(graph) == before


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("node") is None or shutil.which("npm") is None, reason="needs node and npm")
def test_scip_typescript_covers_ts_tsx_and_js(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NANODEX_CACHE", str(tmp_path / "cache"))
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURE.parent / "typescript", repo / "ts")
    shutil.copytree(FIXTURE.parent / "javascript", repo / "js")
    graph = tmp_path / "g.sqlite"
    report = extract(ExtractConfig(repo=str(repo), out_graph=str(graph), workers=1, use_scip=True))
    assert report.scip["indexers"]["scip-typescript"].startswith("indexed 12 files")  # type: ignore[index]
    calls = _calls(graph)
    assert calls[("BaseStore.get", "NotFoundError")]["via"] == "scip"  # `new C()`: the class, as in the graph
    assert calls[("UserBadge", "initials")]["via"] == "scip"  # .tsx is indexed too
    conn = sqlite3.connect(graph)
    try:
        js = conn.execute(
            "SELECT COUNT(*) FROM edges WHERE kind = 'calls' AND src_path LIKE 'js/%' AND meta_json LIKE '%scip%'"
        ).fetchone()[0]
    finally:
        conn.close()
    assert js > 0  # and plain JavaScript


# ---- the edge rewrite, on hand-made indexes (no indexer needed) ---------------------------------
def _occ(line: int, text: str, word: str, symbol: str, definition: bool = False) -> Occurrence:
    col = text.index(word)
    return Occurrence(line - 1, col, col + len(word), symbol, 1 if definition else 8)


def test_index_replaces_contradicted_edges_but_keeps_the_overridden_method(tmp_path: Path) -> None:
    graph = tmp_path / "g.sqlite"
    extract(ExtractConfig(repo=str(FIXTURE), out_graph=str(graph), languages=["python"], workers=1))
    before = _calls(graph)
    assert before[("go", "Base.run")]["via"] != "scip" and before[("go_fast", "Fast.run")]["via"] != "scip"
    lines = (FIXTURE / "lib" / "shapes.py").read_text(encoding="utf-8").splitlines()
    at = {text.strip(): n for n, text in enumerate(lines, 1)}
    pkg = "scip-python python repo 0 lib.shapes/"
    base_run, fast_run = pkg + "Base#run().", pkg + "Fast#run()."
    occurrences = [
        _occ(at["class Base:"] + 1, lines[at["class Base:"]], "run", base_run, definition=True),
        _occ(at["class Fast(Base):"] + 1, lines[at["class Fast(Base):"]], "run", fast_run, definition=True),
        # `go(job: Base)`: the index narrows to the override; `go_fast(job: Fast)`: names the base.
        _occ(at["def go(job: Base):"] + 1, lines[at["def go(job: Base):"]], "run", fast_run),
        _occ(at["def go_fast(job: Fast):"] + 1, lines[at["def go_fast(job: Fast):"]], "run", base_run),
        # A builtin: decided, external, so the global guess into Log.readline goes.
        _occ(at["return handle.readline()"], lines[at["return handle.readline()"] - 1], "readline",
             "scip-python python python-stdlib 3.11 io/TextIOWrapper#readline()."),
    ]  # fmt: skip
    conn = sqlite3.connect(graph)
    try:
        stats = apply_index(conn, FIXTURE, [Document("lib/shapes.py", occurrences)])
        conn.commit()
    finally:
        conn.close()
    after = _calls(graph)
    assert after[("go", "Fast.run")]["via"] == "scip"
    assert after[("go", "Base.run")] == before[("go", "Base.run")]  # the declared type's method stays
    assert after[("go_fast", "Base.run")]["via"] == "scip"
    assert ("go_fast", "Fast.run") not in after  # an override of the index's target: dropped
    assert ("first_line", "Log.readline") not in after
    assert (stats.to_repo, stats.external, stats.added, stats.removed) == (2, 1, 2, 2)
    # Sites the index says nothing about keep their Tree-sitter edges.
    assert after[("total", "make")] == before[("total", "make")]


def test_index_naming_an_abstract_declaration_edges_to_the_override_that_runs(tmp_path: Path) -> None:
    """`codec: Codec` types the receiver by an abstract base: the edge goes to the one nearest
    override (`TextCodec`, not its subclass `UpperCodec`); a `pass` hook runs and keeps its edge;
    with two nearest overrides the declaration stays."""
    graph = tmp_path / "g.sqlite"
    extract(ExtractConfig(repo=str(FIXTURE), out_graph=str(graph), languages=["python"], workers=1))
    lines = (FIXTURE / "lib" / "shapes.py").read_text(encoding="utf-8").splitlines()

    def line_of(prefix: str, after: str = "") -> int:
        """1-based number of the first line starting with `prefix` (stripped), below `after`."""
        start = lines.index(after) if after else 0
        return next(n for n, t in enumerate(lines[start:], start + 1) if t.strip().startswith(prefix))

    pkg = "scip-python python repo 0 lib.shapes/"
    occurrences = []
    for cls, method in (("Codec", "pack"), ("Codec", "unpack"), ("Codec", "reset"), ("Pair", "first")):
        n = line_of(f"def {method}(", after=f"class {cls}(ABC):")
        occurrences.append(_occ(n, lines[n - 1], method, f"{pkg}{cls}#{method}().", definition=True))
    for caller, method, cls in (("send", "pack", "Codec"), ("receive", "unpack", "Codec"),
                                ("restart", "reset", "Codec"), ("head", "first", "Pair")):  # fmt: skip
        n = line_of(f"def {caller}(") + 1
        occurrences.append(_occ(n, lines[n - 1], method, f"{pkg}{cls}#{method}()."))
    conn = sqlite3.connect(graph)
    try:
        apply_index(conn, FIXTURE, [Document("lib/shapes.py", occurrences)])
        conn.commit()
    finally:
        conn.close()
    after = _calls(graph)
    assert after[("send", "TextCodec.pack")]["via"] == "scip"  # @abstractmethod with a docstring body
    assert after[("receive", "TextCodec.unpack")]["via"] == "scip"  # raise NotImplementedError(...)
    assert ("send", "Codec.pack") not in after and ("send", "UpperCodec.pack") not in after
    assert ("receive", "Codec.unpack") not in after
    assert after[("restart", "Codec.reset")]["via"] == "scip"  # a do-nothing hook runs
    assert after[("head", "Pair.first")]["via"] == "scip"  # LeftPair or RightPair: not said
