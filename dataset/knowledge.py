"""What the dataset may state: the brain's typed nodes plus the graph they were built from.

Loaded once: every answer is composed from these facts, every citation is checked against the
graph, and the name index answers "does anything by this name exist?" for negatives. The
indexed repository's files are read only through `Graph.source` (for short snippets), never
imported or run.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from brain.intent import path_role
from brain.nodes import load_nodes
from brain.ontology import is_public
from brain.text import split_identifier
from extractor.graph import Graph, GraphNode
from nanodex.errors import NanodexError
from nanodex.log import get_logger

log = get_logger("dataset.knowledge")

DEFINITIONS = ("function", "method", "class", "struct", "interface", "enum", "trait")
CLASS_LIKE = ("class", "struct", "interface", "enum", "trait")
_NORM = re.compile(r"[^a-z0-9]")


def norm(name: str) -> str:
    """Spelling-free form of a name: `load_config`, `loadConfig` and `LoadConfig` meet."""
    return _NORM.sub("", name.lower())


@dataclass
class Knowledge:
    graph: Graph
    brain: list[dict]
    nodes: dict[str, GraphNode]
    parent: dict[str, str]
    file_lines: dict[str, int]
    repo_reachable: bool
    names: set[str] = field(default_factory=set)  # norm() of every node name and qualname part
    words: set[str] = field(default_factory=set)  # identifier words of every node name and path
    qual_count: Counter = field(default_factory=Counter)
    module_by_name: dict[str, GraphNode] = field(default_factory=dict)
    name_index: dict[str, list[str]] = field(default_factory=dict)
    canonical: dict[str, str] = field(default_factory=dict)  # definition id -> its last same-named sibling
    _lines: dict[str, list[str]] = field(default_factory=dict)
    _resolved: dict[str, bool] = field(default_factory=dict)

    # ---- graph facts -------------------------------------------------------------------------
    def is_test(self, node: GraphNode) -> bool:
        if node.meta.get("test"):
            return True
        mod = self.nodes.get(node.path)
        return bool(mod is not None and mod.meta.get("test"))

    def asked_later(self) -> frozenset[str]:
        """Subjects asked about only after the library's own code: tests, examples and docs (by
        path, as search tiers them: `tests/__init__.py` holds test mixins the extractor does not
        mark), and a `.pyi` stub's declarations where its `.py` module defines the same qualname
        (the stub's facts repeat the implementation's, and an answer should cite the code that runs)."""
        defined = {(n.path, n.qualname) for n in self.nodes.values() if n.path.endswith(".py")}
        return frozenset(
            n.id
            for n in self.nodes.values()
            if self.is_test(n)
            or path_role(n.path) != "library"
            or (n.path.endswith(".pyi") and (n.path[:-1], n.qualname) in defined)
        )

    def public_symbols(self) -> list[str]:
        """Public functions, methods and classes outside tests: the coverage denominator.

        Public = no leading underscore (Go: exported), not a dunder, and defined at module level
        or in a public class (a function nested in a function is not API). Definitions sharing
        a file and qualname (`@overload` stubs, platform branches, Java overloads) count once.
        """
        out = []
        for n in self.nodes.values():
            if n.type not in DEFINITIONS or self.is_test(n) or not is_public(n) or n.name.startswith("__"):
                continue
            p = self.nodes.get(self.parent.get(n.id, ""))
            if p is None or p.type == "module" or (p.type in CLASS_LIKE and is_public(p)):
                out.append(self.canonical.get(n.id, n.id))
        return sorted(set(out))

    def display(self, node: GraphNode) -> str:
        """How a prompt names a symbol: its qualname, plus the module when that alone is ambiguous."""
        if self.qual_count[node.qualname] > 1:
            mod = self.nodes.get(node.path)
            return f"{node.qualname}` in `{mod.qualname if mod else node.path}"
        return node.qualname

    def by_name(self, name: str) -> list[GraphNode]:
        return [self.nodes[i] for i in self.name_index.get(name, [])]

    def module_cite(self, module_name: str) -> str | None:
        mod = self.module_by_name.get(module_name)
        return mod.citation if mod is not None else None

    # ---- names, for negatives ----------------------------------------------------------------
    def name_exists(self, ident: str) -> bool:
        """Whether any node is named like `ident` (any spelling), or the code references it by name."""
        last = ident.rsplit(".", 1)[-1]
        if norm(last) in self.names or self.graph.by_qualname(ident):
            return True
        spellings = {last, last.lower(), _camel(last), _snake(last)}
        return any(self.graph.refs(s) for s in spellings)

    # ---- source ------------------------------------------------------------------------------
    def lines(self, path: str) -> list[str]:
        if path not in self._lines:
            text = ""
            if self.repo_reachable and path in self.file_lines:
                try:
                    text = self.graph.source(path, 1, max(self.file_lines[path], 1))
                except (OSError, NanodexError):
                    text = ""
            self._lines[path] = text.splitlines()
        return self._lines[path]

    def resolves(self, citation: str) -> bool:
        """Whether `path:start-end` resolves, through `Graph.resolves` (memoized: answers repeat spans)."""
        found = self._resolved.get(citation)
        if found is None:
            found = self._resolved[citation] = self._resolves(citation)
        return found

    def _resolves(self, citation: str) -> bool:
        path, _, span = citation.rpartition(":")
        a, _, b = span.partition("-")
        if not path or not a.isdigit() or (b and not b.isdigit()):
            return False
        return self.graph.resolves(path, int(a), int(b) if b else None)


def _camel(s: str) -> str:
    parts = split_identifier(s)
    return "".join(p.capitalize() for p in parts)


def _snake(s: str) -> str:
    return "_".join(split_identifier(s))


def load_knowledge(graph_path: str, nodes_dir: str) -> Knowledge:
    """Read the graph (nodes, definitions, files) and the brain's node files; check they match."""
    graph = Graph(graph_path)
    brain = load_nodes(nodes_dir)
    if not brain:
        raise NanodexError(
            f"no brain nodes in {nodes_dir}", "run `make brain` (python -m brain --graph G) first"
        )
    nodes = {n.id: n for n in graph.nodes()}
    parent = {e.src: e.dst for e in graph.edges("defined_in")}
    files = graph.files()
    root = graph.meta("repo_root")
    reachable = bool(root) and Path(str(root)).is_dir()
    if not reachable:
        log.warning("repository root %s is not reachable: how-to answers will carry no code snippets", root)
    stale = [b["id"] for b in brain if b.get("target") and b["target"] not in nodes]
    if len(stale) > max(5, len(brain) // 20):
        raise NanodexError(
            f"{len(stale)} of {len(brain)} brain nodes in {nodes_dir} describe symbols missing from {graph_path}",
            "rebuild the brain from this graph: `make brain GRAPH=...`",
        )
    k = Knowledge(
        graph=graph,
        brain=[b for b in brain if not b.get("target") or b["target"] in nodes],
        nodes=nodes,
        parent=parent,
        file_lines={f["path"]: int(f["lines"]) for f in files},
        repo_reachable=reachable,
    )
    words: set[str] = set()
    for n in nodes.values():
        k.name_index.setdefault(n.name, []).append(n.id)
        k.names.add(norm(n.name))
        for part in n.qualname.split("."):
            k.names.add(norm(part))
        words.update(split_identifier(n.qualname))
        words.update(split_identifier(n.path.replace("/", "_").replace(".", "_")))
        if n.type in DEFINITIONS and not k.is_test(n):
            k.qual_count[n.qualname] += 1
        if n.type == "module":
            k.module_by_name[n.qualname] = n
    k.words = words
    same: dict[tuple[str, str], list[GraphNode]] = defaultdict(list)
    for n in nodes.values():
        if n.type in DEFINITIONS:
            same[(n.path, n.qualname)].append(n)
    for group in same.values():
        if len(group) > 1:
            last = max(group, key=lambda n: (n.start_line, n.id))
            for n in group:
                k.canonical[n.id] = last.id
    return k


def group_by_type(brain: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = defaultdict(list)
    for b in brain:
        out[b["type"]].append(b)
    return out
