"""Propose verifiable questions about a module, each tied to the symbols an answer must cite.

Every proposal names its subjects (graph node ids): the citation verifier accepts only lines
inside their spans, and the test verifier runs the tests mapped to them. Module-scoped prompts
come before cross-module ones. A stable hash holds out one in N proposals (at least one): held-out questions are
never answered or trained on; they become the module's eval rows, with a reference answer built
from graph facts, so `python -m trainer.eval` can compare the adapter before and after a refresh.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

from extractor.graph import Graph, GraphNode
from selftune.config import ProposeConfig

FUNC_TYPES = ("function", "method")


@dataclass
class Proposal:
    key: str
    module: str
    kind: str  # explain | behaviour | tests | cross
    scope: str  # module | cross
    prompt: str
    subjects: list[str]  # node ids the answer is about
    files: list[str]
    heldout: bool = False
    reference: str = ""  # graph-fact answer (used for held-out eval rows)
    citations: list[str] = field(default_factory=list)  # reference citations, path:start-end

    def as_dict(self) -> dict:
        return asdict(self)


def _key(module: str, kind: str, subjects: list[str]) -> str:
    return hashlib.sha256("\0".join([module, kind, *subjects]).encode()).hexdigest()[:16]


def _label(n: GraphNode) -> str:
    return f"[{n.citation}]"


def _doc_head(n: GraphNode) -> str:
    doc = (n.doc or "").strip().splitlines()
    return doc[0].strip() if doc else ""


def describe(n: GraphNode) -> str:
    """One-sentence graph fact about a symbol: signature, doc head, raised errors, citation."""
    parts = [f"`{n.qualname}` is a {n.type} in {n.path} {_label(n)}"]
    if n.signature:
        parts.append(f"with signature `{n.signature.strip()}`")
    text = " ".join(parts) + "."
    if head := _doc_head(n):
        text += f" {head}"
    raises = n.meta.get("raises") or []
    if raises:
        text += f" It can raise {', '.join(raises)}."
    return text


def behaviour_prompt(n: GraphNode) -> str:
    return (
        f"What does `{n.qualname}` in {n.path} do, what does it return and what can it raise? "
        "Cite the code as [path:start-end]."
    )


def top_functions(graph: Graph, module: str, k: int) -> list[GraphNode]:
    """The k functions worth asking about: tested first, then called, then longer.

    A function of the code alone (not of what changed), so the same code always yields the same
    proposals and `--resume` recognises them.
    """
    funcs = [n for n in graph.in_file(module) if n.type in FUNC_TYPES]

    def score(n: GraphNode) -> tuple:
        return (
            -len(graph.tests_of(n.id)),
            -len(graph.callers(n.id)),
            -(n.end_line - n.start_line),
            n.id,
        )

    return sorted(funcs, key=score)[:k]


def propose(graph: Graph, module: str, changed: list[str], cfg: ProposeConfig) -> list[Proposal]:
    """Proposals for one module, module-scoped first: at most cfg.max_prompts about its top
    functions, then behaviour and test questions about changed functions that are not among them."""
    tops = top_functions(graph, module, cfg.top_functions)
    top_ids = {n.id for n in tops}
    extras = [
        n for n in (graph.node(i) for i in changed) if n and n.type in FUNC_TYPES and n.id not in top_ids
    ]
    extras = extras[: cfg.top_functions]
    out: list[Proposal] = []

    def add(kind: str, scope: str, prompt: str, subjects: list[GraphNode], reference: str) -> None:
        ids = [n.id for n in subjects]
        out.append(
            Proposal(
                key=_key(module, kind, ids),
                module=module,
                kind=kind,
                scope=scope,
                prompt=prompt,
                subjects=ids,
                files=sorted({n.path for n in subjects}),
                reference=reference,
                citations=[n.citation for n in subjects],
            )
        )

    if tops:
        names = ", ".join(f"`{n.qualname}`" for n in tops)
        add(
            "explain",
            "module",
            f"Explain the top functions of {module} ({names}). Cite each one as [path:start-end].",
            tops,
            "\n".join(describe(n) for n in tops),
        )

    def add_tests(n: GraphNode) -> None:
        # test functions with a pytest id (not whole test modules), the first few by id: a bounded prompt
        tests = [t for t in graph.tests_of(n.id) if t.meta.get("pytest_id")][: cfg.max_tests]
        if tests:
            listed = "; ".join(f"`{t.meta.get('pytest_id', t.id)}` {_label(t)}" for t in tests)
            add(
                "tests",
                "module",
                f"Which tests cover `{n.qualname}` in {n.path}? Cite the function and the tests as [path:start-end].",
                [n, *tests],
                f"`{n.qualname}` {_label(n)} is covered by {listed}.",
            )

    for n in tops:
        add("behaviour", "module", behaviour_prompt(n), [n], describe(n))
    for n in tops:
        add_tests(n)
    if cfg.cross_module:
        for n in tops:
            for callee in graph.callees(n.id):
                if callee.path == module or callee.type not in FUNC_TYPES:
                    continue
                owner = graph.node(callee.path)
                if owner is not None and owner.meta.get("test"):
                    continue
                add(
                    "cross",
                    "cross",
                    f"How does `{n.qualname}` in {n.path} use `{callee.qualname}` from {callee.path}? "
                    "Cite both as [path:start-end].",
                    [n, callee],
                    f"{describe(n)} It calls `{callee.qualname}`: {describe(callee)}",
                )
                break
    seen: set[str] = set()
    unique = [p for p in out if not (p.key in seen or seen.add(p.key))]
    unique = unique[: cfg.max_prompts]
    if cfg.heldout_every > 0 and len(unique) >= 3:
        # one in heldout_every (at least one), chosen by the stable key so reruns hold out the same ones
        n_held = max(1, len(unique) // cfg.heldout_every)
        for p in sorted(unique, key=lambda p: p.key)[:n_held]:
            p.heldout = True
    out = []
    for n in extras:  # the edited functions outside the top ones: asked about too, never held out
        add("behaviour", "module", behaviour_prompt(n), [n], describe(n))
        add_tests(n)
    # module-scoped questions before cross-module ones (stable within each group)
    return sorted(unique + [p for p in out if p.key not in seen], key=lambda p: p.scope != "module")


def eval_row(p: Proposal) -> dict:
    """A held-out proposal as a DESIGN.md dataset row (trainer.eval reads these)."""
    return {
        "id": f"selftune-heldout-{p.key}",
        "kind": f"selftune-{p.kind}",
        "prompt": p.prompt,
        "response": p.reference,
        "refs": p.subjects,
        "citations": p.citations,
        "fact": f"selftune:{p.kind}:{','.join(p.subjects)}",
    }
