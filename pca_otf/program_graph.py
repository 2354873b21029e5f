"""ProgramGraph: the one interface pca_otf reads a program through.

Embedding, selection, packing and citation checking only need a handful of questions answered
about a program (its entities and relations, what references a name, what lies near a node,
which files and tests exist, whether a `path:line` citation points at real code). Putting them
behind a small Protocol lets another code graph (a SCIP index, a language server, a remote
service) stand in for nanodex's SQLite graph through `--pg-backend module:Factory` without
touching the rest of pca_otf. The default backend, `SqliteProgramGraph`, wraps the extractor's
reader API (`extractor.graph.Graph`) and never writes SQL of its own.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from answer.citations import Symbol
from extractor.graph import Graph
from nanodex.errors import NanodexError

# `path:line` or `path:start-end`; the path may itself hold ':' (Windows drive, odd names), so the
# line part is matched at the end.
_URI = re.compile(r"^(?P<path>.+?):(?P<start>\d+)(?:-(?P<end>\d+))?$")


@dataclass(frozen=True)
class Entity:
    """A definition in the program (module, class, function, method, ...), lines 1-based inclusive."""

    id: str
    kind: str
    name: str
    qualname: str
    path: str
    start_line: int
    end_line: int
    signature: str
    doc: str
    lang: str
    hash: str

    @property
    def citation(self) -> str:
        """`path:start-end`, the form answers cite."""
        return f"{self.path}:{self.start_line}-{self.end_line}"


@dataclass(frozen=True)
class Relation:
    """A directed edge: `src` calls/imports/extends/... `dst` (kinds as in DESIGN.md)."""

    src: str
    dst: str
    kind: str


@dataclass(frozen=True)
class Resolved:
    """Where a citation points: the artifact (`path:start-end`), its line span and the file's hash.

    The hash is the sha256 of the file as it was indexed, so a verifier can tell a citation into
    code that changed since the build from one into the code the answer was conditioned on.
    """

    artifact_uri: str
    span: tuple[int, int]
    hash: str

    def to_dict(self) -> dict:
        return {"artifact_uri": self.artifact_uri, "span": list(self.span), "hash": self.hash}


@runtime_checkable
class ProgramGraph(Protocol):
    """What pca_otf asks of a program. Backends implement these eight methods."""

    def entities(self) -> Iterator[Entity]:
        """Every entity, in a stable order (by id)."""
        ...

    def edges(self) -> Iterator[Relation]:
        """Every relation, in a stable order."""
        ...

    def search_refs(self, token: str) -> list[Entity]:
        """Entities defining `token` (by name or qualname) first, then entities referencing it."""
        ...

    def subgraph(self, seeds: Sequence[str], radius: int) -> list[str]:
        """Ids of the entities within `radius` relations of the seeds (either direction), sorted."""
        ...

    def artifacts(self, kind: str) -> list[dict]:
        """`file`: {path, sha256, bytes, lang}; `test`: {id, qualname, path, start_line, end_line, pytest_id}."""
        ...

    def resolve(self, uri: str) -> Resolved | None:
        """`path:line`, `path:start-end` or an entity id -> where it points; None if it points nowhere."""
        ...

    def source(self, path: str, start: int, end: int) -> str:
        """Lines start..end (1-based, inclusive) of a file of the program."""
        ...

    def commit(self) -> str | None:
        """The revision the graph was built from (a git commit), if known."""
        ...


ARTIFACT_KINDS = ("file", "test")


class SqliteProgramGraph:
    """ProgramGraph over nanodex's code graph (work/graph.sqlite), through extractor.graph.Graph."""

    def __init__(self, graph_path: str | Path) -> None:
        self.path = Path(graph_path)
        self.graph = Graph(self.path)
        self._files: dict[str, dict] | None = None

    def close(self) -> None:
        self.graph.close()

    def __enter__(self) -> SqliteProgramGraph:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- the Protocol ------------------------------------------------------------------------
    def entities(self) -> Iterator[Entity]:
        for n in self.graph.nodes():
            yield _entity(n)

    def edges(self) -> Iterator[Relation]:
        for e in self.graph.edges():
            yield Relation(e.src, e.dst, e.kind)

    def search_refs(self, token: str) -> list[Entity]:
        out: dict[str, Entity] = {}
        rows = self.graph.conn.execute(
            "SELECT id FROM nodes WHERE name = ? OR qualname = ? ORDER BY id", (token, token)
        ).fetchall()
        for (node_id,) in rows:
            n = self.graph.node(node_id)
            if n is not None:
                out.setdefault(n.id, _entity(n))
        for n, _line in self.graph.refs(token):
            out.setdefault(n.id, _entity(n))
        return list(out.values())

    def subgraph(self, seeds: Sequence[str], radius: int) -> list[str]:
        if radius < 0:
            raise NanodexError(f"subgraph radius must be >= 0, got {radius}", "pass a radius of 0 or more")
        nodes, _ = self.graph.subgraph(list(seeds), radius)
        return sorted(n.id for n in nodes)

    def artifacts(self, kind: str) -> list[dict]:
        if kind == "file":
            return [
                {"path": f["path"], "sha256": f["sha256"], "bytes": f["bytes"], "lang": f["lang"]}
                for f in self.graph.files()
            ]
        if kind == "test":
            out = []
            for n in self.graph.nodes():
                pid = n.meta.get("pytest_id")
                if pid:
                    out.append(
                        {
                            "id": n.id,
                            "qualname": n.qualname,
                            "path": n.path,
                            "start_line": n.start_line,
                            "end_line": n.end_line,
                            "pytest_id": pid,
                        }
                    )
            return out
        raise NanodexError(f"unknown artifact kind '{kind}'", f"use one of: {', '.join(ARTIFACT_KINDS)}")

    def resolve(self, uri: str) -> Resolved | None:
        uri = uri.strip()
        node = self.graph.node(uri)
        if node is not None:
            return self._resolved(node.path, node.start_line, node.end_line)
        m = _URI.match(uri)
        if not m:
            return None
        path = m["path"].strip().removeprefix("./")
        start = int(m["start"])
        end = int(m["end"]) if m["end"] else start
        if not self.graph.resolves(path, start, end):
            return None
        return self._resolved(path, start, end)

    def source(self, path: str, start: int, end: int) -> str:
        try:
            return self.graph.source(path, start, end)
        except OSError as err:
            raise NanodexError(
                f"cannot read {path} of the indexed repository ({err.__class__.__name__})",
                "re-run `make extract` on the repository the graph was built from",
            ) from err

    def commit(self) -> str | None:
        value = self.graph.meta("commit")
        return str(value) if value else None

    # ---- helpers (not part of the Protocol) --------------------------------------------------
    def _file(self, path: str) -> dict | None:
        if self._files is None:
            self._files = {f["path"]: f for f in self.graph.files()}
        return self._files.get(path)

    def _resolved(self, path: str, start: int, end: int) -> Resolved:
        f = self._file(path)
        return Resolved(f"{path}:{start}-{end}", (start, end), str(f["sha256"]) if f else "")


def _entity(n: object) -> Entity:
    return Entity(
        id=n.id,  # type: ignore[attr-defined]
        kind=n.type,  # type: ignore[attr-defined]
        name=n.name,  # type: ignore[attr-defined]
        qualname=n.qualname or "",  # type: ignore[attr-defined]
        path=n.path,  # type: ignore[attr-defined]
        start_line=int(n.start_line or 0),  # type: ignore[attr-defined]
        end_line=int(n.end_line or 0),  # type: ignore[attr-defined]
        signature=n.signature or "",  # type: ignore[attr-defined]
        doc=n.doc or "",  # type: ignore[attr-defined]
        lang=n.lang or "",  # type: ignore[attr-defined]
        hash=n.hash or "",  # type: ignore[attr-defined]
    )


def load_program_graph(graph_path: str | Path, backend: str | None = None) -> ProgramGraph:
    """The program graph at `graph_path`, read by `backend` ("module:Factory") or by SQLite.

    `Factory(graph_path)` must return an object with the ProgramGraph methods; a spec that does
    not import, does not name a callable, or yields something else is a one-line error.
    """
    if not backend:
        return SqliteProgramGraph(graph_path)
    fix = "pass --pg-backend as module:Factory, e.g. pca_otf.program_graph:SqliteProgramGraph"
    module_name, sep, attr = backend.partition(":")
    if not sep or not module_name or not attr:
        raise NanodexError(f"bad --pg-backend '{backend}': expected module:Factory", fix)
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise NanodexError(f"--pg-backend module '{module_name}' does not import ({err})", fix) from err
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise NanodexError(f"--pg-backend: '{module_name}' has no callable '{attr}'", fix)
    pg = factory(graph_path)
    if not isinstance(pg, ProgramGraph):
        missing = [
            m
            for m in (
                "entities",
                "edges",
                "search_refs",
                "subgraph",
                "artifacts",
                "resolve",
                "source",
                "commit",
            )
            if not callable(getattr(pg, m, None))
        ]
        raise NanodexError(
            f"--pg-backend '{backend}' returned a {type(pg).__name__} without {', '.join(missing)}",
            "implement the pca_otf.program_graph.ProgramGraph methods",
        )
    return pg


class EntityIndex:
    """An in-memory view of any ProgramGraph: entities by id and by file, and the adjacency.

    Selection, packing and citation repair ask many small questions per answer (which symbol
    holds this line, how far is this node from the question's best hit); answering them from
    memory keeps a question under a second and works the same for every backend, since it is
    built only from `entities()` and `edges()`. Loaded once per Runner.
    """

    def __init__(self, pg: ProgramGraph) -> None:
        self.by_id: dict[str, Entity] = {e.id: e for e in pg.entities()}
        self.by_path: dict[str, list[Entity]] = {}
        for e in self.by_id.values():
            self.by_path.setdefault(e.path, []).append(e)
        for ents in self.by_path.values():
            ents.sort(key=lambda e: (e.start_line, -e.end_line, e.id))
        self.adj: dict[str, set[str]] = {}
        self.edge_count = 0
        for r in pg.edges():
            if r.src in self.by_id and r.dst in self.by_id and r.src != r.dst:
                self.adj.setdefault(r.src, set()).add(r.dst)
                self.adj.setdefault(r.dst, set()).add(r.src)
                self.edge_count += 1

    def get(self, entity_id: str) -> Entity | None:
        return self.by_id.get(entity_id)

    def at(self, path: str, line: int) -> Entity | None:
        """The innermost entity of `path` whose span holds `line` (None outside every entity)."""
        best = None
        for e in self.by_path.get(path, ()):
            if e.start_line <= line <= e.end_line and (
                best is None or e.end_line - e.start_line < best.end_line - best.start_line
            ):
                best = e
        return best

    def distances(self, seeds: Sequence[str], radius: int) -> dict[str, int]:
        """Hop distance (either direction) from the nearest seed, for nodes within `radius`."""
        dist = {s: 0 for s in seeds if s in self.by_id}
        frontier = list(dist)
        for d in range(1, radius + 1):
            nxt = []
            for node in frontier:
                for other in sorted(self.adj.get(node, ())):
                    if other not in dist:
                        dist[other] = d
                        nxt.append(other)
            frontier = nxt
        return dist

    def degree(self, entity_id: str) -> int:
        return len(self.adj.get(entity_id, ()))


class EntitySymbols:
    """answer.citations.SymbolTable over any ProgramGraph (through its EntityIndex), so the
    runner's answers are checked by the same code as the query CLI's."""

    def __init__(self, pg: ProgramGraph, index: EntityIndex) -> None:
        self.pg = pg
        self.index = index
        self._by_name: dict[str, list[Symbol]] = {}
        for e in index.by_id.values():
            if e.kind == "module":
                continue
            for key in {e.name, e.qualname}:
                if key:
                    self._by_name.setdefault(key, []).append(_symbol(e))

    def resolves(self, path: str, start: int, end: int) -> bool:
        return start <= end and self.pg.resolve(f"{path}:{start}-{end}") is not None

    def file_lines(self, path: str) -> int | None:
        if self.pg.resolve(f"{path}:1") is None:
            return None
        return max((e.end_line for e in self.index.by_path.get(path, ())), default=1)

    def paths(self) -> Sequence[str]:
        return sorted(self.index.by_path)

    def named(self, name: str) -> list[Symbol]:
        return list(self._by_name.get(name, ()))

    def at(self, path: str, line: int) -> Symbol | None:
        e = self.index.at(path, line)
        return _symbol(e) if e is not None and e.kind != "module" else None


def _symbol(e: Entity) -> Symbol:
    return Symbol(e.path, e.start_line, e.end_line, e.name, e.qualname or e.name, e.kind)
