"""The code names an answer uses, and whether anything backs them.

A citation can be checked against the graph; so can a name. A small model asked about a cache
library writes `cache.set_value` or `TTLCache._remove_cache_items` as readily as a real method,
and a reader cannot tell them apart. A name is backed when it is a symbol of the repository (by
qualname or own name), a module or file of it, an identifier of the question or of the code shown,
or Python's own (a builtin, a keyword, a standard-library module and what it holds, an object
protocol dunder). Everything else is reported under the answer (`answer.citations.report`) and
counted by the answer benchmark, the precision side of "names a gold symbol".
"""

from __future__ import annotations

import builtins
import keyword
import re
import sys
from collections.abc import Iterable
from typing import Any

from answer.citations import names_in

_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
_NAME_SHAPE = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
# what the answer's own example code defines: `def my_func`, `class Foo`, `cache = ...`
_DEFINED = re.compile(r"\b(?:def|class)\s+([A-Za-z_]\w*)|^\s*([A-Za-z_]\w*)\s*=(?!=)", re.M)
_PYTHON_NAMES = frozenset(dir(builtins)) | frozenset(keyword.kwlist) | frozenset(sys.stdlib_module_names)
_PYTHON_DUNDERS = frozenset(dir(object)) | frozenset(dir(type)) | frozenset(dir(lambda: None))


def code_names(answer: str) -> list[str]:
    """The API names an answer uses (`answer.citations.names_in`, a decorator's `@` dropped),
    minus what is not a name (`-m`, quoted strings, `e.g`) and what the answer's own code defines
    (an example's `def my_func` is not a claim about the repository)."""
    defined = {a or b for a, b in _DEFINED.findall(answer)}
    out: list[str] = []
    for n in names_in(answer):
        n = n.lstrip("@")
        if not _NAME_SHAPE.fullmatch(n) or all(len(p) == 1 for p in n.split(".")) or n in defined:
            continue
        if n not in out:
            out.append(n)
    return out


class KnownNames:
    """Whether a name is backed (see the module docstring), for one question and its code shown.

    `symbols` is an `answer.citations.SymbolTable`; `shown` anything with `.code`."""

    def __init__(self, symbols: Any, question: str, shown: Iterable[Any] = ()) -> None:
        self.symbols = symbols
        self.words = set(_IDENTIFIER.findall(question))
        for b in shown:
            self.words.update(_IDENTIFIER.findall(b.code))

    def __call__(self, name: str) -> bool:
        name = name.split("=", 1)[0].removeprefix("self.").strip(".")
        parts = [p for p in name.split(".") if p]
        if not parts:
            return True
        last = parts[-1]
        if parts[0] in _PYTHON_NAMES or last in _PYTHON_DUNDERS or last in self.words:
            return True
        if self.symbols.named(name) or self.symbols.named(last):
            return True
        # a module or file: a name rarely gets this far, so the paths are scanned here, not kept
        as_path = name.removesuffix(".py").replace(".", "/")
        stems = (p.rsplit(".", 1)[0] for p in self.symbols.paths())
        return any(p == as_path or p.endswith("/" + as_path) for p in stems)

    def unknown(self, answer: str) -> list[str]:
        """The answer's code names that nothing backs, in order of first use."""
        return [n for n in code_names(answer) if not self(n)]
