"""Test verifier: the pytest nodes mapped to an answer's subjects must pass, in the sandbox.

Mapping comes from the graph: `tests` edges point from a test function (whose pytest node id is
in meta.pytest_id) to the code it exercises. A module's mapped tests run once, on one scratch
copy, and every proposal about that module reads its own tests' outcomes from that run. A
proposal whose subjects have no mapped test soft-passes, recorded as `none-mapped`. A skipped
test (a missing optional dependency or data set, an empty parameter list) is no evidence either
way: it neither passes nor rejects, and a proposal whose mapped tests were all skipped soft-passes,
recorded as `skipped`.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from extractor.graph import Graph
from selftune.config import SandboxConfig
from selftune.sandbox import run_in_sandbox, scratch_copy

# `-rA` summary lines ("FAILED id - msg") and, for skips, whose summary names no id, `-v` lines
_OUTCOME = re.compile(r"^(PASSED|FAILED|ERROR|XFAIL|XPASS)\s+(\S+)", re.MULTILINE)
_SKIPPED = re.compile(r"^(\S+::\S+) SKIPPED\b", re.MULTILINE)
_COLLECT_ERROR = re.compile(r"^ERROR (\S+\.py)(?: - |$)", re.MULTILINE)  # a test file that did not import
_GOOD = {"PASSED", "XFAIL"}


def mapped_tests(graph: Graph, node_ids: list[str], exclude: list[str] | None = None) -> list[str]:
    """pytest node ids of the tests mapped to any of `node_ids` (sorted, unique), less `exclude` globs."""
    ids: set[str] = set()
    for nid in node_ids:
        for t in graph.tests_of(nid):
            pid = t.meta.get("pytest_id")
            if pid and not any(fnmatch.fnmatchcase(str(pid), pat) for pat in exclude or []):
                ids.add(str(pid))
    return sorted(ids)


@dataclass
class TestRun:
    # pytest id -> PASSED / FAILED / ERROR / SKIPPED / COLLECTION ERROR / TIMEOUT / NOT RUN
    outcomes: dict[str, str] = field(default_factory=dict)
    returncode: int | None = None
    seconds: float = 0.0
    timed_out: bool = False
    mechanism: str = ""
    tail: str = ""


@dataclass
class TestVerdict:
    passed: bool
    status: str  # passed | failed | none-mapped | skipped | disabled
    tests: dict[str, str] = field(default_factory=dict)
    reason: str = ""

    def as_dict(self) -> dict:
        return {"passed": self.passed, "status": self.status, "tests": self.tests, "reason": self.reason}


def run_tests(repo: Path, pytest_ids: list[str], cfg: SandboxConfig, scratch_parent: Path) -> TestRun:
    """Run `pytest_ids` on a fresh scratch copy of `repo`; outcome per id (parametrized cases folded)."""
    if not pytest_ids:
        return TestRun()
    scratch = scratch_copy(repo, scratch_parent, cfg.ignore)
    try:
        python = cfg.python or sys.executable
        base_cmd = [python, "-m", "pytest", "-v", "-rA", "-p", "no:cacheprovider", "--no-header",
                    "--continue-on-collection-errors"]  # fmt: skip
        # ids of test files that no longer exist would abort the whole run: they stay NOT RUN
        present = [pid for pid in pytest_ids if (scratch / pid.split("::", 1)[0]).is_file()]
        res = run_in_sandbox([*base_cmd, *present], scratch, cfg) if present else None
        out = res.stdout + res.stderr if res is not None else ""
        if res is not None and res.returncode == 4 and ("not found" in out or "no collectors" in out):
            # a mapped test was renamed or removed: run its files whole and read the ids that remain
            files = sorted({pid.split("::", 1)[0] for pid in present})
            res = run_in_sandbox([*base_cmd, *files], scratch, cfg)
    finally:
        shutil.rmtree(scratch.parent, ignore_errors=True)
    if res is None:
        return TestRun({pid: "NOT RUN" for pid in pytest_ids}, tail="no mapped test file exists")
    seen: dict[str, list[str]] = {}
    found = _OUTCOME.findall(res.stdout) + [("SKIPPED", n) for n in _SKIPPED.findall(res.stdout)]
    for outcome, nodeid in found:
        base = nodeid.split("[", 1)[0]
        seen.setdefault(base, []).append(outcome)
    broken = set(_COLLECT_ERROR.findall(res.stdout))
    outcomes = {}
    for pid in pytest_ids:
        got = [o for node, os_ in seen.items() if node == pid or node.startswith(pid + "::") for o in os_]
        if res.timed_out:
            outcomes[pid] = "TIMEOUT"
        elif not got and pid.split("::", 1)[0] in broken:
            outcomes[pid] = "COLLECTION ERROR"
        elif not got:
            outcomes[pid] = "NOT RUN"
        elif all(o == "SKIPPED" for o in got):
            outcomes[pid] = "SKIPPED"
        elif all(o in _GOOD or o == "SKIPPED" for o in got):
            outcomes[pid] = "PASSED"
        else:
            outcomes[pid] = next(o for o in got if o not in _GOOD and o != "SKIPPED")
    tail = (res.stdout + res.stderr).strip().splitlines()[-15:]
    return TestRun(outcomes, res.returncode, res.seconds, res.timed_out, res.mechanism, "\n".join(tail))


def verdict(pytest_ids: list[str], run: TestRun | None) -> TestVerdict:
    """Pass when every mapped test passed or was skipped; soft-pass when none is mapped or ran."""
    if run is None:
        return TestVerdict(True, "disabled", reason="verify.run_tests is false")
    if not pytest_ids:
        return TestVerdict(True, "none-mapped", reason="no tests map to the subject (soft pass)")
    tests = {pid: run.outcomes.get(pid, "NOT RUN") for pid in pytest_ids}
    bad = {k: v for k, v in tests.items() if v not in ("PASSED", "SKIPPED")}
    if bad:
        first = next(iter(bad.items()))
        return TestVerdict(
            False, "failed", tests, f"{len(bad)} mapped test(s) not passing: {first[0]} {first[1]}"
        )
    if all(v == "SKIPPED" for v in tests.values()):
        return TestVerdict(True, "skipped", tests, "every mapped test was skipped (soft pass)")
    return TestVerdict(True, "passed", tests)
