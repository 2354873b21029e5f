"""The graph's class hierarchy, read once: which method overrides which, and which code runs in
place of an abstract declaration.

A type checker (the SCIP indexers, extractor/scip_edges.py) types a receiver by what the code
declares or narrows to, and that is often an abstract base: `self.inner.deserialize(...)` where
`inner: FieldABC`. An abstract method never runs, so an edge to it tells a reader nothing about
the call; the code that runs is an override below it. Where one override is the nearest (the
first class on each path down that defines the name, and only one such class), the call goes
there: `FieldABC.deserialize` -> `Field.deserialize`, the base every concrete field inherits.
With several nearest overrides the declaration stays: the index's type does not say which runs.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from pathlib import Path

from tree_sitter import Node, Parser

from extractor import languages
from extractor.parse import node_text

_PYTHON_SUFFIXES = (".py", ".pyi")


class Hierarchy:
    """Methods' classes, the classes' bases and subclasses, and which methods are abstract."""

    def __init__(self, conn: sqlite3.Connection, root: Path) -> None:
        self._root = root
        self._class_of: dict[str, str] = {}
        self._method: dict[tuple[str, str], str] = {}  # (class id, name) -> method id
        for method, cls, name in conn.execute(
            "SELECT e.src_id, e.dst_id, n.name FROM edges e JOIN nodes n ON n.id = e.src_id "
            "WHERE e.kind = 'defined_in' AND n.type = 'method'"
        ):
            self._class_of[method] = cls
            self._method[(cls, name)] = method
        self._bases: dict[str, list[str]] = defaultdict(list)
        self._subclasses: dict[str, list[str]] = defaultdict(list)
        for sub, base in conn.execute(
            "SELECT src_id, dst_id FROM edges WHERE kind IN ('extends', 'implements')"
        ):
            self._bases[sub].append(base)
            self._subclasses[base].append(sub)
        self._where = {
            i: (n, p, s) for i, n, p, s in conn.execute("SELECT id, name, path, start_line FROM nodes")
        }
        self.test_files = {  # paths of test modules: their classes are no override that runs
            p
            for (p,) in conn.execute(
                "SELECT path FROM nodes WHERE type = 'module' AND json_extract(meta_json, '$.test') = 1"
            )
        }
        self._defs: dict[str, dict[int, Node]] = {}  # Python file -> its defs by `def` line
        self._instead: dict[str, str] = {}  # runs_instead, once per method

    def path(self, node: str) -> str | None:
        """The file a graph node is in (None for an id the graph lacks)."""
        where = self._where.get(node)
        return where[1] if where is not None else None

    def _ancestors(self, cls: str) -> set[str]:
        seen: set[str] = set()
        todo = [cls]
        while todo:
            for base in self._bases.get(todo.pop(), ()):
                if base not in seen:
                    seen.add(base)
                    todo.append(base)
        return seen

    def overridden_by(self, method: str, targets: dict[str, int]) -> bool:
        """Whether one of `targets` (same name assumed) overrides `method`: the index named a
        subclass's method where the receiver's narrowed type is a union or a subclass (pyright
        picks one member), while the declared type's method, the one a reader of the code
        names, is `method`; the Tree-sitter edge to it stays. An edge to an override of the
        index's target is dropped: the receiver's type names the base. So is an edge to an
        abstract declaration that an override runs in place of (`runs_instead`)."""
        cls = self._class_of.get(method)
        if cls is None or self.runs_instead(method) != method:
            return False
        for t in targets:
            other = self._class_of.get(t)
            if other is not None and cls in self._ancestors(other):
                return True
        return False

    def runs_instead(self, method: str) -> str:
        """`method`, or the one nearest override that runs in its place when `method` is an
        abstract declaration (see the module docstring). Overrides in test files do not count."""
        if method not in self._instead:
            self._instead[method] = self._nearest_concrete(method)
        return self._instead[method]

    def _nearest_concrete(self, method: str) -> str:
        cls = self._class_of.get(method)
        if cls is None or method not in self._where or cls not in self._subclasses:
            return method
        name = self._where[method][0]
        nearest: list[str] = []
        seen = {cls}
        todo = list(self._subclasses.get(cls, ()))
        while todo:
            sub = todo.pop()
            if sub in seen or self._where.get(sub, ("", "", 0))[1] in self.test_files:
                continue
            seen.add(sub)
            own = self._method.get((sub, name))
            if own is None:
                todo.extend(self._subclasses.get(sub, ()))
            elif own not in nearest:
                nearest.append(own)
        if len(nearest) == 1 and self._abstract(method) and not self._abstract(nearest[0]):
            return nearest[0]
        return method

    def _abstract(self, method: str) -> bool:
        _, path, start = self._where[method]
        if not path.endswith(_PYTHON_SUFFIXES):
            return False
        if path not in self._defs:
            self._defs[path] = _python_defs(self._root / path)
        return _python_abstract(self._defs[path].get(start))


def _python_defs(path: Path) -> dict[int, Node]:
    """A Python file's function definitions by their `def` line (1-based); {} if unreadable."""
    try:
        source = path.read_bytes()
    except OSError:
        return {}
    out: dict[int, Node] = {}
    todo = [Parser(languages.grammar("python")).parse(source).root_node]
    while todo:
        node = todo.pop()
        if node.type == "function_definition":
            out[node.start_point[0] + 1] = node
        todo.extend(node.named_children)
    return out


def _python_abstract(node: Node | None) -> bool:
    """Whether a function definition is a declaration that never runs: decorated
    `@abstractmethod`, or a body (after its docstring) that only raises NotImplementedError.
    A body of `pass` alone is a hook whose default is to do nothing, and it does run."""
    if node is None:
        return False
    parent = node.parent
    if parent is not None and parent.type == "decorated_definition":
        for child in parent.named_children:
            if (
                child.type == "decorator"
                and node_text(child).lstrip("@").strip().rsplit(".", 1)[-1] == "abstractmethod"
            ):
                return True
    body = node.child_by_field_name("body")
    statements = [c for c in (body.named_children if body is not None else []) if c.type != "comment"]
    if (
        statements
        and statements[0].type == "expression_statement"
        and statements[0].named_children[0].type == "string"
    ):
        statements = statements[1:]
    return (
        len(statements) == 1
        and statements[0].type == "raise_statement"
        and _raises_not_implemented(statements[0])
    )


def _raises_not_implemented(node: Node) -> bool:
    raised = node_text(node).removeprefix("raise").strip()
    return raised.split("(", 1)[0].strip() == "NotImplementedError"
