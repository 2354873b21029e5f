"""Content check: what the answer says must be the model's own, about code that exists.

Citations and tests cannot catch two failures small models show all the time, and self-tune
would otherwise train on them:
  echo           the answer repeats the question ("Question: Which tests cover ...") and so has
                 enough words without saying anything;
  invented names a file path that is not indexed (`Referencing/spec.py`), or a backticked name
                 (`RefundableResourceException`, `Resolver.lookup.ref`) that is neither a symbol
                 of the graph, nor an indexed file, nor text of the code the answer is about,
                 nor a builtin.
A forced opening `name` [label] (answer.cite_prefix) is correct by construction, so it is these
checks, not that citation, that tell an answer from noise; `verify.count_forced_prefix: false`
also demands a citation the model wrote itself (the 135M model then keeps almost nothing).
"""

from __future__ import annotations

import builtins
import keyword
import re
from dataclasses import dataclass

from answer.citations import CITATION
from extractor.graph import Graph
from selftune.verify_citations import Span

ECHO_WORDS = 8  # an answer sharing this many consecutive words with the question echoes it
_TICKED = re.compile(r"`([^`\n]{1,120})`")
_IDENT = re.compile(r"[A-Za-z_][\w]*(?:\.[A-Za-z_]\w*)*(?:\(\))?")
_WORDS = re.compile(r"\w+")
_PATH = re.compile(r"(?<![\w/.-])[\w.-]+(?:/[\w.-]+)+\.[A-Za-z]\w{0,5}\b")  # a/b.py, src/x/y.ts
_COMMON = set(dir(builtins)) | set(keyword.kwlist) | {"null", "true", "false", "self", "this", "cls"}


@dataclass
class ContentCheck:
    passed: bool
    reason: str = ""
    unknown_names: list[str] | None = None

    def as_dict(self) -> dict:
        return {"passed": self.passed, "reason": self.reason, "unknown_names": self.unknown_names or []}


def echoes(answer: str, question: str, n: int = ECHO_WORDS) -> bool:
    """True when `answer` repeats `n` consecutive words of `question` (case-insensitive)."""
    q = [w.lower() for w in _WORDS.findall(CITATION.sub(" ", question))]
    a = " ".join(w.lower() for w in _WORDS.findall(CITATION.sub(" ", answer)))
    return any(" ".join(q[i : i + n]) in a for i in range(len(q) - n + 1)) if len(q) >= n else False


class ContentChecker:
    """The content check over one graph: its file paths are read once, not per answer."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        self.paths = {f["path"] for f in graph.files()}

    def check(self, answer: str, question: str, subjects: list[Span]) -> ContentCheck:
        """Pass unless the answer echoes the question or names something that does not exist."""
        if echoes(answer, question):
            return ContentCheck(False, f"echoes the question ({ECHO_WORDS}+ words of it)")
        unknown = self.unknown_names(answer, subjects)
        if unknown:
            return ContentCheck(False, f"names not in the code: {', '.join(unknown[:3])}", unknown)
        return ContentCheck(True)

    def unknown_names(self, answer: str, subjects: list[Span]) -> list[str]:
        """File paths and backticked identifiers of `answer` that nothing grounds (graph, files, subject code)."""
        code = "\n".join(self.graph.source(s.path, s.start, s.end) for s in subjects)
        prose = CITATION.sub(" ", answer)
        unknown = [m.group(0) for m in _PATH.finditer(prose) if m.group(0) not in self.paths]
        for m in _TICKED.finditer(prose):
            token = m.group(1).strip()
            if token in self.paths:
                continue
            if not _IDENT.fullmatch(token):  # a snippet or expression, not a name: not checked here
                continue
            name = token.removesuffix("()")
            if name in _COMMON or name in code or _in_graph(self.graph, name):
                continue
            unknown.append(token)
        return list(dict.fromkeys(unknown))


def _in_graph(graph: Graph, name: str) -> bool:
    """A node is called `name`, its qualname is `name` or ends with `.name`, or `name` is module.qualname."""
    like = "%." + name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    q = "SELECT 1 FROM nodes WHERE name = ? OR qualname = ? OR qualname LIKE ? ESCAPE '\\' LIMIT 1"
    if graph.conn.execute(q, (name, name, like)).fetchone():
        return True
    q = (
        "SELECT 1 FROM nodes n JOIN nodes m ON m.path = n.path AND m.type = 'module' "
        "WHERE m.qualname || '.' || n.qualname = ? LIMIT 1"
    )
    return "." in name and graph.conn.execute(q, (name,)).fetchone() is not None
