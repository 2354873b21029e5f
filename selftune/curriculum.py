"""Curriculum: the order in which modules are self-tuned.

Modules that can be verified best come first: those with mapped tests, then those whose
functions are covered by tests (a mapped test, or lines run in the coverage.py report the graph
was built with), then those many other modules call (a high in-degree means
more of the program depends on the model knowing them). A run cut short (time, --max-modules)
has then spent its effort where verification is strongest and knowledge matters most.
"""

from __future__ import annotations

from dataclasses import dataclass

from extractor.graph import Graph

SYMBOL_TYPES = ("function", "method", "class")


@dataclass
class ModuleRank:
    path: str
    tests: int  # distinct test functions mapped to the module's symbols
    coverage: float  # share of its functions/methods with a mapped test or measured as run
    centrality: int  # calls into the module from other modules

    def key(self) -> tuple:
        return (-(self.tests > 0), -self.coverage, -self.centrality, -self.tests, self.path)

    def as_dict(self) -> dict:
        return {"tests": self.tests, "coverage": round(self.coverage, 3), "centrality": self.centrality}


def rank_module(graph: Graph, path: str) -> ModuleRank:
    q = graph.conn.execute
    funcs = [
        r[0] for r in q("SELECT id FROM nodes WHERE path = ? AND type IN ('function', 'method')", (path,))
    ]
    tested = {
        r[0]
        for r in q(
            "SELECT DISTINCT e.dst_id FROM edges e JOIN nodes n ON n.id = e.dst_id WHERE e.kind = 'tests' AND n.path = ?",
            (path,),
        )
    }
    tests = q(
        "SELECT COUNT(DISTINCT e.src_id) FROM edges e JOIN nodes n ON n.id = e.dst_id WHERE e.kind = 'tests' AND n.path = ?",
        (path,),
    ).fetchone()[0]
    centrality = q(
        "SELECT COUNT(*) FROM edges e JOIN nodes d ON d.id = e.dst_id JOIN nodes s ON s.id = e.src_id "
        "WHERE e.kind = 'calls' AND d.path = ? AND s.path != ?",
        (path, path),
    ).fetchone()[0]
    ran = {node_id for node_id, share in graph.coverage(path).items() if share > 0}
    coverage = len((tested | ran) & set(funcs)) / len(funcs) if funcs else 0.0
    return ModuleRank(path, tests, coverage, centrality)


def order_modules(graph: Graph, modules: list[str]) -> list[ModuleRank]:
    """`modules` in curriculum order: tested, covered and central first."""
    return sorted((rank_module(graph, m) for m in modules), key=ModuleRank.key)
