"""Checks every row must pass: the row schema, resolvable citations, truly absent negatives, no leaks.

Used by the build (a row that fails is dropped and counted, never written) and by the tests,
which re-run them on the written files.
"""

from __future__ import annotations

import re
from typing import Any

from dataset.compose import citations_of
from dataset.config import KINDS
from dataset.knowledge import Knowledge
from dataset.selection import norm_prompt

CITATION = re.compile(r"^[^\s:\[\]]+(?:[^\s\[\]]*):\d+-\d+$")
FIELDS: dict[str, type] = {
    "id": str,
    "kind": str,
    "prompt": str,
    "response": str,
    "refs": list,
    "citations": list,
    "messages": list,
    "fact": str,
    "negative": bool,
}


def schema_errors(row: dict[str, Any]) -> list[str]:
    """What is wrong with a row's shape (empty list when nothing)."""
    errs = []
    for key, tp in FIELDS.items():
        if not isinstance(row.get(key), tp):
            errs.append(f"`{key}` missing or not {tp.__name__}")
    if errs:
        return errs
    if row["kind"] not in KINDS:
        errs.append(f"unknown kind {row['kind']!r}")
    if not row["prompt"].strip() or not row["response"].strip():
        errs.append("empty prompt or response")
    if not all(isinstance(r, str) and r for r in row["refs"]) or not row["refs"]:
        errs.append("refs must be a non-empty list of node ids")
    if not row["citations"] or not all(isinstance(c, str) and CITATION.match(c) for c in row["citations"]):
        errs.append("citations must be a non-empty list of path:start-end")
    if citations_of(row["response"]) != row["citations"]:
        errs.append("citations differ from the ones in the response")
    msgs = row["messages"]
    labels = row.get("context") or []
    user = msgs[0].get("content", "") if msgs and isinstance(msgs[0], dict) else ""
    asked = (
        user.endswith(f"Question: {row['prompt'].strip()}") and all(f"{lb}\n```" in user for lb in labels)
        if labels  # the query CLI's form (answer.prompt): instruction, labelled code, question
        else user == row["prompt"]
    )
    if (
        len(msgs) != 2
        or not isinstance(msgs[0], dict)
        or msgs[0].get("role") != "user"
        or not asked
        or msgs[1] != {"role": "assistant", "content": row["response"]}
    ):
        errs.append("messages must be [user: prompt (with the code of `context`), assistant: response]")
    if row["negative"] and not isinstance(row.get("absent"), str):
        errs.append("a negative row names the `absent` identifier")
    return errs


def bad_citations(row: dict[str, Any], k: Knowledge) -> list[str]:
    """Citations of the row that do not resolve in the graph, and refs that are not graph nodes."""
    bad = [c for c in row.get("citations", []) if not k.resolves(c)]
    bad += [f"ref {r}" for r in row.get("refs", []) if r not in k.nodes]
    return bad


def present_negatives(rows: list[dict[str, Any]], k: Knowledge) -> list[str]:
    """`absent` names of negative rows that do exist in the graph after all (must be empty)."""
    return [r["absent"] for r in rows if r.get("negative") and k.name_exists(r["absent"])]


def leaks(train: list[dict[str, Any]], evals: list[dict[str, Any]]) -> dict[str, int]:
    """Eval facts, prompts and positive answers that also occur in train (all must be 0)."""
    t_facts = {r["fact"] for r in train}
    t_prompts = {norm_prompt(r["prompt"]) for r in train}
    t_answers = {r["response"] for r in train if not r.get("negative")}
    return {
        "facts": len({r["fact"] for r in evals} & t_facts),
        "prompts": sum(norm_prompt(r["prompt"]) in t_prompts for r in evals),
        "answers": sum(r["response"] in t_answers for r in evals if not r.get("negative")),
    }
