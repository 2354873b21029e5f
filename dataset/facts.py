"""Brain nodes -> question aspects: what can be asked about each fact, and the cited answer parts.

A fact is one brain node (a capability, concept, error, recipe, module or domain term); it is
the unit the train/eval split keeps together. Each fact offers aspects per question kind
(overview, returns, raises, callers, where it lives ...) only when the brain holds what the
answer needs, so no answer says more than the graph does. Every statement about a place carries
the `[path:start-end]` citation the brain took from the graph.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field

from dataset.compose import block, clean, listing, quotable, sentence, snippet, tick
from dataset.config import DatasetConfig
from dataset.knowledge import CLASS_LIKE, Knowledge
from dataset.templates import action, doc_prompt, goal, render, words


@dataclass
class Aspect:
    """One question about one fact: its phrasings and the answer parts (see dataset.compose)."""

    fact: str  # brain node id: the unit of the split
    kind: str
    aspect: str
    rank: int  # 0 = the fact's first question of this kind (asked before any second one)
    subject: str | None  # graph node the question is about (coverage), when there is one
    prompts: list[str]
    parts: list[str]
    refs: list[str] = field(default_factory=list)  # graph node ids the answer uses


class FactBuilder:
    """Makes the aspects of every brain node; see the module docstring."""

    def __init__(self, k: Knowledge, cfg: DatasetConfig) -> None:
        self.k = k
        self.cfg = cfg
        self.p = cfg.paraphrases

    def build(self) -> list[Aspect]:
        out: list[Aspect] = []
        handlers = {
            "capability": self.capability,
            "concept": self.concept,
            "error": self.error,
            "recipe": self.recipe,
            "module": self.module,
        }
        for b in sorted(self.k.brain, key=lambda b: b["id"]):
            handler = handlers.get(b["type"])
            target = b.get("target")
            if target and self.k.canonical.get(target, target) != target:
                continue  # an `@overload` stub or an earlier same-named definition: asked once
            if handler is not None:
                out += [a for a in handler(b) if a.prompts and a.parts]
        return out

    # ---- helpers -----------------------------------------------------------------------------
    def _aspect(
        self, b: dict, kind: str, aspect: str, rank: int, values: dict, parts: list[str], refs: list[str]
    ) -> Aspect:
        subject = b.get("target")
        return Aspect(
            fact=b["id"],
            kind=kind,
            aspect=aspect,
            rank=rank,
            subject=subject,
            prompts=render(kind, aspect, b["id"], values, self.p),
            parts=parts,
            refs=list(dict.fromkeys([r for r in [subject, *refs] if r])),
        )

    def _sym(self, b: dict) -> str:
        node = self.k.nodes.get(b.get("target") or "")
        return tick(self.k.display(node)) if node is not None else tick(b["name"])

    def _cite(self, b: dict) -> str:
        return f"{b['path']}:{b['start_line']}-{b['end_line']}"

    def _kind_word(self, f: dict) -> str:
        return {"function": "function", "method": "method"}.get(f.get("kind", ""), f.get("kind", "symbol"))

    # ---- capabilities: functions and methods -----------------------------------------------
    def capability(self, b: dict) -> list[Aspect]:
        f = b["facts"]
        sym, cite = self._sym(b), self._cite(b)
        qual = f["qualname"]
        doc = clean(f.get("doc", ""))
        values = {
            "sym": sym,
            "nl": words(qual.rsplit(".", 1)[-1]),
            "action": action(qual),
            "goal": goal(f.get("doc", "")),
            "doc": doc_prompt(f.get("doc", "")),
        }
        where = "" if "` in `" in sym else f" in {tick(f['module'])}"  # the display already names it
        intro = sentence(
            f"{sym} [{cite}] is a {self._kind_word(f)}{where} "
            f"with the signature {tick(_sig(qual, f['params']))}"
        )
        role = ""
        if f.get("role") == "http route":
            role = f"It serves the HTTP route {tick(f['route'])}."
        elif f.get("role") == "cli command":
            role = "It is a command-line entry point."
        f = dict(
            f, raises=[r for r in f.get("raises", []) if r.get("id") or _error_name(r["error"], [b], self.k)]
        )
        raises = [self._raise_sentence(b, r) for r in f["raises"]]
        calls = f.get("calls", [])
        callers = f.get("called_by", [])
        tests = f.get("tested_by", [])
        refs_calls = [c["id"] for c in calls]
        refs_callers = [c["id"] for c in callers]
        out: list[Aspect] = []
        # discovery
        disc = [f"Yes: {sym} [{cite}] in {tick(f['module'])}."] + ([doc] if doc else [])
        disc.append(f"Call it as {tick(_sig(qual, f['params']))}." if f["params"] else "")
        out.append(self._aspect(b, "discovery", "capability", 0, values, [p for p in disc if p], []))
        if self.cfg.goal_questions:
            out.append(self._aspect(b, "discovery", "goal", 0, values, [p for p in disc if p], []))
        # explain
        parts = [intro] + ([doc] if doc else []) + ([role] if role else []) + raises[:2]
        if calls:
            parts.append(f"It calls {listing(calls, 3, cap=6)}.")
        if callers:
            parts.append(f"It is called by {listing(callers, 3, cap=4)}.")
        out.append(
            self._aspect(b, "explain", "overview", 0, values, parts, refs_calls[:3] + refs_callers[:3])
        )
        ret = f["params"].rsplit("->", 1)[1].strip() if "->" in f["params"] else ""
        if ret:
            said = (
                f"{sym} [{cite}] returns nothing (its signature says {tick('-> ' + ret)})."
                if ret == "None"
                else f"{sym} [{cite}] returns {tick(ret)}, as its signature {tick(_sig(qual, f['params']))} says."
            )
            out.append(self._aspect(b, "explain", "returns", 1, values, [said] + ([doc] if doc else []), []))
        if raises:
            names = [{"name": e} for e in dict.fromkeys(r["error"] for r in f["raises"])]
            cap = 6 if len(f["raises"]) >= 6 else 0  # the brain keeps six raise sites
            head = f"{sym} [{cite}] raises {listing(names, 4, cap=cap)} in its own code."
            parts = [head, *raises] + ([doc] if doc else [])
            out.append(self._aspect(b, "explain", "raises", 1, values, parts, [r["id"] for r in f["raises"]]))
            checks = [_check(r.get("if", "")) for r in f["raises"][:3]]
            parts = [head, *raises[:4]] + [c for c in dict.fromkeys(checks) if c]
            out.append(self._aspect(b, "diag", "fails", 0, values, parts, [r["id"] for r in f["raises"]]))
        if callers:
            parts = [f"{sym} [{cite}] is called by {listing(callers, 4, cap=4)}."]
            out.append(self._aspect(b, "explain", "callers", 2, values, parts, refs_callers))
        if calls:
            parts = [f"{sym} [{cite}] calls {listing(calls, 6, cap=6)}."]
            out.append(self._aspect(b, "explain", "calls", 2, values, parts, refs_calls))
        if tests:
            parts = [f"{sym} [{cite}] is exercised by the tests {listing(tests, 4, cap=4)}."]
            out.append(self._aspect(b, "explain", "tests", 3, values, parts, [t["id"] for t in tests]))
        # howto
        out.append(
            self._aspect(b, "howto", "usage", 0, values, self._usage(b, sym, cite, qual), refs_callers[:1])
        )
        # architecture: where it lives
        where = [
            f"{sym} is defined in {tick(f['module'])}, file {tick(b['path'])}, lines {b['start_line']}-{b['end_line']} [{cite}]."
        ]
        owner = self.k.nodes.get(self.k.parent.get(b.get("target") or "", ""))
        if owner is not None and owner.type in CLASS_LIKE:
            where.append(f"It is a method of {tick(owner.qualname)} [{owner.citation}].")
        if f.get("exported_by"):
            where.append(f"It is re-exported by {', '.join(tick(m) for m in f['exported_by'][:3])}.")
        out.append(self._aspect(b, "architecture", "where", 1, values, where, [owner.id] if owner else []))
        return out

    def _raise_sentence(self, b: dict, r: dict) -> str:
        line = r.get("line") or 0
        where = f"{b['path']}:{line}-{line}" if line else self._cite(b)
        cond = r.get("if", "")
        when = f" {_cond(cond)}" if cond else ""
        return f"It raises {tick(r['error'])}{when} [{where}]."

    def _usage(self, b: dict, sym: str, cite: str, qual: str) -> list[str]:
        f = b["facts"]
        parts = [f"Call {tick(_sig(qual, f['params'])) if f['params'] else sym} [{cite}]."]
        for c in f.get("called_by", []):
            line = c.get("line") or 0
            caller = self.k.nodes.get(c["id"])
            if not line or caller is None:
                continue
            snip = snippet(
                self.k.lines(caller.path), line, self.cfg.snippet_max_lines, self.cfg.snippet_max_chars
            )
            if snip is None:
                continue
            code, end = snip
            if qual.rsplit(".", 1)[-1] not in code:
                continue  # the recorded line does not show the call itself
            parts.append(f"For example, {tick(caller.qualname)} calls it at [{caller.path}:{line}-{end}]:")
            parts.append(block(code, caller.lang))
            break
        else:
            if f.get("called_by"):
                parts.append(f"It is called by {listing(f['called_by'], 3, cap=4)}.")
        if f.get("tested_by"):
            parts.append(f"Tests that exercise it: {listing(f['tested_by'], 2, cap=4)}.")
        return parts

    # ---- concepts: classes and domain terms ------------------------------------------------
    def concept(self, b: dict) -> list[Aspect]:
        f = b["facts"]
        if "term" in f and f.get("source") == "docs":
            return self._doc_term(b)
        if "term" in f:
            return self._term(b)
        sym, cite = self._sym(b), self._cite(b)
        kind = f.get("kind", "class")
        doc = clean(f.get("doc", ""))
        values = {
            "sym": sym,
            "nl": words(f["qualname"].rsplit(".", 1)[-1]),
            "action": "",  # a class is not something a user does: action templates skip it
            "doc": doc_prompt(f.get("doc", "")),
            "kind": kind,
        }
        methods = [m for m in f.get("methods", []) if m["name"] != "__init__"]
        bases = [x for x in f.get("bases", [])]
        subs = f.get("subclasses", [])
        users = f.get("used_by", [])
        intro = f"{sym} [{cite}] is a {kind} in {tick(f['module'])}."
        out: list[Aspect] = []
        disc = [f"Yes: the {kind} {sym} [{cite}] in {tick(f['module'])}."] + ([doc] if doc else [])
        out.append(self._aspect(b, "discovery", "concept", 0, values, disc, []))
        parts = [intro] + ([doc] if doc else [])
        if bases:
            parts.append(f"It derives from {listing(bases, 3, cap=6)}.")
        if methods:
            parts.append(f"Its methods include {listing(methods, 4)}.")
        out.append(self._aspect(b, "explain", "class", 0, values, parts, [x["id"] for x in bases if x["id"]]))
        if methods:
            n = f"at least {len(methods)}" if len(f["methods"]) >= 24 else str(len(methods))  # brain keeps 24
            parts = [f"{sym} [{cite}] has {n} public methods: {listing(methods, 8)}."]
            out.append(
                self._aspect(b, "explain", "methods", 1, values, parts, [m["id"] for m in methods[:8]])
            )
        if bases:
            parts = [f"{sym} [{cite}] derives from {listing(bases, 6, cap=6)}."]
            out.append(
                self._aspect(b, "explain", "bases", 2, values, parts, [x["id"] for x in bases if x["id"]])
            )
        if subs:
            parts = [f"{sym} [{cite}] is extended by {listing(subs, 6, cap=6)}."]
            out.append(self._aspect(b, "explain", "subclasses", 2, values, parts, [s["id"] for s in subs]))
        if users:
            parts = [f"{sym} [{cite}] is used by {listing(users, 4, cap=4)}."]
            out.append(self._aspect(b, "explain", "users", 3, values, parts, [u["id"] for u in users]))
        where = [
            f"{sym} is defined in {tick(f['module'])}, file {tick(b['path'])}, lines {b['start_line']}-{b['end_line']} [{cite}]."
        ]
        out.append(self._aspect(b, "architecture", "where", 1, values, where, []))
        return out

    def _term(self, b: dict) -> list[Aspect]:
        f = b["facts"]
        term = f["term"]
        values = {"term": term}
        syms = f.get("symbols", [])
        refs = [s["id"] for s in syms]
        files = sorted({s["cite"].rsplit(":", 1)[0] for s in syms})
        disc = [
            f"Yes: {f.get('symbol_count', len(syms))} symbols in {f.get('file_count', 1)} files have the word {tick(term)} in their qualified names.",
            f"The main ones are {listing(syms, 5)}.",
        ]
        mods = [self.k.nodes[p] for p in files if p in self.k.nodes]
        arch = [
            f"Code about {tick(term)} spans {f.get('file_count', len(mods))} files ({f.get('symbol_count', len(syms))} symbols), among them "
            f"{listing([{'name': m.path, 'cite': m.citation} for m in mods], 4)}.",
            f"Key symbols: {listing(syms, 4)}.",
        ]
        return [
            self._aspect(b, "discovery", "term", 0, values, disc, refs),
            self._aspect(b, "architecture", "term", 1, values, arch, refs),
        ]

    def _doc_term(self, b: dict) -> list[Aspect]:
        """A domain term mined from prose: where the docs use it and the code named after it."""
        f = b["facts"]
        term = f["term"]
        uses = [u for u in f.get("uses", []) if u.get("cite")]
        syms = f.get("symbols", [])
        if not uses and not syms:
            return []
        values = {"term": term}
        n_uses, n_files = f.get("use_count", len(uses)), f.get("file_count", len(uses))
        head = (
            f'The term "{term}" occurs {n_uses} times in the prose (docs and docstrings) of {n_files} files.'
        )
        used = f"Docstrings using it: {listing(uses, 4)}." if uses else ""
        named = f"Code named after it: {listing(syms, 4)}." if syms else ""
        refs = [u["id"] for u in uses if u.get("id")] + [x["id"] for x in syms]
        disc = [f"Yes. {head}"] + [p for p in (named, used) if p]
        arch = [p for p in (used, named) if p]
        return [
            self._aspect(b, "discovery", "term", 0, values, disc, refs),
            self._aspect(b, "architecture", "term", 1, values, arch, refs),
        ]

    # ---- errors ------------------------------------------------------------------------------
    def error(self, b: dict) -> list[Aspect]:
        f = b["facts"]
        err = tick(f["error"])
        sites = [s for s in f.get("raised_at", []) if not self._in_test(s["id"])]
        external = bool(f.get("external"))
        if external and (not sites or not _error_name(f["error"], sites, self.k)):
            return []  # raised only by tests, or `raise e` / `raise make_error()`: not an error type
        values = {"err": err}
        if external:
            head = f"{err} is not defined in this repository (a built-in or library error)."
        else:
            head = f"{err} is defined in {tick(f['module'])} [{self._cite(b)}]."
            if f.get("bases"):
                head = head[:-1] + f" and derives from {listing(f['bases'], 2, cap=6)}."
        parts = [head]
        if not external and f.get("doc"):
            parts.append(clean(f["doc"]))
        if sites:
            total = f.get("raise_count", len(sites))
            if total == len(f.get("raised_at", [])):  # the brain listed every site: count those outside tests
                n, where = len(sites), "outside tests"
            else:
                n, where = total, "in the indexed code, tests included"
            parts.append(f"It is raised at {n} place{'s' if n != 1 else ''} {where}.")
            parts += [self._site_sentence(s) for s in sites[:4]]
            if any(s.get("if") for s in sites[:4]):
                parts.append("Check which of these conditions holds for your call.")
        else:
            parts.append("The code graph records no place that raises it directly.")
        out = [self._aspect(b, "diag", "error", 0, values, parts, [s["id"] for s in sites[:4]])]
        for i, s in enumerate(sites[:4]):
            site = self.k.nodes.get(s["id"])
            if site is None:
                continue
            v = dict(values, site=tick(self.k.display(site)))
            cond = s.get("if", "")
            sp = [self._site_sentence(s)]
            sp.append(_check(cond) or "The code states no simple condition right above the raise.")
            out.append(self._aspect(b, "diag", "site", 1 + min(i, 1), v, sp, [s["id"]]))
        subs = f.get("subclasses", [])
        if subs:
            parts = [f"{err} [{self._cite(b)}] is extended by {listing(subs, 6, cap=6)}."]
            out.append(self._aspect(b, "diag", "subclasses", 2, values, parts, [s["id"] for s in subs]))
        return out

    def _in_test(self, node_id: str) -> bool:
        node = self.k.nodes.get(node_id)
        return node is None or self.k.is_test(node)

    def _site_sentence(self, s: dict) -> str:
        when = f" {_cond(s['if'])}" if s.get("if") else ""
        return f"{tick(s['name'])} raises it{when} [{s['cite']}]."

    # ---- recipes -----------------------------------------------------------------------------
    def recipe(self, b: dict) -> list[Aspect]:
        f = b["facts"]
        steps = f.get("steps", [])
        if not steps:
            return []
        src = f.get("from")
        if src == "docs":
            where = f.get("doc", "")
            values = {
                "where": tick(where.rsplit(":", 1)[0]) + f" (line {where.rsplit(':', 1)[-1].split('-')[0]})"
            }
            parts = [f"The example calls {listing(steps, 6)}."]
            return [self._aspect(b, "howto", "docs", 0, values, parts, [s["id"] for s in steps])]
        test = f.get("test") or b["name"]
        goal = f.get("goal", "")
        values = {"goal": goal, "test": tick(test.rsplit("::", 1)[-1])}
        intro = (
            f"The test {tick(test)} [{self._cite(b)}] shows it:"
            if src == "test"
            else f"The example {tick(b['path'])} [{self._cite(b)}] shows it:"
        )
        parts = [intro]
        for i, s in enumerate(steps, 1):
            line = s.get("line") or 0
            code = (
                f" with {tick(s['code'])}"
                if s.get("code") and "`" not in s["code"] and quotable(s["code"])
                else ""
            )
            at = f" [{b['path']}:{line}-{line}]" if line and code else ""
            parts.append(f"{i}. call {tick(s['name'])} [{s['cite']}]{code}{at}.")
        lines = [s["line"] for s in steps if s.get("line")]
        if lines and 2 <= max(lines) - min(lines) + 1 <= self.cfg.snippet_max_lines:
            text = self.k.lines(b["path"])[min(lines) - 1 : max(lines)]
            if text and all(len(t) <= self.cfg.snippet_max_chars for t in text) and quotable("\n".join(text)):
                node = self.k.nodes.get(b.get("target") or "")
                code = textwrap.dedent("\n".join(text)).strip("\n")
                parts[0] = parts[0][:-1] + f" in [{b['path']}:{min(lines)}-{max(lines)}]:"
                parts.insert(1, block(code, node.lang if node else ""))
        return [self._aspect(b, "howto", "recipe", 0, values, parts, [s["id"] for s in steps])]

    # ---- modules -----------------------------------------------------------------------------
    def module(self, b: dict) -> list[Aspect]:
        f = b["facts"]
        if f.get("test") or not f.get("lines"):  # an empty file (a bare __init__.py) has nothing to cite
            return []
        mod = tick(f["module"])
        cite = self._cite(b)
        doc = clean(f.get("doc", ""))
        values = {"mod": mod, "path": tick(f["path"]), "doc": doc_prompt(f.get("doc", ""))}
        out: list[Aspect] = []
        api = f.get("api", [])
        parts = [f"{mod} is the {f['lang']} file {tick(f['path'])} ({f['lines']} lines) [{cite}]."]
        if doc:
            parts.append(doc)
        if api:
            parts.append(f"Its public API ({f.get('api_count', len(api))}) includes {listing(api, 6)}.")
        out.append(self._aspect(b, "architecture", "contents", 0, values, parts, [a["id"] for a in api[:6]]))
        deps = [{"name": d, "cite": self.k.module_cite(d)} for d in f.get("depends_on", [])]
        if deps:
            parts = [f"{mod} [{cite}] depends on {_many(deps)} of this repository: {listing(deps, 8)}."]
            refs = [
                self.k.module_by_name[d["name"]].id for d in deps[:8] if d["name"] in self.k.module_by_name
            ]
            out.append(self._aspect(b, "architecture", "deps", 1, values, parts, refs))
        users = [{"name": d, "cite": self.k.module_cite(d)} for d in f.get("used_by", [])]
        if users:
            parts = [f"{mod} [{cite}] is used by {_many(users)}: {listing(users, 8)}."]
            refs = [
                self.k.module_by_name[d["name"]].id for d in users[:8] if d["name"] in self.k.module_by_name
            ]
            out.append(self._aspect(b, "architecture", "users", 1, values, parts, refs))
        return out


def _many(mods: list) -> str:
    """'3 modules', or 'at least 20 modules' where the brain cut the list at 20."""
    n = len(mods)
    return f"at least {n} modules" if n >= 20 else f"{n} module{'s' if n != 1 else ''}"


def _sig(qual: str, params: str) -> str:
    """`qual(params)`, tidied: the brain keeps a line break's space after `(` in long signatures."""
    return (qual + params).replace("( ", "(").replace(" )", ")")


def _error_name(name: str, sites: list[dict], k: Knowledge) -> bool:
    """Whether an external raised name is an error type, not a variable (`raise e`) or factory call."""
    if len(name) <= 2 or name.startswith("_") or norm_defined(name, k):
        return False
    python = all(s.get("path", "").endswith(".py") for s in sites)
    return not (python and name[:1].islower())


def norm_defined(name: str, k: Knowledge) -> bool:
    """A function or method of the graph has this name (the raise calls a factory)."""
    return any(n.name == name and n.type in ("function", "method") for n in k.by_name(name))


def _cond(cond: str) -> str:
    """'if n > self.qty' -> 'if `n > self.qty`' (the code's own words, marked as code)."""
    for kw in ("else if ", "if ", "while ", "on "):
        if cond.startswith(kw):
            rest = cond[len(kw) :].strip()
            if kw == "on ":
                return (
                    f"when it catches {tick(rest)}"
                    if rest != "any exception"
                    else "when it catches any exception"
                )
            return f"{kw.strip()} {tick(rest)}" if "`" not in rest else f"{kw.strip()} {rest}"
    return f"when {tick(cond)}" if "`" not in cond else f"when {cond}"


def _check(cond: str) -> str:
    """What to check for a raise guarded by `cond` ('' unless the code states a plain `if`)."""
    if not cond.startswith(("if ", "elif ")) or "`" in cond:
        return ""
    return f"So check whether {tick(cond.split(' ', 1)[1].strip())} holds in your case."
