"""The typed ontology over the graph: module, capability, concept, error and recipe nodes.

Each typed node carries structured `facts` (what the summary may say), `refs` (graph node ids it
is about) and `citations` (`path:start-end` spans of indexed files). Facts are plain JSON so that
their hash decides whether a node must be summarized again, and so that an LLM summarizer gets
the same facts the extractive one uses. Everything here is read from the graph and from source
text; indexed code is never imported or run.

Concepts come from three places: class-like types (one node each), words that name many symbols
across files (`terms`), and terms of the prose, README/Markdown files and docstrings
(`doc_terms`, mined by brain.doc_terms), each citing the indexed lines that use it.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from brain.config import BrainConfig
from brain.doc_terms import TermUse, mine_terms
from brain.facts import CALLABLES, CLASS_LIKE, DEFINITIONS, GraphFacts
from brain.text import STOPWORDS, first_sentence, split_identifier
from extractor.graph import GraphNode
from nanodex.log import get_logger

log = get_logger("brain.ontology")

_ERROR_NAME = re.compile(r"(Error|Exception|Exc|Fault|Failure|Throwable|Panic|Warning)$")
_ROUTE = re.compile(
    r"@[\w.]*?\b(route|get|post|put|delete|patch|head|options|websocket|api_route)\(\s*(?:path\s*=\s*)?"
    r"[rbuf]?['\"]([^'\"]*)['\"]"
)
_JAVA_ROUTE = re.compile(r"@(Get|Post|Put|Delete|Patch|Request)Mapping\(\s*(?:value\s*=\s*)?\"([^\"]*)\"")
_CLI = re.compile(r"@[\w.]*\b(command|group)\(|@click\.|@app\.command|@cli\.")
_CONDITION = re.compile(
    r"^\s*(?:\}\s*)?(if|elif|else\s+if|while|except|catch|case|guard|unless)\b\s*(.*?)\s*(?:\{|:|then)?\s*$"
)
_INLINE_IF = re.compile(r"^\s*if\s+(.+?)\s*:\s*(raise|throw)\b")
_FENCE = re.compile(r"^(```|~~~)\s*([\w+-]*)")
_CALL = re.compile(r"([A-Za-z_][\w.]*)\s*\(")
_GENERIC_TERMS_TEXT = """test tests base error errors exception exceptions mixin abstract interface impl type types util utils
    helper helpers manager object value values data info main init new get set is has add make run to from
    self cls str int list dict none true false args kwargs py tmp default name names item items"""
_GENERIC_TERMS = frozenset(_GENERIC_TERMS_TEXT.split())
_MAX_DOC_BYTES = 1_000_000  # prose files larger than this are not read for terms or recipes
_WORDS = re.compile(r"[a-z][a-z'-]*[a-z]|[a-z]")


@dataclass
class BrainNode:
    """One typed node: what it is about (refs), where (citations) and the facts a summary may state."""

    id: str
    type: str
    name: str
    path: str
    start_line: int
    end_line: int
    target: str | None = None  # the graph node it describes, when there is exactly one
    facts: dict = field(default_factory=dict)
    refs: list[str] = field(default_factory=list)
    citations: list[str] = field(default_factory=list)
    content: list[str] = field(default_factory=list)  # graph hashes the summary depends on


def _balanced(text: str) -> bool:
    depth = 0
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def cite(node: GraphNode) -> str:
    return node.citation


def cite_line(path: str, line: int) -> str:
    return f"{path}:{line}-{line}"


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))


def is_public(node: GraphNode) -> bool:
    """Public by naming convention: no leading underscore (Go: an upper-case first letter)."""
    if node.name.startswith("_"):
        return False
    if node.lang == "go" and node.type in ("function", "method"):
        return node.name[:1].isupper()
    return True


def params_of(node: GraphNode) -> str:
    """The parameter part of a signature: 'def add(self, sku, qty) -> int' -> '(self, sku, qty) -> int'."""
    sig = node.signature or ""
    i = sig.find(node.name + "(")
    if i < 0:
        i = sig.find(node.name + "<")
    tail = sig[i + len(node.name) :] if i >= 0 else ""
    tail = " ".join(tail.split())
    return tail if len(tail) <= 70 else tail[:66].rsplit(",", 1)[0] + ", ...)"


class Ontology:
    """Builds the typed nodes from one graph (see the module docstring)."""

    def __init__(self, facts: GraphFacts, cfg: BrainConfig) -> None:
        self.f = facts
        self.cfg = cfg
        self._error_memo: dict[str, bool] = {}
        self._refs_memo: dict[str, list[tuple[str, int]]] = {}
        self._by_name: dict[str, list[str]] = defaultdict(list)
        for n in facts.nodes.values():
            if n.type in DEFINITIONS and not facts.is_test(n):
                self._by_name[n.name].append(n.id)

    # ---- helpers -----------------------------------------------------------------------------
    def node(self, node_id: str) -> GraphNode:
        return self.f.nodes[node_id]

    def module_name(self, path: str) -> str:
        mod = self.f.nodes.get(path)
        return mod.qualname if mod is not None else path

    def is_error(self, node_id: str, depth: int = 0) -> bool:
        """An exception type: named like one, deriving from one, or thrown somewhere."""
        if node_id in self._error_memo:
            return self._error_memo[node_id]
        node = self.f.nodes.get(node_id)
        result = False
        if node is not None and node.type in CLASS_LIKE:
            bases = [str(b) for b in node.meta.get("external_bases", [])]
            result = (
                bool(_ERROR_NAME.search(node.name))
                or any(_ERROR_NAME.search(b.rsplit(".", 1)[-1]) for b in bases)
                or bool(self.f.incoming(node_id, "throws"))
                or (
                    depth < 20
                    and any(
                        self.is_error(r.other, depth + 1)
                        for kind in ("extends", "implements")
                        for r in self.f.outgoing(node_id, kind)
                    )
                )
            )
        self._error_memo[node_id] = result
        return result

    def decorators(self, node: GraphNode) -> list[str]:
        """Decorator/annotation lines right above a definition (the graph starts it at `def`)."""
        lines = self.f.lines(node.path)
        out: list[str] = []
        i = node.start_line - 2
        while i >= 0 and len(out) < 8:
            text = lines[i].strip() if i < len(lines) else ""
            if text.startswith("@"):
                out.insert(0, text)
            elif text and not text.startswith(("#", "//")) and not (out and text.endswith((",", "(", ")"))):
                break
            i -= 1
        return out

    def condition(self, path: str, raise_line: int, start: int) -> str:
        """The condition guarding a raise/throw line, when the code states one (`if n > qty`)."""
        lines = self.f.lines(path)
        if not 1 <= raise_line <= len(lines):
            return ""
        text = lines[raise_line - 1]
        m = _INLINE_IF.match(text)
        if m:
            return f"if {m.group(1)}"
        indent = len(text) - len(text.lstrip())
        for j in range(raise_line - 2, max(start - 2, raise_line - 40), -1):
            if j < 0 or j >= len(lines):
                break
            cand = lines[j]
            stripped = cand.strip()
            if not stripped or stripped.startswith(("#", "//", "*")):
                continue
            ind = len(cand) - len(cand.lstrip())
            if ind >= indent and not stripped.startswith("}"):
                continue
            m = _CONDITION.match(cand)
            if not m:
                return ""
            kw, cond = m.group(1), m.group(2).strip().rstrip(":{").strip()
            if cond.startswith("(") and cond.endswith(")") and _balanced(cond[1:-1]):
                cond = cond[1:-1].strip()
            if kw in ("except", "catch"):
                return f"on {cond}" if cond else "on any exception"
            if kw.startswith("else"):
                return f"else if {cond}" if cond else ""
            return f"{'if' if kw == 'elif' else kw} {cond}".strip()[:120]
        return ""

    # ---- typed nodes -------------------------------------------------------------------------
    def build(self) -> list[BrainNode]:
        wanted = set(self.cfg.node_types)
        out: list[BrainNode] = []
        if "module" in wanted:
            out += self.modules()
        if "capability" in wanted:
            out += self.capabilities()
        if "concept" in wanted:
            out += self.concepts()
            out += self.terms()
            out += self.doc_terms()
        if "error" in wanted:
            out += self.errors()
        if "recipe" in wanted:
            out += self.recipes()
        seen: set[str] = set()
        unique = []
        for n in out:
            if n.id not in seen:
                seen.add(n.id)
                unique.append(n)
        return unique

    def _rels(self, node_id: str, kind: str, incoming: bool, limit: int, tests: bool = False) -> list[dict]:
        rels = self.f.incoming(node_id, kind) if incoming else self.f.outgoing(node_id, kind)
        items = []
        for r in rels:
            other = self.f.nodes.get(r.other)
            if other is None or other.id == node_id or (self.f.is_test(other) != tests):
                continue
            items.append({"id": other.id, "name": other.qualname, "cite": cite(other), "line": r.line})
        items.sort(key=lambda d: (d["line"] or 0, d["id"]))
        uniq = list({d["id"]: d for d in items}.values())
        return uniq[:limit]

    def modules(self) -> list[BrainNode]:
        out = []
        for node in self.f.nodes.values():
            if node.type != "module":
                continue
            api = []
            for kid in self.f.children.get(node.id, []):
                k = self.f.nodes[kid]
                if k.type in DEFINITIONS and is_public(k):
                    api.append({"id": k.id, "name": k.name, "kind": k.type, "cite": cite(k)})
            exported = []
            if node.name.startswith(("__init__.", "index.", "mod.")):
                for r in self.f.outgoing(node.id, "imports"):
                    other = self.f.nodes.get(r.other)
                    if other is not None and other.type != "module" and is_public(other):
                        exported.append({"id": other.id, "name": other.name, "cite": cite(other)})
            lines = self.f.file_lines.get(node.path, node.end_line)  # 0 for an empty file: no line to cite
            deps = [self.module_name(r.other) for r in self.f.outgoing(node.id, "depends_on")]
            users = [self.module_name(r.other) for r in self.f.incoming(node.id, "depends_on")]
            facts = {
                "module": node.qualname,
                "path": node.path,
                "lang": node.lang,
                "lines": lines,
                "test": bool(node.meta.get("test")),
                "doc": first_sentence(node.doc),
                "api": api[:40],
                "api_count": len(api),
                "exported": exported[:20],
                "depends_on": sorted(set(deps))[:20],
                "used_by": sorted(set(users))[:20],
            }
            refs = _dedupe([node.id, *(a["id"] for a in api), *(e["id"] for e in exported)])
            cites = _dedupe(
                [cite(node) if lines else "", *(a["cite"] for a in api[:40]), *(e["cite"] for e in exported)]
            )
            out.append(_symbol_node("module", node, facts, refs, cites, content=False))
        return out

    def _capability_kind(self, node: GraphNode) -> dict:
        """HTTP route / CLI command / plain API, from decorators and conventions."""
        decos = self.decorators(node) if node.lang in ("python", "java", "typescript") else []
        for d in decos:
            m = _ROUTE.search(d) or _JAVA_ROUTE.search(d)
            if m:
                verb = m.group(1).upper()
                verb = "ANY" if verb in ("ROUTE", "REQUEST", "API_ROUTE") else verb
                return {"role": "http route", "route": f"{verb} {m.group(2)}"}
            if _CLI.search(d):
                return {"role": "cli command"}
        if node.name == "main" and node.type == "function":
            lines = self.f.lines(node.path)
            body = "\n".join(lines[node.start_line - 1 : node.end_line])
            if (
                node.path.endswith("__main__.py")
                or "ArgumentParser(" in body
                or any("__name__" in ln and "__main__" in ln for ln in lines)
            ):
                return {"role": "cli command"}
        return {"role": "api"}

    def _raises(self, node_id: str) -> list[dict]:
        out = []
        node = self.f.nodes[node_id]
        for r in self.f.outgoing(node_id, "throws"):
            err = self.f.nodes.get(r.other)
            if err is not None:
                out.append(
                    {
                        "error": err.qualname,
                        "id": err.id,
                        "line": r.line,
                        "if": self.condition(node.path, r.line, node.start_line),
                    }
                )
        for name in node.meta.get("raises", []) or []:
            line = self._external_raise_line(node_id, str(name))
            out.append(
                {
                    "error": str(name),
                    "id": "",
                    "line": line,
                    "if": self.condition(node.path, line, node.start_line) if line else "",
                }
            )
        return out[:6]

    def _external_raise_line(self, node_id: str, name: str) -> int:
        for ref_node, line in self._refs(name):
            if ref_node == node_id:
                return line
        return 0

    def _refs(self, name: str) -> list[tuple[str, int]]:
        if name not in self._refs_memo:
            self._refs_memo[name] = [(n.id, line) for n, line in self.f.graph.refs(name)]
        return self._refs_memo[name]

    def capabilities(self) -> list[BrainNode]:
        out = []
        for node in self.f.nodes.values():
            if node.type not in CALLABLES or self.f.is_test(node):
                continue
            parent = self.f.nodes.get(self.f.parent.get(node.id, ""))
            kind = self._capability_kind(node)
            top = parent is None or parent.type == "module"
            in_public_class = parent is not None and parent.type in CLASS_LIKE and is_public(parent)
            public = is_public(node) and (top or in_public_class)
            if not public and kind["role"] == "api":
                continue
            if node.name.startswith("__") and kind["role"] == "api":
                continue
            calls = self._rels(node.id, "calls", False, 6)
            callers = self._rels(node.id, "calls", True, 4)
            tests = [
                {"id": t.id, "name": t.meta.get("pytest_id") or t.qualname, "cite": cite(t)}
                for t in (self.f.nodes[r.other] for r in self.f.incoming(node.id, "tests"))
            ][:4]
            raises = self._raises(node.id)
            exported_by = [
                self.module_name(r.other)
                for r in self.f.incoming(node.id, "imports")
                if self.f.nodes[r.other].name.startswith(("__init__.", "index.", "mod."))
            ]
            facts = {
                "qualname": node.qualname,
                "kind": node.type,
                "module": self.module_name(node.path),
                "group": node.path,
                "params": params_of(node),
                "doc": first_sentence(node.doc),
                **kind,
                "calls": calls,
                "called_by": callers,
                "tested_by": tests,
                "raises": raises,
                "exported_by": sorted(set(exported_by)),
            }
            refs = _dedupe(
                [node.id, *(c["id"] for c in calls), *(c["id"] for c in callers), *(t["id"] for t in tests)]
                + [r["id"] for r in raises]
            )
            cites = _dedupe(
                [cite(node), *(c["cite"] for c in calls), *(c["cite"] for c in callers)]
                + [cite_line(node.path, r["line"]) for r in raises if r["line"]]
            )
            out.append(_symbol_node("capability", node, facts, refs, cites))
        return out

    def _class_facts(self, node: GraphNode) -> dict:
        bases = [
            {"id": b.id, "name": b.qualname, "cite": cite(b)}
            for b in (self.f.nodes[r.other] for r in self.f.outgoing(node.id, "extends"))
        ] + [{"id": "", "name": str(b), "cite": ""} for b in node.meta.get("external_bases", []) or []]
        subclasses = self._rels(node.id, "extends", True, 6)
        methods = [
            {"id": m.id, "name": m.name, "cite": cite(m)}
            for m in (self.f.nodes[k] for k in self.f.children.get(node.id, []))
            if m.type in CALLABLES and (is_public(m) or m.name == "__init__")
        ]
        return {
            "qualname": node.qualname,
            "kind": node.type,
            "module": self.module_name(node.path),
            "params": params_of(node),
            "doc": first_sentence(node.doc),
            "bases": bases[:6],
            "subclasses": subclasses,
            "methods": methods[:24],
            "used_by": self._rels(node.id, "calls", True, 4),
            "tested_by": [
                {"id": t.id, "name": t.meta.get("pytest_id") or t.qualname, "cite": cite(t)}
                for t in (self.f.nodes[r.other] for r in self.f.incoming(node.id, "tests"))
            ][:4],
        }

    def concepts(self) -> list[BrainNode]:
        out = []
        for node in self.f.nodes.values():
            if node.type not in CLASS_LIKE or self.f.is_test(node) or not is_public(node):
                continue
            if self.is_error(node.id):
                continue
            facts = self._class_facts(node)
            refs = _dedupe(
                [node.id]
                + [b["id"] for b in facts["bases"]]
                + [s["id"] for s in facts["subclasses"]]
                + [m["id"] for m in facts["methods"]]
                + [u["id"] for u in facts["used_by"]]
            )
            cites = _dedupe(
                [cite(node)]
                + [b["cite"] for b in facts["bases"]]
                + [m["cite"] for m in facts["methods"]]
                + [u["cite"] for u in facts["used_by"]]
            )
            out.append(_symbol_node("concept", node, facts, refs, cites))
        return out

    def terms(self) -> list[BrainNode]:
        """Domain terms: words in class and module names that also name many other symbols."""
        cc = self.cfg.concepts
        vocab: set[str] = set()
        for n in self.f.nodes.values():
            if self.f.is_test(n):
                continue
            if n.type in CLASS_LIKE or n.type == "module":
                base = n.name.rsplit(".", 1)[0] if n.type == "module" else n.name
                vocab.update(split_identifier(base))
        holders: dict[str, list[str]] = defaultdict(list)
        for n in self.f.nodes.values():
            if n.type == "module" or n.type not in DEFINITIONS:
                continue
            for part in set(split_identifier(n.qualname)):
                if part in vocab and len(part) > 2 and part not in STOPWORDS and part not in _GENERIC_TERMS:
                    holders[part].append(n.id)
        ranked = []
        for term, ids in holders.items():
            files = {self.f.nodes[i].path for i in ids}
            if len(ids) >= cc.min_symbols and len(files) >= cc.min_files:
                ranked.append((-len(ids), term, ids, files))
        ranked.sort()
        out = []
        for _, term, ids, files in ranked[: cc.max_terms]:
            degree = Counter({i: len(self.f.incoming(i, "calls")) for i in ids})
            top = sorted(ids, key=lambda i: (self.f.nodes[i].type not in CLASS_LIKE, -degree[i], i))[:10]
            symbols = [
                {"id": i, "name": self.f.nodes[i].qualname, "cite": cite(self.f.nodes[i])} for i in top
            ]
            first = self.f.nodes[top[0]]
            out.append(
                BrainNode(
                    id=f"concept:term:{term}",
                    type="concept",
                    name=term,
                    path=first.path,
                    start_line=first.start_line,
                    end_line=first.end_line,
                    target=None,
                    facts={
                        "term": term,
                        "symbols": symbols,
                        "symbol_count": len(ids),
                        "file_count": len(files),
                    },
                    refs=[s["id"] for s in symbols],
                    citations=[s["cite"] for s in symbols],
                )
            )
        return out

    def doc_files(self, globs: list[str], limit: int | None = None) -> list[tuple[str, str]]:
        """(repo-relative path, text) of the prose files `globs` match under the repository root."""
        root = self.f.repo_root
        if root is None:
            return []
        files: list[Path] = []
        for pattern in globs:
            files += sorted(p for p in root.glob(pattern) if p.is_file())
        out = []
        for doc in _dedupe(str(p) for p in files)[:limit]:
            p = Path(doc)
            try:
                if p.stat().st_size > _MAX_DOC_BYTES:
                    continue
                out.append((p.relative_to(root).as_posix(), p.read_text(encoding="utf-8", errors="replace")))
            except (OSError, ValueError):
                continue
        return out

    def _use_line(self, use: TermUse, term: str) -> int:
        """The line of a docstring node that holds `term` (the node's first line when none does)."""
        node = self.f.nodes[use.node_id] if use.node_id else None
        if node is None:
            return use.line
        words = term.lower().split()
        for i in range(node.start_line, node.end_line + 1):
            if " ".join(_WORDS.findall(self.f.line(node.path, i).lower())).find(" ".join(words)) >= 0:
                return i
        return node.start_line

    def doc_terms(self) -> list[BrainNode]:
        """Domain terms from prose (README/Markdown and docstrings), each citing where it is used."""
        cc = self.cfg.concepts
        if cc.max_doc_terms <= 0:
            return []
        docs: list[tuple[str, int, str, str | None, bool]] = [
            (rel, 1, text, None, True) for rel, text in self.doc_files(cc.doc_globs, cc.max_doc_files)
        ]
        exclude: set[str] = set()
        for n in sorted(self.f.nodes.values(), key=lambda n: n.id):
            if n.type in CLASS_LIKE:  # a class has its own concept node already
                exclude.update({n.name.lower(), " ".join(split_identifier(n.name))})
            if n.doc and not self.f.is_test(n):
                docs.append((n.path, n.start_line, n.doc, n.id, False))
        mined = mine_terms(
            docs,
            min_files=cc.doc_min_files,
            max_terms=cc.max_doc_terms,
            max_words=cc.max_term_words,
            exclude=exclude,
        )
        named = [  # definitions with their name words, to link a term to the code named after it
            (n, split_identifier(n.name))
            for n in sorted(self.f.nodes.values(), key=lambda n: n.id)
            if mined and n.type in DEFINITIONS and not self.f.is_test(n)
        ]
        out = []
        for m in mined:
            uses, seen_files = [], set()
            for u in m.uses:
                if u.file in seen_files:
                    continue
                seen_files.add(u.file)
                if u.node_id is None:
                    uses.append({"name": u.file, "doc": f"{u.file}:{u.line}", "cite": ""})
                else:
                    line = self._use_line(u, m.term)
                    owner = self.f.nodes[u.node_id]
                    uses.append({"id": owner.id, "name": owner.qualname, "cite": cite_line(owner.path, line)})
            words = m.term.lower().split()
            symbols = [
                {"id": n.id, "name": n.qualname, "cite": cite(n)}
                for n, parts in named
                if _holds(parts, words)
            ][:6]
            cited = [u for u in uses if u["cite"]] + symbols
            if not cited:  # used only in files outside the graph: nothing to cite, so no node
                continue
            anchor = cited[0]["cite"].rsplit(":", 1)
            start, end = (int(x) for x in anchor[1].split("-"))
            uses.sort(key=lambda u: (not u["cite"], u["name"]))
            out.append(
                BrainNode(
                    id=f"concept:doc:{m.term}",
                    type="concept",
                    name=m.term,
                    path=anchor[0],
                    start_line=start,
                    end_line=end,
                    target=None,
                    facts={
                        "term": m.term,
                        "source": "docs",
                        "file_count": len(m.files),
                        "use_count": m.count,
                        "uses": uses[:12],
                        "symbols": symbols,
                    },
                    refs=_dedupe([*(u.get("id", "") for u in uses), *(s["id"] for s in symbols)]),
                    citations=_dedupe(c["cite"] for c in cited),
                )
            )
        return out

    def errors(self) -> list[BrainNode]:
        out = []
        for node in self.f.nodes.values():
            if node.type not in CLASS_LIKE or not self.is_error(node.id) or self.f.is_test(node):
                continue
            facts = self._class_facts(node)
            sites = []
            for r in self.f.incoming(node.id, "throws"):
                site = self.f.nodes.get(r.other)
                if site is None:
                    continue
                sites.append(self._site(site, r.line))
            sites.sort(key=lambda s: (self.f.is_test(self.f.nodes[s["id"]]), s["id"], s["line"]))
            facts = {
                "error": node.qualname,
                "module": facts["module"],
                "params": facts["params"],
                "doc": facts["doc"],
                "bases": facts["bases"],
                "subclasses": facts["subclasses"],
                "raised_at": sites[:12],
                "raise_count": len(sites),
                "tested_by": facts["tested_by"],
            }
            out.append(self._error_node(f"error:{node.id}", node.qualname, node, facts))
        # errors defined outside the repository (ValueError, IOException ...) raised inside it
        external: dict[str, list[str]] = defaultdict(list)
        for node in self.f.nodes.values():
            for name in node.meta.get("raises", []) or []:
                external[str(name)].append(node.id)
        for name, srcs in sorted(external.items()):
            wanted = set(srcs)
            sites = [self._site(self.f.nodes[i], line) for i, line in self._refs(name) if i in wanted]
            sites = list({(s["id"], s["line"]): s for s in sites}.values())
            for i in wanted - {s["id"] for s in sites}:
                sites.append(self._site(self.f.nodes[i], 0))
            sites.sort(key=lambda s: (self.f.is_test(self.f.nodes[s["id"]]), s["id"], s["line"]))
            if not sites:
                continue
            first = self.f.nodes[sites[0]["id"]]
            facts = {
                "error": name,
                "module": "",
                "external": True,
                "raised_at": sites[:12],
                "raise_count": len(sites),
            }
            out.append(self._error_node(f"error:external:{name}", name, first, facts, anchor=sites[0]))
        return out

    def _site(self, site: GraphNode, line: int) -> dict:
        return {
            "id": site.id,
            "name": site.qualname,
            "path": site.path,
            "line": line,
            "cite": cite_line(site.path, line) if line else cite(site),
            "if": self.condition(site.path, line, site.start_line) if line else "",
        }

    def _error_node(
        self, node_id: str, name: str, where: GraphNode, facts: dict, anchor: dict | None = None
    ) -> BrainNode:
        sites = facts["raised_at"]
        start = anchor["line"] if anchor and anchor["line"] else where.start_line
        end = anchor["line"] if anchor and anchor["line"] else where.end_line
        cites = [] if anchor else [cite(where)]
        return BrainNode(
            id=node_id,
            type="error",
            name=name,
            path=where.path,
            start_line=start,
            end_line=end,
            target=None if anchor else where.id,
            facts=facts,
            refs=_dedupe(([] if anchor else [where.id]) + [s["id"] for s in sites]),
            citations=_dedupe(cites + [s["cite"] for s in sites]),
            content=[] if anchor else [where.hash],
        )

    # ---- recipes -----------------------------------------------------------------------------
    def _steps(self, src_ids: list[str], lines: list[str], skip_tests: bool = True) -> list[dict]:
        rels = []
        for sid in src_ids:
            for r in self.f.outgoing(sid, "calls"):
                other = self.f.nodes.get(r.other)
                if other is None or (skip_tests and self.f.is_test(other)):
                    continue
                rels.append((r.line, other))
        rels.sort(key=lambda x: (x[0], x[1].id))
        steps: list[dict] = []
        for line, other in rels:
            if steps and steps[-1]["id"] == other.id:
                continue
            code = lines[line - 1].strip()[:100] if 1 <= line <= len(lines) else ""
            steps.append(
                {"id": other.id, "name": other.qualname, "cite": cite(other), "line": line, "code": code}
            )
        return steps[: self.cfg.recipes.max_steps]

    def recipes(self) -> list[BrainNode]:
        out = []
        for node in self.f.nodes.values():
            if node.type not in CALLABLES or not node.meta.get("test"):
                continue
            steps = self._steps([node.id], self.f.lines(node.path))
            if not steps:
                continue
            owner = self.f.nodes.get(self.f.parent.get(node.id, ""))
            goal_words = [w for w in split_identifier(node.name) if w != "test"]
            if owner is not None and owner.type in CLASS_LIKE:
                goal_words = [w for w in split_identifier(owner.name) if w != "test"] + goal_words
            facts = {
                "goal": " ".join(goal_words) or node.name,
                "from": "test",
                "test": node.meta.get("pytest_id") or node.qualname,
                "steps": steps,
            }
            out.append(_recipe_node(node, facts, [cite(node)]))
        out += self._example_recipes()
        out += self._readme_recipes()
        return out

    def _example_recipes(self) -> list[BrainNode]:
        dirs = set(self.cfg.recipes.example_dirs)
        out = []
        for node in self.f.nodes.values():
            if node.type != "module" or not dirs.intersection(node.path.split("/")[:-1]):
                continue
            srcs = [node.id] + [
                k for k in self.f.children.get(node.id, []) if self.f.nodes[k].name in ("main", "run", "demo")
            ]
            steps = self._steps(srcs, self.f.lines(node.path), skip_tests=False)
            steps = [s for s in steps if self.f.nodes[s["id"]].path != node.path] or steps
            if not steps:
                continue
            facts = {"goal": Path(node.path).stem.replace("_", " "), "from": "example", "steps": steps}
            out.append(_recipe_node(node, facts, []))
        return out

    def _resolve_call(self, dotted: str) -> GraphNode | None:
        """A code-block call `x.Cart.add` -> the one public definition it can mean, else None."""
        parts = dotted.split(".")
        name = parts[-1]
        cands = [self.f.nodes[i] for i in self._by_name.get(name, []) if is_public(self.f.nodes[i])]
        if len(parts) > 1:
            qual = ".".join(parts[-2:])
            exact = [c for c in cands if c.qualname.endswith(qual)]
            if exact:
                cands = exact
        return cands[0] if len(cands) == 1 else None

    def _readme_recipes(self) -> list[BrainNode]:
        out = []
        for rel, text in self.doc_files(self.cfg.recipes.readme_globs):
            for start, end, block in code_blocks(text):
                steps: list[dict] = []
                for offset, ln in enumerate(block):
                    for m in _CALL.finditer(ln):
                        target = self._resolve_call(m.group(1))
                        if target is not None and (not steps or steps[-1]["id"] != target.id):
                            steps.append(
                                {
                                    "id": target.id,
                                    "name": target.qualname,
                                    "cite": cite(target),
                                    "line": 0,
                                    "doc_line": start + 1 + offset,
                                    "code": ln.strip()[:100],
                                }
                            )
                if not steps:
                    continue
                steps = steps[: self.cfg.recipes.max_steps]
                first = self.f.nodes[steps[0]["id"]]
                facts = {
                    "goal": f"example in {rel}",
                    "from": "docs",
                    "doc": f"{rel}:{start}-{end}",
                    "steps": steps,
                }
                out.append(
                    BrainNode(
                        id=f"recipe:{rel}#L{start}",
                        type="recipe",
                        name=facts["goal"],
                        path=first.path,
                        start_line=first.start_line,
                        end_line=first.end_line,
                        target=None,
                        facts=facts,
                        refs=_dedupe(s["id"] for s in steps),
                        citations=_dedupe(s["cite"] for s in steps),
                    )
                )
        return out


def _holds(parts: list[str], words: list[str]) -> bool:
    """Whether identifier parts contain `words` in a row (`ShoppingCartTotal` holds 'shopping cart')."""
    n = len(words)
    return any(parts[i : i + n] == words for i in range(len(parts) - n + 1))


def code_blocks(text: str) -> list[tuple[int, int, list[str]]]:
    """Fenced code blocks of a Markdown text as (first line, last line, lines), 1-based fence lines."""
    out = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i].strip())
        if m:
            fence = m.group(1)
            j = i + 1
            while j < len(lines) and not lines[j].strip().startswith(fence):
                j += 1
            out.append((i + 1, min(j + 1, len(lines)), lines[i + 1 : j]))
            i = j + 1
        else:
            i += 1
    return out


def _symbol_node(
    kind: str,
    node: GraphNode,
    facts: dict,
    refs: list[str],
    cites: list[str],
    *,
    name: str | None = None,
    content: bool = True,
) -> BrainNode:
    """A typed node about one graph symbol: it takes the symbol's span and (when `content`) its content
    hash, so that a change to the symbol's code redoes the node even when its facts stay the same."""
    return BrainNode(
        id=f"{kind}:{node.id}",
        type=kind,
        name=name or node.qualname,
        path=node.path,
        start_line=node.start_line,
        end_line=node.end_line,
        target=node.id,
        facts=facts,
        refs=refs,
        citations=cites,
        content=[node.hash] if content else [],
    )


def _recipe_node(node: GraphNode, facts: dict, first_cites: list[str]) -> BrainNode:
    """A recipe mined from one test or example file: cites the lines of its steps, then what they call."""
    steps = facts["steps"]
    cites = (
        first_cites
        + [cite_line(node.path, s["line"]) for s in steps if s["line"]]
        + [s["cite"] for s in steps]
    )
    refs = _dedupe([node.id, *(s["id"] for s in steps)])
    return _symbol_node("recipe", node, facts, refs, _dedupe(cites), name=facts["goal"])
