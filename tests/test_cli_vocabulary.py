"""One CLI vocabulary (DESIGN.md): the same flag names the same thing in every stage's --help.

Read from the real `--help` of each stage, as a user sees it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# stage module -> the flags it must offer
VOCABULARY: dict[str, set[str]] = {
    "extractor": {"--repo", "--out", "--config"},
    "extractor.inspect": {"--graph"},
    "brain": {"--graph", "--out", "--config"},
    "brain.embed": {"--graph", "--out", "--config"},
    "brain.search": {"--graph", "--question", "--config"},
    "dataset": {"--graph", "--out", "--config"},
    "trainer": {"--base", "--dataset", "--out", "--config", "--graph"},
    "trainer.eval": {"--adapter", "--base", "--dataset", "--graph", "--out"},
    "inference.serve": {"--base", "--adapter", "--config"},
    "inference.query": {"--question", "--graph", "--config"},
    "pca_otf.build": {"--graph", "--base", "--out", "--pca", "--config"},
    "pca_otf.run": {"--graph", "--base", "--pca", "--question", "--bank", "--config"},
    "pca_otf.evaluate": {
        "--graph",
        "--base",
        "--pca",
        "--dataset",
        "--adapter",
        "--bank",
        "--out",
        "--config",
    },
    "selftune": {"--repo", "--graph", "--base", "--adapter", "--bank", "--config"},
}


def _help(module: str) -> subprocess.CompletedProcess[str]:
    """`python -m <module> --help`, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", module, "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "NANODEX_PROGRESS": "0"},
        timeout=300,
    )


@pytest.mark.parametrize("module", sorted(VOCABULARY))
def test_stage_help_uses_the_shared_flag_names(module: str) -> None:
    proc = _help(module)
    assert proc.returncode == 0, proc.stderr
    offered = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", proc.stdout))
    missing = VOCABULARY[module] - offered
    assert not missing, f"{module} --help lacks {sorted(missing)}"


BENCH_SCRIPTS = (
    "scripts.bench",
    "scripts.bench_answers",
    "scripts.bench_calls",
    "scripts.bench_dataset",
    "scripts.bench_extract",
    "scripts.bench_search",
    "scripts.bench_serve",
    "scripts.bench_stripped_libs",
    "scripts.bench_train",
    "scripts.demo",
    "scripts.real_questions",
)


@pytest.mark.parametrize("module", BENCH_SCRIPTS)
def test_bench_scripts_answer_help_without_starting_work(module: str) -> None:
    """`--help` prints a usage and exits: bench_calls and bench_extract once started their whole
    benchmark instead (they read `sys.argv` by hand)."""
    proc = _help(module)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: python -m scripts."), proc.stdout[:300]
    assert "===" not in proc.stdout  # no benchmark section began
