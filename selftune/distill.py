"""The distill buffer (what was tried and how it scored) and the `selftune` dataset rows.

distill.jsonl is a rolling buffer: one row per answered proposal with its prompt, selected
modules/files, citations, verifier results, adapter stats and keep/skip score; the newest
`max_rows` survive a compaction. A row's key ties it to the proposal *and* the module's
fingerprint, so `--resume` skips exactly the work already done for this version of the code.

Kept rows become training rows of kind `selftune`: deduplicated by prompt, and never about an
eval fact (an eval row's subject, or its prompt) nor one of self-tune's own held-out questions.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nanodex.log import get_logger
from nanodex.paths import atomic_write_text

log = get_logger("selftune.distill")


def row_key(proposal_key: str, module_fingerprint: str) -> str:
    return hashlib.sha256(f"{proposal_key}\0{module_fingerprint}".encode()).hexdigest()[:20]


def score(citations_passed: bool, test_status: str) -> float:
    """0..1: half for the citations, half for the tests (a soft pass, no test run or all skipped: 0.4)."""
    tests = {"passed": 0.5, "none-mapped": 0.4, "skipped": 0.4, "disabled": 0.4}.get(test_status, 0.0)
    return round((0.5 if citations_passed else 0.0) + tests, 3)


class DistillBuffer:
    """distill.jsonl: appended row by row (a crash loses at most the row being written)."""

    def __init__(self, path: Path, max_rows: int) -> None:
        self.path, self.max_rows = path, max_rows
        self.rows: dict[str, dict[str, Any]] = {}
        if path.is_file():
            bad = 0
            for line in path.read_text(encoding="utf-8").splitlines():
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    bad += 1  # a torn last line from an interrupted run
                    continue
                self.rows.pop(row["key"], None)  # re-insert: the latest version of a key wins, in order
                self.rows[row["key"]] = row
            if bad:
                log.warning("%s: skipped %d unreadable line(s)", path, bad)

    def done(self, key: str) -> bool:
        return key in self.rows

    def add(self, row: dict[str, Any]) -> None:
        self.rows.pop(row["key"], None)
        self.rows[row["key"]] = row
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, sort_keys=True) + "\n")

    def compact(self) -> int:
        """Rewrite the file with the newest max_rows rows (one per key); returns how many dropped."""
        rows = list(self.rows.values())
        dropped = max(0, len(rows) - self.max_rows) if self.max_rows > 0 else 0
        rows = rows[dropped:]
        self.rows = {r["key"]: r for r in rows}
        atomic_write_text(self.path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
        return dropped

    def kept(self, modules: Iterable[str] | None = None) -> list[dict[str, Any]]:
        wanted = set(modules) if modules is not None else None
        return [r for r in self.rows.values() if r["keep"] and (wanted is None or r["module"] in wanted)]


def _norm(prompt: str) -> str:
    return re.sub(r"\s+", " ", prompt.strip().lower())


def eval_exclusions(eval_paths: Iterable[Path]) -> tuple[set[str], set[str]]:
    """(excluded facts, normalized prompts) of held-out rows that training must never touch.

    Facts are `subject:<graph node>` for the dataset's eval rows (a kept row about any subject of
    an eval question is dropped) and the `fact` key (`selftune:<kind>:<subjects>`) of self-tune's
    own held-out questions (the same question about the same symbols is dropped; other questions
    about the module may train, which is what the before/after eval measures).
    """
    facts: set[str] = set()
    prompts: set[str] = set()
    for p in eval_paths:
        if not p.is_file():
            continue
        for line in p.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            prompts.add(_norm(str(row.get("prompt", ""))))
            fact = str(row.get("fact") or "")
            if fact.startswith("selftune:"):
                facts.add(fact)
            elif row.get("subject"):
                facts.add(f"subject:{row['subject']}")
    return facts, prompts


def eval_rows_about(path: Path, modules: set[str]) -> list[dict[str, Any]]:
    """Rows of an eval set whose subject (or, without one, first ref) lies in one of `modules`."""
    if not path.is_file() or not modules:
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        about = row.get("subject") or next(iter(row.get("refs") or []), None)
        if about and str(about).split("::", 1)[0] in modules:
            out.append(row)
    return out


def _facts_of(r: dict[str, Any]) -> set[str]:
    return {
        f"selftune:{r['proposal_kind']}:{','.join(r['subjects'])}",
        *(f"subject:{s}" for s in r["subjects"]),
    }


def to_dataset_row(r: dict[str, Any]) -> dict[str, Any]:
    cits = [f"{c['path']}:{c['start']}-{c['end']}" for c in r["verify"]["citations"]["citations"] if c["ok"]]
    return {
        "id": f"selftune-{r['key']}",
        "kind": "selftune",
        "prompt": r["prompt"],
        "response": r["answer"],
        "refs": r["subjects"],
        "citations": list(dict.fromkeys(cits)),
        # the conversation exactly as it was asked (answer.prompt, with the code shown), so a refresh
        # trains the adapter on the served layout; rows from before `asked` was recorded: bare
        "messages": [
            *(r.get("asked") or [{"role": "user", "content": r["prompt"]}]),
            {"role": "assistant", "content": r["answer"]},
        ],  # fmt: skip
        "fact": f"selftune:{r['proposal_kind']}:{','.join(r['subjects'])}",
        "subject": r["subjects"][0] if r["subjects"] else None,
        "module": r["module"],
    }


def dataset_rows(
    kept: list[dict[str, Any]], excluded_facts: set[str], excluded_prompts: set[str]
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Kept buffer rows -> `selftune` dataset rows (newest per prompt), minus eval overlaps."""
    by_prompt: dict[str, dict[str, Any]] = {}
    for r in kept:
        by_prompt[_norm(r["prompt"])] = r  # later rows (newer answers) replace older ones
    out, dropped = [], {"duplicate_prompt": len(kept) - len(by_prompt), "eval_prompt": 0, "eval_fact": 0}
    for norm, r in by_prompt.items():
        if norm in excluded_prompts:
            dropped["eval_prompt"] += 1
        elif _facts_of(r) & excluded_facts:
            dropped["eval_fact"] += 1
        else:
            out.append(to_dataset_row(r))
    return out, dropped


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))
