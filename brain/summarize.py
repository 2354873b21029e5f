"""The default summarizer: extractive, deterministic, and cited.

A summary is built from the node's facts only (docstring first sentence, signature, relations:
calls, called by, raises, tested by), most important sentence first, and cut at
`summary.max_tokens`. Every claim about a place carries its `[path:start-end]` citation, taken
from the graph, so it resolves by construction. Same facts in, same text out: that makes the
content hash a sound test for "must this node be redone".
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from typing import Any

from brain.ontology import BrainNode
from brain.text import clip_tokens, count_tokens

EXTRACTIVE_VERSION = "extractive-3"


# free text copied from the code (docstrings, signatures, conditions, code lines) may look like a
# citation (`'[p:1-2]'` in a docstring, `a[i:3]` in code); such text gets a space after its colon
# so that the only citations in a summary are the ones the builders below put there
_FREE_TEXT = frozenset({"doc", "params", "if", "code", "route", "goal"})
_CITATION_LIKE = re.compile(r"\[([^\[\]\s]+?):(\d+(?:-\d+)?)\]")


def _plain(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _plain(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, key) for v in value]
    if isinstance(value, str) and key in _FREE_TEXT:
        return _CITATION_LIKE.sub(r"[\1: \2]", value)
    return value


def _names(items: list[dict], limit: int, with_cite: int = 2) -> str:
    """'a [p:1-2], b [p:3-4], c' — the first `with_cite` items cited."""
    parts = []
    for i, item in enumerate(items[:limit]):
        cite = item.get("cite")
        parts.append(f"{item['name']} [{cite}]" if cite and i < with_cite else str(item["name"]))
    more = len(items) - limit
    return ", ".join(parts) + (f" and {more} more" if more > 0 else "")


def _raise_clause(r: dict) -> str:
    cond = f" {r['if']}" if r.get("if") else ""
    return f"{r['error']}{cond}"


def _capability(n: BrainNode) -> list[str]:
    f = n.facts
    kind = {"method": "Method", "function": "Function"}.get(f["kind"], f["kind"].capitalize())
    out = [f"{kind} {f['qualname']}{f['params']} [{n.path}:{n.start_line}-{n.end_line}] in {f['module']}."]
    if f.get("doc"):
        out.append(f["doc"].rstrip(".") + ".")
    if f.get("role") == "http route":
        out.append(f"HTTP route {f['route']}.")
    elif f.get("role") == "cli command":
        out.append("Command-line entry point.")
    if f.get("raises"):
        raises = []
        for r in f["raises"][:3]:
            where = f" [{n.path}:{r['line']}-{r['line']}]" if r.get("line") else ""
            raises.append(_raise_clause(r) + where)
        out.append("Raises " + "; ".join(raises) + ".")
    if f.get("calls"):
        out.append("Calls " + _names(f["calls"], 4) + ".")
    if f.get("called_by"):
        out.append("Called by " + _names(f["called_by"], 3) + ".")
    if f.get("tested_by"):
        out.append("Tested by " + _names(f["tested_by"], 2, with_cite=0) + ".")
    if f.get("exported_by"):
        out.append("Exported by " + ", ".join(f["exported_by"][:2]) + ".")
    return out


def _class_like(n: BrainNode, label: str) -> list[str]:
    f = n.facts
    name = f.get("qualname") or f.get("error")
    out = [f"{label} {name}{f.get('params', '')} [{n.path}:{n.start_line}-{n.end_line}] in {f['module']}."]
    if f.get("doc"):
        out.append(f["doc"].rstrip(".") + ".")
    if f.get("bases"):
        out.append("Extends " + _names(f["bases"], 3, with_cite=1) + ".")
    if f.get("raised_at"):
        out.append(_raised_at(f))
    if f.get("methods"):
        out.append("Methods: " + ", ".join(m["name"] for m in f["methods"][:10]) + ".")
    if f.get("subclasses"):
        out.append("Subclasses: " + _names(f["subclasses"], 4, with_cite=1) + ".")
    if f.get("used_by"):
        out.append("Used by " + _names(f["used_by"], 3) + ".")
    if f.get("tested_by"):
        out.append("Tested by " + _names(f["tested_by"], 2, with_cite=0) + ".")
    return out


def _raised_at(f: dict) -> str:
    sites = []
    for s in f["raised_at"][:4]:
        cond = f" {s['if']}" if s.get("if") else ""
        sites.append(f"{s['name']}{cond} [{s['cite']}]")
    more = f["raise_count"] - min(4, len(f["raised_at"]))
    return "Raised in " + "; ".join(sites) + (f"; and {more} more sites" if more > 0 else "") + "."


def _doc_term(f: dict) -> list[str]:
    cited = [u for u in f["uses"] if u.get("cite")]
    prose = [u["doc"] for u in f["uses"] if not u.get("cite")]
    where = ", ".join(f"{u['name']} [{u['cite']}]" for u in cited[:3])
    out = [
        f"Domain term '{f['term']}' from the docs: used {f['use_count']} times in {f['file_count']} files"
        + (f", in the docs of {where}" if where else "")
        + "."
    ]
    if f.get("symbols"):
        out.append("Code named after it: " + _names(f["symbols"], 4, with_cite=2) + ".")
    if prose:
        out.append("Also in " + ", ".join(prose[:4]) + ".")
    return out


def _concept(n: BrainNode) -> list[str]:
    f = n.facts
    if f.get("source") == "docs":
        return _doc_term(f)
    if "term" in f:
        return [
            f"Domain term '{f['term']}': names {f['symbol_count']} symbols in {f['file_count']} files, "
            f"such as {_names(f['symbols'], 6, with_cite=3)}."
        ]
    return _class_like(n, {"class": "Class"}.get(f["kind"], f["kind"].capitalize()))


def _error(n: BrainNode) -> list[str]:
    f = n.facts
    if f.get("external"):
        sites = f"{f['raise_count']} site{'s' if f['raise_count'] != 1 else ''}"
        # one item, so that a long site list is clipped (keeping its first citations), not dropped
        head = f"Error {f['error']} (defined outside the repository) is raised at {sites}: in "
        return [head + _raised_at(f).removeprefix("Raised in ")]
    out = _class_like(n, "Error type")
    if not f.get("raised_at"):
        out.insert(1, "No raise site found in the indexed code.")
    return out


def _recipe(n: BrainNode) -> list[str]:
    f = n.facts
    source = {
        "test": f"test {f.get('test')} [{n.path}:{n.start_line}-{n.end_line}]",
        "example": f"example {n.path}",
        "docs": f"code block at {f.get('doc')}",
    }[f["from"]]
    steps = []
    for i, s in enumerate(f["steps"][:8], 1):
        code = f" `{s['code']}`" if s.get("code") and len(s["code"]) <= 60 else ""
        steps.append(f"{i}. {s['name']} [{s['cite']}]{code}")
    return [f"How to {f['goal']}, from {source}:", " ".join(steps) + "."]


def _module(n: BrainNode) -> list[str]:
    f = n.facts
    kind = "Test module" if f["test"] else "Module"
    if not f["lines"]:  # an empty file has no line to cite
        return [f"{kind} {f['module']} ({f['lang']}, empty file)."]
    out = [f"{kind} {f['module']} ({f['lang']}, {f['lines']} lines) [{n.path}:1-{n.end_line}]."]
    if f.get("doc"):
        out.append(f["doc"].rstrip(".") + ".")
    if f.get("api"):
        out.append(f"Public API ({f['api_count']}): " + _names(f["api"], 8, with_cite=3) + ".")
    if f.get("exported"):
        out.append("Re-exports " + _names(f["exported"], 6, with_cite=2) + ".")
    if f.get("depends_on"):
        out.append("Depends on " + ", ".join(f["depends_on"][:5]) + ".")
    if f.get("used_by"):
        out.append("Used by " + ", ".join(f["used_by"][:5]) + ".")
    return out


_BUILDERS: dict[str, Callable[[BrainNode], list[str]]] = {
    "capability": _capability,
    "concept": _concept,
    "error": _error,
    "recipe": _recipe,
    "module": _module,
}


def fit(sentences: list[str], max_tokens: int) -> str:
    """Sentences in order while they fit; the first one is clipped rather than dropped."""
    out: list[str] = []
    used = 0
    for s in sentences:
        cost = count_tokens(s)
        if used + cost <= max_tokens:
            out.append(s)
            used += cost
        elif not out:
            out.append(clip_tokens(s, max_tokens))
            break
    return " ".join(out)


def extractive_summary(node: BrainNode, max_tokens: int) -> str:
    """The deterministic summary of one typed node, at most `max_tokens` tokens."""
    return fit(_BUILDERS[node.type](dataclasses.replace(node, facts=_plain(node.facts))), max_tokens)
