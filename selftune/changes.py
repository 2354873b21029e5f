"""What changed since the last self-tune: incremental extract, brain refresh, graph diff per module.

A module is one source file (its `module` node). Its fingerprint is a hash over the content
hashes and spans of every node in the file, so an edit to one function changes that module's
fingerprint and no other. The fingerprints of the last finished self-tune live in state.json;
comparing against them (rather than against the graph before this run's extract) also catches
changes that an earlier `make extract` already indexed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from extractor.graph import Graph
from nanodex.config import load_config
from nanodex.paths import DEFAULT_GRAPH, atomic_write_text
from selftune.config import SelftuneConfig


@dataclass
class ModuleState:
    fingerprint: str
    nodes: dict[str, str]  # node id -> content hash


@dataclass
class ChangeSet:
    modules: list[str]  # module paths to self-tune, unordered
    changed_nodes: dict[str, list[str]] = field(default_factory=dict)  # module -> node ids new or edited
    removed: list[str] = field(default_factory=list)  # modules in the state that the graph lost
    extract: dict[str, Any] = field(default_factory=dict)
    brain: dict[str, Any] = field(default_factory=dict)


def is_test_module(graph: Graph, path: str) -> bool:
    mod = graph.node(path)
    return bool(mod and mod.meta.get("test"))


def module_states(graph: Graph) -> dict[str, ModuleState]:
    """Fingerprint and node hashes of every non-test module that defines at least one symbol."""
    by_path: dict[str, dict[str, str]] = {}
    spans: dict[str, list[str]] = {}
    rows = graph.conn.execute(
        "SELECT id, path, type, hash, start_line, end_line, meta_json FROM nodes ORDER BY path, id"
    )
    tests: set[str] = set()
    for nid, path, typ, h, s, e, meta in rows:
        if typ == "module" and json.loads(meta or "{}").get("test"):
            tests.add(path)
        by_path.setdefault(path, {})[nid] = h or ""
        spans.setdefault(path, []).append(f"{nid}\0{h}\0{s}\0{e}")
    out = {}
    for path, nodes in by_path.items():
        if path in tests or len(nodes) < 2:  # only the module node: nothing to ask about
            continue
        fp = hashlib.sha256("\n".join(spans[path]).encode()).hexdigest()
        out[path] = ModuleState(fp, nodes)
    return out


def load_state(work_dir: Path) -> dict[str, ModuleState]:
    p = work_dir / "state.json"
    if not p.is_file():
        return {}
    data = json.loads(p.read_text(encoding="utf-8"))
    return {k: ModuleState(v["fingerprint"], v["nodes"]) for k, v in data.get("modules", {}).items()}


def save_state(work_dir: Path, state: dict[str, ModuleState]) -> None:
    data = {
        "modules": {k: {"fingerprint": v.fingerprint, "nodes": v.nodes} for k, v in sorted(state.items())}
    }
    atomic_write_text(work_dir / "state.json", json.dumps(data, indent=1, sort_keys=True) + "\n")


def diff(current: dict[str, ModuleState], previous: dict[str, ModuleState], everything: bool) -> ChangeSet:
    """Modules whose fingerprint differs from the last self-tune (all with `everything`)."""
    modules, changed_nodes = [], {}
    for path, st in sorted(current.items()):
        old = previous.get(path)
        if everything or old is None or old.fingerprint != st.fingerprint:
            modules.append(path)
            prev_nodes = old.nodes if old else {}
            changed_nodes[path] = sorted(
                n for n, h in st.nodes.items() if prev_nodes.get(n) != h and n != path
            )
    removed = sorted(set(previous) - set(current))
    return ChangeSet(modules, changed_nodes, removed)


def refresh_graph(cfg: SelftuneConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Incremental extract of cfg.repo into cfg.graph, then the brain for changed nodes."""
    from extractor.build import extract
    from extractor.config import ExtractConfig

    ecfg = load_config(ExtractConfig, cfg.extract_config, {"repo": cfg.repo, "out_graph": cfg.graph})
    report = extract(ecfg)
    ex = {
        "files": report.files,
        "parsed": report.parsed,
        "unchanged": report.unchanged,
        "deleted": report.deleted,
        "resolved_files": report.resolved_files,
        "resolved_nodes": report.resolved_nodes,
        "full": report.full,
        "seconds": round(report.seconds, 2),
        "summary": report.summary(),
    }
    br: dict[str, Any] = {"skipped": "brain_config is null"}
    if cfg.brain_config:
        from brain.build import build_brain
        from brain.config import BrainConfig

        out_dir = str(Path(cfg.graph).with_name(Path(cfg.graph).stem + ".nodes"))
        bcfg = load_config(BrainConfig, cfg.brain_config, {"graph": cfg.graph})
        if Path(cfg.graph).resolve() != DEFAULT_GRAPH.resolve():
            bcfg.out_dir = out_dir  # another repository's graph: its nodes beside it, not in brain/nodes
        b = build_brain(bcfg)
        br = {"nodes": b.nodes, "written": b.written, "unchanged": b.unchanged, "removed": b.removed,
              "seconds": round(b.seconds, 2), "out_dir": bcfg.out_dir}  # fmt: skip
    return ex, br
