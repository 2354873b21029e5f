"""`make demo` end to end on the fixture repository (slow: a real QLoRA step and a real vLLM server).

The demo strings every stage together through their own entry points; it once crashed on a type
change no stage test saw, so it runs here, shortened (one training step, one short answer), into
a temporary work folder so the checkout's own work/ and models/ are never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from scripts.demo import QUESTIONS, cites_answering_code

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"


def test_builtin_questions_name_files_that_exist() -> None:
    """The files said to answer the demo's questions are real files of this repository."""
    for question, paths in QUESTIONS.items():
        assert paths, question
        for path in paths:
            assert (ROOT / path).is_file(), path


def test_cites_answering_code_needs_a_resolving_citation_in_the_files() -> None:
    def cite(path: str, resolves: bool) -> SimpleNamespace:
        return SimpleNamespace(path=path, resolves=resolves)

    files = ("trainer/data.py",)
    assert cites_answering_code(SimpleNamespace(citations=[cite("trainer/data.py", True)]), files)
    assert not cites_answering_code(SimpleNamespace(citations=[cite("trainer/data.py", False)]), files)
    assert not cites_answering_code(SimpleNamespace(citations=[cite("trainer/run.py", True)]), files)
    assert not cites_answering_code(SimpleNamespace(citations=[]), files)


@pytest.mark.slow
def test_demo_runs_every_stage_and_answers(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURES / "python", repo)
    work, adapter = tmp_path / "work", tmp_path / "adapter"
    question = "How do I take items out of stock?"
    cmd = [sys.executable, "-m", "scripts.demo", "--repo", str(repo), "--work", str(work)]
    cmd += ["--out", str(adapter), "--steps", "1", "--max-tokens", "24", "--question", question]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    out = res.stdout
    for banner in ("== extract", "== brain", "== dataset", "== train-qlora (1 steps", "== serve + ask"):
        assert banner in out, out[-3000:]
    assert f"Q: {question}" in out and "\nA: " in out and "demo finished in" in out
    assert (work / "graph.sqlite").is_file() and (work / "dataset" / "train.jsonl").is_file()
    assert (adapter / "adapter_config.json").is_file()
