"""What a question asks for, and what part of a repository a file belongs to.

Search ranks library code above tests, examples and docs, because a user who asks how something
works wants the code that does it; a test or an example only shows it being used. That preference
is lifted when the question is about tests, examples or docs themselves ("which test covers ...").
Questions also carry exact handles that words-only ranking blurs: identifiers (`Template.render`),
error class names (`UndefinedError`) and quoted error text ("unexpected end of template"); they
are pulled out here so search can send them to exact-name and raise-site lookups.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from brain.text import code_identifiers

ROLES = ("library", "test", "example", "docs")
_TEST_DIRS = frozenset({"test", "tests", "testing", "testsuite", "unittests", "conftest.py"})
_EXAMPLE_DIRS = frozenset(
    {"example", "examples", "demo", "demos", "sample", "samples", "tutorial", "benchmarks"}
)
_DOC_DIRS = frozenset({"doc", "docs", "documentation"})
_TOOLING = frozenset({"setup.py", "noxfile.py", "tasks.py", "fabfile.py", "conf.py"})

_ASKS_TESTS = re.compile(
    r"\b(tests?|tested|testing|unit ?tests?|pytest|fixtures?|test suite|covered by)\b", re.I
)
_ASKS_EXAMPLES = re.compile(r"\b(examples?|demos?|samples?|tutorials?)\b", re.I)
_ASKS_DOCS = re.compile(r"\b(docs|documentation|sphinx|conf\.py)\b", re.I)
# code the user pasted: fenced blocks and `inline spans`
_CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)
# quoted runs of 2+ words: an error message or a phrase the user copied ("..." '...' `...` “...”)
_QUOTED = re.compile(r"\"([^\"\n]{6,200})\"|“([^”\n]{6,200})”|'([^'\n]{6,200})'|`([^`\n]{6,200})`")
# "SomeError: message" as pasted from a traceback
_TRACEBACK = re.compile(r"\b([A-Z][A-Za-z0-9_]*(?:Error|Exception|Warning))\s*:\s*([^\n]{4,200})")
_ERROR_NAME = re.compile(r"\b([A-Z][A-Za-z0-9_]*(?:Error|Exception|Warning|Exit|Interrupt))\b")


def path_role(path: str) -> str:
    """library, test, example or docs, from the path alone (`tests/test_x.py`, `docs/examples/a.py`)."""
    parts = path.replace("\\", "/").lower().split("/")
    name = parts[-1]
    dirs = set(parts[:-1]) | {w for d in parts[:-1] for w in re.split(r"[-_.]", d) if w}  # typing-examples
    if dirs & _TEST_DIRS or name == "conftest.py" or name.startswith("test_") or name.endswith("_test.py"):
        return "test"
    if dirs & _DOC_DIRS:
        return "example" if dirs & _EXAMPLE_DIRS else "docs"
    if dirs & _EXAMPLE_DIRS or name in _TOOLING:
        return "example"
    return "library"


@dataclass
class Intent:
    """The handles and the wanted part of the repository that a question carries."""

    wants: frozenset[str]  # roles the question asks for; library always
    identifiers: list[str] = field(default_factory=list)  # code-looking tokens (`a_b`, `A.b`, `f()`)
    errors: list[str] = field(default_factory=list)  # error class names (`UndefinedError`)
    quotes: list[str] = field(default_factory=list)  # quoted text, error messages first
    arguments: frozenset[str] = frozenset()  # identifiers written only inside another's call parentheses

    def role_ok(self, role: str) -> bool:
        return role in self.wants


def read_intent(question: str) -> Intent:
    """The `Intent` of one question (deterministic, regular expressions only)."""
    wants = {"library"}
    prose = _CODE.sub(" ", question)  # `class Test` in pasted code is a name, not a question about tests
    if _ASKS_TESTS.search(prose):
        wants.add("test")
    if _ASKS_EXAMPLES.search(prose):
        wants.add("example")
    if _ASKS_DOCS.search(prose):
        wants.add("docs")
    quotes: list[str] = []
    errors: list[str] = []
    for m in _TRACEBACK.finditer(question):
        errors.append(m.group(1))
        quotes.append(m.group(2).strip().strip("\"'`"))
    for m in _QUOTED.finditer(question):
        text = next(g for g in m.groups() if g is not None).strip()
        if len(text.split()) >= 2 and text not in quotes:
            quotes.append(text)
    for m in _ERROR_NAME.finditer(question):
        if m.group(1) not in errors:
            errors.append(m.group(1))
    idents = [t for t in code_identifiers(question) if t not in errors]
    return Intent(frozenset(wants), idents, errors, quotes, argument_identifiers(question))


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def argument_identifiers(question: str) -> frozenset[str]:
    """Names the question writes only as arguments of a call: `stop_after_attempt` in `@retry(stop=stop_after_attempt(3))`.

    Users paste the call they make; its outermost name is what they ask about, and the names
    inside its parentheses configure it. A parenthesis counts as a call's when a name ends right
    before it (prose parentheses, `(e.g. ...)`, do not). A name met both inside and outside
    call parentheses is not an argument.
    """
    inside: set[str] = set()
    outside: set[str] = set()
    depth = 0
    stack: list[bool] = []  # per open parenthesis: is it a call's
    i = 0
    while i < len(question):
        ch = question[i]
        m = (
            _NAME.match(question, i)
            if (ch.isalpha() or ch == "_") and (i == 0 or not _is_name_char(question[i - 1]))
            else None
        )
        if m:
            name = m.group(0).rstrip(".")
            (inside if depth > 0 else outside).add(name)
            i = m.end()
            continue
        if ch == "(":
            call = i > 0 and _is_name_char(question[i - 1])
            stack.append(call)
            depth += call
        elif ch == ")" and stack:
            depth -= stack.pop()
        elif ch == "\n":
            stack, depth = [], 0
        i += 1
    return frozenset(inside - outside)


def _is_name_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"
