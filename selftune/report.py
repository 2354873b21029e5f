"""The self-tune report: per module proposed, kept, failed (with reasons) and time per stage.

Written as report.json (everything, for scripts and benchmarks) and report.md (for people) in
the work folder after every run, including runs that found nothing to do.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from nanodex.paths import atomic_write_text


def module_summary(rows: list[dict[str, Any]], heldout: int, skipped_resume: int) -> dict[str, Any]:
    """Counts and failure reasons over one module's answered proposals."""
    reasons: Counter[str] = Counter()
    for r in rows:
        if r["keep"]:
            continue
        if not r["verify"]["citations"]["passed"]:
            reasons["citations: " + _short(r["verify"]["citations"]["reason"])] += 1
        content = r["verify"].get("content") or {"passed": True}
        if not content["passed"]:
            reasons["content: " + _short(content["reason"])] += 1
        if not r["verify"]["tests"]["passed"]:
            reasons["tests: " + _short(r["verify"]["tests"]["reason"])] += 1
    return {
        "proposed": len(rows) + heldout + skipped_resume,
        "heldout": heldout,
        "answered": len(rows),
        "skipped_resume": skipped_resume,
        "kept": sum(1 for r in rows if r["keep"]),
        "failed": sum(1 for r in rows if not r["keep"]),
        "soft_pass_no_tests": sum(
            1 for r in rows if r["verify"]["tests"]["status"] in ("none-mapped", "skipped")
        ),
        "fail_reasons": dict(reasons.most_common()),
    }


def _short(reason: str) -> str:
    """A reason without its specific path/line detail, so equal failures group together."""
    head = reason.split(":", 1)[0] if "bad citation" in reason else reason
    return head.split(" (", 1)[0][:120]


def write_report(work_dir: Path, report: dict[str, Any]) -> tuple[Path, Path]:
    js, md = work_dir / "report.json", work_dir / "report.md"
    atomic_write_text(js, json.dumps(report, indent=2, sort_keys=False) + "\n")
    atomic_write_text(md, render_markdown(report))
    return js, md


def _s(x: Any, digits: int = 1) -> str:
    return "-" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def render_markdown(rep: dict[str, Any]) -> str:
    out = [
        "# Self-tune report",
        "",
        f"Repository `{rep['repo']}`, graph `{rep['graph']}`, base `{rep['base']}`, adapter `{rep['adapter']}`; "
        f"answerer `{rep['answerer']}`; sandbox `{rep['sandbox']}`; {'all modules' if rep['all'] else 'changed modules'}"
        f"{', resumed' if rep['resume'] else ''}"
        + (
            f"; never run (verify.exclude_tests): {rep['exclude_tests']}."
            if rep.get("exclude_tests")
            else "."
        ),
        "",
        f"Extract: {rep['extract'].get('summary', '-')}",
        "",
        f"Modules changed: {len(rep['changed'])}; self-tuned (curriculum order): {len(rep['modules'])}.",
        "",
        "| module | tests | coverage | centrality | proposed | held out | answered | kept | failed | resumed | "
        "propose s | answer s | verify s | adapter |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for m in rep["modules"]:
        c, t, a = m["counts"], m["seconds"], m.get("adapter") or {}
        out.append(
            f"| {m['module']} | {m['rank']['tests']} | {m['rank']['coverage']} | {m['rank']['centrality']} | "
            f"{c['proposed']} | {c['heldout']} | {c['answered']} | {c['kept']} | {c['failed']} | {c['skipped_resume']} | "
            f"{_s(t.get('propose'))} | {_s(t.get('answer'))} | {_s(t.get('verify'))} | {a.get('status', '-')} |"
        )
    out += ["", "## Failures", ""]
    any_fail = False
    for m in rep["modules"]:
        for reason, n in m["counts"]["fail_reasons"].items():
            out.append(f"- {m['module']}: {n} x {reason}")
            any_fail = True
    if not any_fail:
        out.append("- none")
    ds = rep.get("dataset") or {}
    out += [
        "",
        "## Outputs",
        "",
        f"- distill buffer: `{rep['distill']}` ({rep.get('distill_rows', 0)} rows)",
        f"- dataset: `{ds.get('path', '-')}`: {ds.get('rows', 0)} `selftune` rows; dropped {ds.get('dropped', {})}",
        f"- refresh of the main adapter: {json.dumps(rep.get('refresh') or {})}",
    ]
    ev = rep.get("eval") or {}
    if ev.get("before") or ev.get("after"):
        out += ["", "## Held-out questions of the changed modules (trainer.eval)", "",
                "| metric | before: base | before: adapter | after: adapter |", "|---|---|---|---|"]  # fmt: skip
        b, a = ev.get("before") or {}, ev.get("after") or {}
        base = b.get("base") or a.get("base") or {}  # the base model is the same before and after
        # shares to 0.001 (0.56 must not print as 0.6), perplexity to 0.1
        for key, digits in (
            ("exact_reference_accuracy", 3),
            ("citation_validity", 3),
            ("answers_with_citation", 3),
            ("answer_perplexity", 1),
        ):
            cells = [base.get(key), (b.get("adapter") or {}).get(key), (a.get("adapter") or {}).get(key)]
            out.append(f"| {key} | " + " | ".join(_s(c, digits) for c in cells) + " |")
        out.append(f"\n{ev.get('rows', 0)} held-out rows in `{ev.get('dataset', '-')}`.")
    out += ["", "## Time per stage (s)", ""]
    out += [f"- {k}: {_s(v)}" for k, v in rep["seconds"].items()]
    return "\n".join(out) + "\n"
