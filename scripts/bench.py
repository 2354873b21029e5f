"""`make bench` / `python -m scripts.bench`: run every registered benchmark section and print its tables.

A section is a module with `run(quick: bool) -> Section`; it prints its own tables while it runs
and returns its headline metrics and target checks. Adding a section (brain retrieval, training,
serving, ...) is one line in `SECTIONS`. At the end the checks of all sections are printed
together with PASS/MISS. The exit status is 0 unless a section crashed, or `--strict` is given
and a target was missed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

# name -> module with `run(quick: bool) -> Section`, run in this order.
SECTIONS: dict[str, str] = {
    "extract": "scripts.bench_extract",  # issue 2: parse/extract throughput, incremental runs, symbol accuracy
    "search": "scripts.bench_search",  # issue 3: retrieval recall/MRR vs bm25s, docs kept and stripped; latency
    "train": "scripts.bench_train",  # issue 5: LoRA vs QLoRA training tokens/s and peak memory
    "dataset": "scripts.bench_dataset",  # issue 4: rows per kind, citation validity, leakage, coverage on real repos
    "serve": "scripts.bench_serve",  # issue 6: vLLM tokens/s, 1 and 8 concurrent requests, base vs adapter
    "calls": "scripts.bench_calls",  # issue 16: call edges vs jedi goto-definition (recall/precision), bare-name baseline, use_scip row
    "answers": "scripts.bench_answers",  # issue 15: real questions, base bare / base + code / expert + code
}


@dataclass
class Check:
    """One target from an issue's "Must show" list."""

    name: str
    value: float
    target: float
    higher_is_better: bool = True
    unit: str = ""

    @property
    def passed(self) -> bool:
        return self.value >= self.target if self.higher_is_better else self.value <= self.target

    def line(self) -> str:
        op = ">=" if self.higher_is_better else "<="
        return (
            f"{'PASS' if self.passed else 'MISS'}  {self.name}: {fmt(self.value)}{self.unit} "
            f"(target {op} {fmt(self.target)}{self.unit})"
        )


@dataclass
class Section:
    name: str
    metrics: dict = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)

    def print_outcome(self, json_path: str | None = None) -> None:
        """The PASS/MISS line of every check and the SKIP line of every skipped row, as a bench
        script run alone prints them; `json_path` also gets the metrics."""
        for check in self.checks:
            print(check.line())
        for reason in self.skipped:
            print(f"SKIP  {reason}")
        if json_path:
            Path(json_path).write_text(json.dumps(self.metrics, indent=2, sort_keys=True), encoding="utf-8")


def fmt(value: object) -> str:
    if isinstance(value, float):
        digits = 0 if abs(value) >= 1000 else 1 if abs(value) >= 100 else 2 if abs(value) >= 1 else 3
        return f"{value:.{digits}f}"
    return str(value)


def machine_load() -> str:
    """The load average against the core count: timings taken on a busy machine are pessimistic."""
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    note = " (other processes compete for the cores: timings are noisy)" if load > 0.5 * cores else ""
    return f"machine: {cores} cores, 1-min load average {load:.2f}{note}"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], title: str = "") -> None:
    """Print a plain, aligned text table (numbers right-aligned)."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    numeric = [
        all(isinstance(row[i], int | float) for row in rows) and bool(rows) for i in range(len(headers))
    ]

    def render(values: Sequence[str]) -> str:
        return "  ".join(
            v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric, strict=True)
        )

    if title:
        print(f"\n{title}")
    print(render(headers).rstrip())
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print(render(row).rstrip())
    sys.stdout.flush()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scripts.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--only",
        action="append",
        choices=sorted(SECTIONS),
        metavar="NAME",
        help=f"run only this section (repeatable): {', '.join(SECTIONS)}",
    )
    ap.add_argument("--quick", action="store_true", help="smaller inputs: a smoke run in about a minute")
    ap.add_argument("--json", metavar="PATH", help="also write every section's metrics and checks as JSON")
    ap.add_argument("--strict", action="store_true", help="exit non-zero when a target is missed")
    args = ap.parse_args(argv)
    os.environ.setdefault("NANODEX_PROGRESS", "0")  # progress bars would interleave with the tables

    results: list[Section] = []
    crashed: list[str] = []
    for name in args.only or list(SECTIONS):
        print(f"\n=== bench {name}{' (quick)' if args.quick else ''} ===\n{machine_load()}", flush=True)
        t0 = time.perf_counter()
        try:
            results.append(importlib.import_module(SECTIONS[name]).run(quick=args.quick))
        except Exception:
            traceback.print_exc()
            crashed.append(name)
        print(f"=== {name}: {time.perf_counter() - t0:.1f}s ===", flush=True)

    print("\n=== targets ===")
    for sec in results:
        for check in sec.checks:
            print(f"[{sec.name}] {check.line()}")
        for reason in sec.skipped:
            print(f"[{sec.name}] SKIP  {reason}")
    for name in crashed:
        print(f"[{name}] CRASHED (traceback above)")
    if args.json:
        payload = {
            s.name: {**asdict(s), "checks": [{**asdict(c), "passed": c.passed} for c in s.checks]}
            for s in results
        }
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=2, sort_keys=True)
    missed = any(not c.passed for s in results for c in s.checks)
    return 1 if crashed or (args.strict and missed) else 0


if __name__ == "__main__":
    sys.exit(main())
