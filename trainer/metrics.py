"""Scoring answers to held-out questions: referenced symbols, citations, answer perplexity.

Each metric answers one question about the expert honestly and cheaply:
  - exact reference: does the answer name the symbol (its qualname) or the file the question is
    about? Matching is literal and case-sensitive on identifier boundaries, and a plain-word name
    (`total`) counts only as code (`total` in backticks or `total(`), so a fluent answer that
    never names the code scores zero;
  - citation validity: of the `[path:start-end]` citations the answer makes, how many resolve
    (in the code graph when one is given, else against the citations of the dataset itself);
  - answer perplexity: exp(mean NLL) of the reference answers' tokens given the prompt, over all
    answer tokens of the set: lower means the model finds the correct answers more likely.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch

from answer.citations import CITATION, Citation, parse
from trainer.data import IGNORE, Collator, Encoded


def extract_citations(answer: str) -> list[Citation]:
    """Every citation of `answer`, repeats included (each one is scored)."""
    return [parse(m.group(0)) for m in CITATION.finditer(answer)]  # type: ignore[misc]


def expected_names(row: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(symbol qualnames, file paths) a correct answer to `row` may name, from refs and citations.

    Node ids are `path::Qual.name` (a module's id is its path).
    """
    symbols: set[str] = set()
    paths: set[str] = set()
    for ref in row.get("refs") or []:
        path, _, qual = str(ref).partition("::")
        paths.add(path)
        if qual:
            symbols.add(qual)
    for cit in row.get("citations") or []:
        c = parse(str(cit))
        if c:
            paths.add(c.path)
    return symbols, paths


def _names(text: str, name: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(name)}(?![\w])", text) is not None


def _names_symbol(text: str, name: str) -> bool:
    """A qualname (`Cart.add`) or a distinctive name (`run_main`, `toJSON`) anywhere; a plain word
    (`total`, `name`) only as code: in backticks or called, so prose does not count as a hit."""
    if "." in name or "_" in name or any(c.isdigit() for c in name) or any(c.isupper() for c in name[1:]):
        return _names(text, name)
    return re.search(rf"`{re.escape(name)}`|(?<![\w.]){re.escape(name)}\(", text) is not None


def reference_hit(answer: str, row: dict[str, Any]) -> dict[str, bool] | None:
    """Which expected names the answer contains; None when the row names nothing to check."""
    symbols, paths = expected_names(row)
    if not symbols and not paths:
        return None
    symbol = any(_names_symbol(answer, s) for s in symbols)
    path = any(_names(answer, p) for p in paths)
    return {"symbol": symbol, "file": path, "any": symbol or path}


Resolver = Callable[[Citation], bool]


def dataset_resolver(rows: Iterable[dict[str, Any]]) -> Resolver:
    """Without a graph: a citation is valid when it overlaps a citation some dataset row makes."""
    known: dict[str, list[Citation]] = {}
    for row in rows:
        for cit in row.get("citations") or []:
            c = parse(str(cit))
            if c:
                known.setdefault(c.path, []).append(c)
    return lambda c: any(c.overlaps(k) for k in known.get(c.path, []))


def graph_resolver(graph: Any) -> Resolver:
    """With a code graph (extractor.graph.Graph): the file exists and the lines are inside it."""
    return lambda c: bool(graph.resolves(c.path, c.start, c.end))


def score_answer(answer: str, row: dict[str, Any], resolves: Resolver) -> dict[str, Any]:
    cits = extract_citations(answer)
    own = [c for c in (parse(str(x)) for x in row.get("citations") or []) if c]
    return {
        "reference": reference_hit(answer, row),
        "citations": len(cits),
        "valid_citations": sum(1 for c in cits if resolves(c)),
        "cites_reference": any(c.overlaps(o) for c in cits for o in own),
    }


def summarize(scores: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Rates over a list of score_answer results."""
    refs = [s["reference"] for s in scores if s["reference"] is not None]
    total_cits = sum(s["citations"] for s in scores)
    valid = sum(s["valid_citations"] for s in scores)
    n = max(len(scores), 1)
    return {
        "answers": len(scores),
        "exact_reference_accuracy": _rate(sum(r["any"] for r in refs), len(refs)),
        "symbol_accuracy": _rate(sum(r["symbol"] for r in refs), len(refs)),
        "file_accuracy": _rate(sum(r["file"] for r in refs), len(refs)),
        "answers_with_citation": round(sum(1 for s in scores if s["citations"]) / n, 4),
        "citations": total_cits,
        "valid_citations": valid,
        "citation_validity": _rate(valid, total_cits),
        "cites_reference": round(sum(1 for s in scores if s["cites_reference"]) / n, 4),
    }


def _rate(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


@torch.no_grad()
def answer_perplexity(
    model: Any, examples: Sequence[Encoded], pad_id: int, batch_size: int = 8
) -> dict[str, float]:
    """Token-weighted perplexity of the reference answers (labels != IGNORE) under `model`."""
    collate = Collator(pad_id=pad_id)
    device = next(model.parameters()).device
    nll_sum, count = 0.0, 0
    order = sorted(range(len(examples)), key=lambda i: len(examples[i].input_ids))
    for i in range(0, len(order), batch_size):
        feats = [
            {"input_ids": examples[j].input_ids, "labels": examples[j].labels}
            for j in order[i : i + batch_size]
        ]
        batch = {k: v.to(device) for k, v in collate(feats).items()}
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
        shift_logits = logits[:, :-1].reshape(-1, logits.size(-1))
        shift_labels = batch["labels"][:, 1:].reshape(-1)
        nll = torch.nn.functional.cross_entropy(
            shift_logits, shift_labels, ignore_index=IGNORE, reduction="sum"
        )
        nll_sum += float(nll)
        count += int((shift_labels != IGNORE).sum())
    mean = nll_sum / max(count, 1)
    return {
        "answer_nll": round(mean, 4),
        "answer_perplexity": round(math.exp(mean), 3),
        "answer_tokens": count,
    }
