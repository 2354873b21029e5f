"""Domain terms mined from prose: README/Markdown files and docstrings/doc comments.

Class and module names give the code's own vocabulary (brain.ontology's `terms`); the words
people use for the domain ("shopping cart", "Stock Keeping Unit", "Stripe") often live only in
the docs. This module finds them without a language model, deterministically:

- prose only: fenced code blocks, inline code, URLs and Markdown link targets are removed;
- candidates are runs of 2 to `max_words` content words inside one clause (no stopword, no
  filler word, no digit, 3+ letters each), lower-cased, plus single Capitalised words met in
  the middle of a sentence (names of products, standards, services);
- a term counts once per file; terms found in fewer than `min_files` files are dropped, and a
  shorter phrase is dropped when a longer kept phrase holding it occurs in the same files.

What is returned are occurrences (term, file, line); the ontology turns them into concept
nodes with citations to indexed lines.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from brain.text import STOPWORDS

# words frequent in any documentation that name no domain thing
_FILLER_TEXT = """able about above after again against along already although always among another
    anything around back based because before below between both call called calls case cases change
    changes class code come comes default defaults describe described does done doing down during either
    else end ends enough etc even example examples false file files first following found full get gets
    give gives good here however instead its keep keeps know last later least less let like likely line
    lines list lists look made make makes many might more most much must need needs never new next none
    note now number object objects often once one ones otherwise out over part per please possible
    rather really return returns returned run runs same see set sets should show shows simple since
    still sure take takes than thing things those though three through thus true two type types under
    unless until upon usually value values want way ways well whether within without work works yet
    method methods function functions parameter parameters argument arguments string str int bool dict
    true none self cls optional required raise raises raised error errors todo fixme note new old"""
FILLER = frozenset(_FILLER_TEXT.split()) | STOPWORDS

_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"`[^`]*`")
_URL = re.compile(r"https?://\S+|\]\([^)]*\)|<[^>]+>")
_CLAUSE = re.compile(r"[.,;:!?()\[\]{}\"*_=|#>/\\]+|\s-\s|--")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*[A-Za-z]|[A-Za-z]")


@dataclass
class TermUse:
    """One place a term is used: a file, a 1-based line, and the graph node whose doc holds it."""

    file: str
    line: int
    node_id: str | None = None


@dataclass
class MinedTerm:
    term: str
    files: set[str] = field(default_factory=set)
    uses: list[TermUse] = field(default_factory=list)  # the first use in each file, then a few more
    count: int = 0  # all uses


def prose_lines(text: str, markdown: bool) -> Iterator[tuple[int, str]]:
    """(0-based offset, prose) per line: Markdown code blocks, inline code, URLs and links removed."""
    in_code = False
    for i, line in enumerate(text.splitlines()):
        if markdown and _FENCE.match(line):
            in_code = not in_code
            continue
        if in_code or (markdown and line.startswith(("    ", "\t"))):
            continue
        yield i, _URL.sub(" ", _INLINE_CODE.sub(" ", line))


def _good(word: str) -> bool:
    w = word.lower()
    return len(w) >= 3 and w not in FILLER and "'" not in w


def candidates(prose: str, max_words: int) -> Iterator[str]:
    """The candidate terms of one line of prose (see the module docstring); repeats included."""
    for clause in _CLAUSE.split(prose):
        words = _WORD.findall(clause)
        for i, word in enumerate(words):
            # a Capitalised word inside the clause (not its first word), not an ALL-CAPS shout
            if i > 0 and word[0].isupper() and not word.isupper() and word[1:].islower() and _good(word):
                yield word
        run: list[str] = []
        for word in [*words, ""]:
            if word and _good(word) and (word.islower() or word.istitle()):
                run.append(word.lower())
                continue
            for n in range(2, max_words + 1):
                for j in range(len(run) - n + 1):
                    yield " ".join(run[j : j + n])
            run = []


def mine_terms(
    documents: Iterable[tuple[str, int, str, str | None, bool]],
    *,
    min_files: int,
    max_terms: int,
    max_words: int,
    exclude: set[str] | None = None,
) -> list[MinedTerm]:
    """Terms used in at least `min_files` files, most widely used first.

    `documents` yields (file, first line, text, graph node id or None, is Markdown); a docstring
    is passed with the line its node starts on, so a use's line is approximate there and exact in
    Markdown. `exclude` holds terms (lower case) already covered elsewhere, such as class names.
    """
    exclude = exclude or set()
    found: dict[str, MinedTerm] = {}
    for file, first_line, text, node_id, markdown in documents:
        for offset, prose in prose_lines(text, markdown):
            for term in candidates(prose, max_words):
                if term.lower() in exclude:
                    continue
                mined = found.setdefault(term, MinedTerm(term))
                mined.count += 1
                if file not in mined.files or len(mined.uses) < 12:
                    mined.uses.append(TermUse(file, first_line + offset, node_id))
                mined.files.add(file)
    kept = [m for m in found.values() if len(m.files) >= min_files]
    # a phrase inside a longer kept phrase used in the same files says nothing the longer one does not
    by_files: dict[frozenset[str], list[str]] = defaultdict(list)
    for m in kept:
        by_files[frozenset(m.files)].append(m.term)
    redundant = set()
    for terms in by_files.values():
        for t in terms:
            if any(t != u and f" {t} " in f" {u} " for u in terms):
                redundant.add(t)
    kept = [m for m in kept if m.term not in redundant]
    kept.sort(key=lambda m: (-len(m.files), -m.count, m.term))
    return kept[:max_terms]
