"""Dataset statistics: rows per kind and split, coverage of public symbols, answer length, validity."""

from __future__ import annotations

from collections import Counter
from typing import Any

from brain.text import count_tokens
from dataset.config import KINDS
from dataset.knowledge import Knowledge


def coverage(rows: list[dict[str, Any]], k: Knowledge) -> dict[str, Any]:
    """Share of public functions, methods and classes that at least one positive row asks about.

    A row asks about its `subject` (None for questions about a domain term or a README example).
    """
    public = k.public_symbols()
    asked = {r["subject"] for r in rows if not r.get("negative") and r.get("subject")}
    missing = [p for p in public if p not in asked]
    by_type: dict[str, list[int]] = {}
    for p in public:
        t = k.nodes[p].type
        t = "class" if t not in ("function", "method") else t
        by_type.setdefault(t, [0, 0])
        by_type[t][1] += 1
        by_type[t][0] += p in asked
    return {
        "public_symbols": len(public),
        "covered": len(public) - len(missing),
        "share": round((len(public) - len(missing)) / len(public), 4) if public else 1.0,
        "by_type": {t: {"covered": c, "total": n} for t, (c, n) in sorted(by_type.items())},
        "missing_examples": missing[:20],
    }


def summarize(
    train: list[dict[str, Any]], evals: list[dict[str, Any]], k: Knowledge, extra: dict[str, Any]
) -> dict[str, Any]:
    rows = train + evals
    per_kind: dict[str, dict[str, int]] = {}
    for kind in KINDS:
        mine = [r for r in rows if r["kind"] == kind]
        per_kind[kind] = {
            "positive": sum(not r["negative"] for r in mine),
            "negative": sum(r["negative"] for r in mine),
            "train": sum(r["kind"] == kind for r in train),
            "eval": sum(r["kind"] == kind for r in evals),
        }
    cites = [c for r in rows for c in r["citations"]]
    valid = sum(k.resolves(c) for c in cites)
    tokens = [count_tokens(r["response"]) for r in rows]
    facts = Counter(r["fact"] for r in rows)
    return {
        "rows": {"total": len(rows), "train": len(train), "eval": len(evals)},
        "per_kind": per_kind,
        "facts": {
            "total": len(facts),
            "eval": len({r["fact"] for r in evals}),
            "mean_rows_per_fact": round(len(rows) / len(facts), 2) if facts else 0.0,
            "with_several_questions": sum(
                c > 1 for c in Counter(r["fact"] for r in rows if not r["negative"]).values()
            ),
        },
        "coverage": coverage(rows, k),
        "answer_tokens": {
            "mean": round(sum(tokens) / len(tokens), 1) if tokens else 0.0,
            "max": max(tokens, default=0),
        },
        "citations": {
            "total": len(cites),
            "valid": valid,
            "validity": round(valid / len(cites), 4) if cites else 1.0,
        },
        **extra,
    }


def report(stats: dict[str, Any]) -> str:
    """The human-readable summary printed at the end of a run."""
    lines = [f"rows: {stats['rows']['total']} (train {stats['rows']['train']}, eval {stats['rows']['eval']})"]
    for kind, c in stats["per_kind"].items():
        want = stats["config"]["counts"].get(kind)
        lines.append(
            f"  {kind:<13} {c['positive']:>5} positive (asked {want}) + {c['negative']:>4} negative;"
            f" train {c['train']}, eval {c['eval']}"
        )
    cov = stats["coverage"]
    lines.append(
        f"coverage: {cov['covered']}/{cov['public_symbols']} public functions, methods and classes"
        f" ({100 * cov['share']:.1f} %)"
    )
    cit = stats["citations"]
    lines.append(f"citations: {cit['valid']}/{cit['total']} resolve ({100 * cit['validity']:.1f} %)")
    lines.append(
        f"mean answer length: {stats['answer_tokens']['mean']} tokens (max {stats['answer_tokens']['max']})"
    )
    lk = stats["leakage"]
    lines.append(
        f"leakage eval->train: facts {lk['facts']}, prompts {lk['prompts']}, answers {lk['answers']}"
    )
    ctx = stats.get("context")
    if ctx:
        lines.append(
            f"code context: train {ctx['train']} rows ({ctx['train_absent']} with the answering code left out,"
            f" {ctx['train_negative']} negatives), eval {ctx['eval']} rows (search showed the answering code"
            f" for {ctx['eval_code_shown']}, not for {ctx['eval_absent']}; {ctx['eval_negative']} negatives);"
            f" {ctx['bare']} kept the bare question (no code fit the budget)"
        )
    for reason in stats.get("shortfalls", {}).values():
        lines.append(f"short: {reason}")
    return "\n".join(lines)
