"""Answer text from cited statements: cut at a sentence boundary within a token budget, short snippets.

An answer is a list of parts, each a whole sentence (with its `[path:start-end]` citations) or a
fenced code block quoted from the indexed file with the exact lines it came from. Parts are kept
in order while the answer stays within `max_answer_tokens` (brain.text.count_tokens, which errs
high against BPE tokens); the first part that does not fit ends the answer, so an answer never
stops mid-sentence. Text taken from docstrings is cleaned so it cannot pose as a citation.
"""

from __future__ import annotations

import re
import textwrap

from brain.text import citations_in, count_tokens

_WS = re.compile(r"\s+")
_CLOSE = {"(": ")", "[": "]", "{": "}"}
_CONTINUED = ("(", "[", "{", ",", "\\", "+", "-", "*", "/", "=", "|", "&", " and", " or", " not", ".")


def tick(name: str) -> str:
    """A code name in backticks."""
    return f"`{name}`"


def clean(text: str) -> str:
    """Docstring text safe inside an answer: one line, no bracket pairs that read as citations."""
    text = _WS.sub(" ", text or "").strip().replace("[", "(").replace("]", ")")
    if text.count("`") % 2:
        text = text.replace("`", "")
    if text and text[-1] not in ".!?":
        text += "."
    return text


def sentence(text: str) -> str:
    text = text.strip()
    return text if text.endswith((".", "!", "?", ":")) else text + "."


def listing(items: list[dict], limit: int, *, key: str = "name", cite_key: str = "cite", cap: int = 0) -> str:
    """'`a` [p:1-2], `b` [p:3-4] and `c` [p:5-6]' (+ 'and N more' past `limit`).

    `cap` is where the brain cut the list: a list that long may be incomplete, and says so.
    """
    parts = []
    for item in items[:limit]:
        c = item.get(cite_key)
        parts.append(f"{tick(item[key])} [{c}]" if c else tick(item[key]))
    more = len(items) - limit
    capped = bool(cap) and len(items) >= cap
    if more > 0:
        return ", ".join(parts) + (f" and at least {more} more" if capped else f" and {more} more")
    text = ", ".join(parts[:-1]) + " and " + parts[-1] if len(parts) > 1 else (parts[0] if parts else "")
    return text + (", among others" if capped else "")


def fit(parts: list[str], max_tokens: int) -> str | None:
    """Whole parts in order while within budget; None when even the first part does not fit."""
    kept: list[str] = []
    used = 0
    for part in parts:
        n = count_tokens(part)
        if used + n > max_tokens:
            break
        kept.append(part)
        used += n
    if not kept:
        return None
    text = ""
    for part in kept:
        if part.startswith("```"):
            text += "\n" + part + "\n"
        else:
            text += ("" if not text or text.endswith("\n") else " ") + part
    return text.strip()


def citations_of(text: str) -> list[str]:
    """The `path:start-end` citations an answer makes, in order of first appearance."""
    return list(dict.fromkeys(f"{p}:{a}-{b}" for p, a, b in citations_in(text)))


def _balance(line: str, depth: int) -> int:
    in_str: str | None = None
    for ch in line:
        if in_str:
            if ch == in_str:
                in_str = None
        elif ch in "'\"":
            in_str = ch
        elif ch == "#":
            break
        elif ch in _CLOSE:
            depth += 1
        elif ch in _CLOSE.values():
            depth -= 1
    return depth


def snippet(lines: list[str], line: int, max_lines: int, max_chars: int) -> tuple[str, int] | None:
    """The statement starting at 1-based `line`, up to `max_lines` lines: (dedented code, last line).

    None when the statement is longer than `max_lines`, a line is longer than `max_chars` or the
    code holds a Markdown fence: such code is cited, not quoted.
    """
    if not 1 <= line <= len(lines):
        return None
    prev = next((t.split("#", 1)[0].rstrip() for t in reversed(lines[: line - 1]) if t.strip()), "")
    if prev.endswith(_CONTINUED):
        return None  # `line` continues a statement that began earlier
    depth = 0
    end = line
    for i in range(line, min(len(lines), line + max_lines - 1) + 1):
        text = lines[i - 1]
        if len(text) > max_chars or "```" in text:
            return None
        depth = _balance(text, depth)
        end = i
        if depth < 0:
            return None  # `line` is inside a statement that began earlier
        if depth == 0:
            break
    if depth > 0:
        return None
    code = textwrap.dedent("\n".join(lines[line - 1 : end])).strip("\n")
    return (code, end) if code.strip() and quotable(code) else None


def quotable(code: str) -> bool:
    """Code that can be quoted in an answer: no Markdown fence, nothing that reads as a citation."""
    return "```" not in code and not citations_in(code)


def block(code: str, lang: str) -> str:
    return f"```{lang}\n{code}\n```"
