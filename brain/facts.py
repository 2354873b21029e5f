"""The graph read once into memory: nodes, relations by kind, and source lines on demand.

The ontology and the search index look at every node's callers, callees, children and raise
sites; asking the graph one node at a time would cost one query per node and relation, so this
module reads nodes and edges in bulk through the `Graph` reader API and indexes them here.
Source files are read through `Graph.source`, once per file, and never imported or run.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from extractor.graph import Graph, GraphNode
from nanodex.errors import NanodexError
from nanodex.log import get_logger

log = get_logger("brain.facts")

DEFINITIONS = ("function", "method", "class", "struct", "interface", "enum", "trait")
CLASS_LIKE = ("class", "struct", "interface", "enum", "trait")
CALLABLES = ("function", "method")


@dataclass(frozen=True)
class Rel:
    """One edge seen from a node: the node at the other end, and the source line when known."""

    other: str
    line: int


@dataclass
class GraphFacts:
    """Everything the brain needs from the graph, indexed for constant-time lookups."""

    graph: Graph
    nodes: dict[str, GraphNode]
    file_lines: dict[str, int]
    out: dict[str, dict[str, list[Rel]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    inc: dict[str, dict[str, list[Rel]]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(list))
    )
    children: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    parent: dict[str, str] = field(default_factory=dict)
    repo_root: Path | None = None
    _sources: OrderedDict[str, list[str]] = field(default_factory=OrderedDict)

    def outgoing(self, node_id: str, kind: str) -> list[Rel]:
        return self.out.get(node_id, {}).get(kind, [])

    def incoming(self, node_id: str, kind: str) -> list[Rel]:
        return self.inc.get(node_id, {}).get(kind, [])

    def module_of(self, node_id: str) -> str:
        """The id of the file (module) node holding `node_id`."""
        node = self.nodes[node_id]
        return node.path

    def is_test(self, node: GraphNode) -> bool:
        """Test functions and everything in test files (the extractor marks both)."""
        if node.meta.get("test"):
            return True
        file_node = self.nodes.get(node.path)
        return bool(file_node is not None and file_node.meta.get("test"))

    def lines(self, path: str) -> list[str]:
        """The lines of an indexed file (empty when the repository is not reachable any more).

        Read once per file through `Graph.source` and kept in a small LRU cache, since callers
        walk nodes file by file.
        """
        cached = self._sources.get(path)
        if cached is not None:
            self._sources.move_to_end(path)
            return cached
        lines: list[str] = []
        if self.repo_root is not None and path in self.file_lines:
            try:
                lines = self.graph.source(path, 1, max(self.file_lines[path], 1)).splitlines()
            except (OSError, NanodexError):
                lines = []
        self._sources[path] = lines
        if len(self._sources) > 256:
            self._sources.popitem(last=False)
        return lines

    def line(self, path: str, number: int) -> str:
        lines = self.lines(path)
        return lines[number - 1] if 1 <= number <= len(lines) else ""


def load_facts(graph: Graph) -> GraphFacts:
    """Read all nodes and edges of `graph` (bulk reads through the reader API)."""
    nodes = {n.id: n for n in graph.nodes()}
    if not nodes:
        raise NanodexError(f"code graph {graph.path} holds no nodes", "run `make extract REPO=<repo>` first")
    file_lines = {f["path"]: int(f["lines"]) for f in graph.files()}
    root = graph.meta("repo_root")
    facts = GraphFacts(graph=graph, nodes=nodes, file_lines=file_lines)
    facts.repo_root = Path(str(root)) if root and Path(str(root)).is_dir() else None
    if facts.repo_root is None:
        log.warning("repository root %s is not reachable: summaries will lack code excerpts", root)
    for e in graph.edges():
        if e.src not in nodes or e.dst not in nodes:  # `@type:` pseudo sources (Rust impls) and strays
            continue
        line = int(e.meta.get("line", 0) or 0)
        facts.out[e.src][e.kind].append(Rel(e.dst, line))
        facts.inc[e.dst][e.kind].append(Rel(e.src, line))
        if e.kind == "defined_in":
            facts.children[e.dst].append(e.src)
            facts.parent[e.src] = e.dst
    for kids in facts.children.values():
        kids.sort(key=lambda i: (nodes[i].start_line, i) if i in nodes else (0, i))
    return facts
