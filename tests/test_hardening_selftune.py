"""Issue 17, self-tune: the sandbox hides home (F3), and a repository with a hostile .git/config
is extracted and self-tuned with no command of it run (F1). Each test failed on the code before
the fix (noted per test)."""

from __future__ import annotations

import ast
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from selftune.config import SandboxConfig
from selftune.sandbox import NAMESPACES, probe_namespaces, run_in_sandbox
from tests.test_hardening_extract import hostile_git_repo

FIXTURE = Path(__file__).parent / "fixtures" / "selftune"
NS_REASON = probe_namespaces()

PEEK = r"""
import os, sys
home, secret = sys.argv[1], sys.argv[2]
try:
    print("LISTED", sorted(os.listdir(home)))
except OSError as err:
    print("LIST-BLOCKED", err.__class__.__name__)
try:
    print("READ", open(secret).read())
except OSError as err:
    print("READ-BLOCKED", err.__class__.__name__)
for other in ("/root", "/home"):
    try:
        print("OTHER", other, os.listdir(other))
    except OSError as err:
        print("OTHER-BLOCKED", other, err.__class__.__name__)
"""


@pytest.mark.skipif(NS_REASON is not None, reason=f"no namespaces here: {NS_REASON}")
def test_f3_sandboxed_test_cannot_list_or_read_home(tmp_path: Path) -> None:
    """F3 (failed before: the sandboxed code listed the home folder and read a file in it)."""
    repo = tmp_path / "repo"
    shutil.copytree(FIXTURE, repo)
    (repo / "peek.py").write_text(PEEK)
    home = Path(os.path.expanduser("~"))
    token = secrets.token_hex(8)
    secret = home / f".nanodex-f3-secret-{token}"
    secret.write_text(f"TOP-SECRET-{token}")
    try:
        res = run_in_sandbox(
            [sys.executable, "peek.py", str(home), str(secret)],
            repo,
            SandboxConfig(isolation="namespaces", time_limit_s=60),
        )
    finally:
        secret.unlink()
    assert res.mechanism == NAMESPACES
    out = res.stdout
    assert res.returncode == 0, res.stderr
    assert f"TOP-SECRET-{token}" not in out and "READ-BLOCKED" in out, out
    assert secret.name not in out, out
    # what is left in view: an empty tmpfs, plus the path to a folder bound back in (the Python
    # install may live in a home, e.g. ~/.pyenv) and nothing else
    from selftune.sandbox import kept_paths

    kept = kept_paths(repo.resolve(), [sys.executable])
    for line in out.splitlines():
        if line.startswith(("LISTED", "OTHER ")):
            folder = home if line.startswith("LISTED") else Path(line.split()[1])
            listed = ast.literal_eval(line[line.index("[") :])
            allowed = {Path(k).relative_to(folder).parts[0] for k in kept if Path(k).is_relative_to(folder)}
            assert set(listed) <= allowed, (line, allowed)
    # the mapped tests themselves still run (the scratch copy and the venv stay visible)
    ran = run_in_sandbox(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        repo,
        SandboxConfig(isolation="namespaces", time_limit_s=120),
    )
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]


def test_f1_hostile_repository_is_self_tuned_with_no_command_run(tmp_path: Path) -> None:
    """F1 for self-tune (failed before: the extract step of self-tune ran core.fsmonitor)."""
    from selftune.pipeline import run_selftune
    from tests.test_selftune import loop_config
    from tests.test_trainer import build_tiny_model

    repo = tmp_path / "repo"
    shutil.copytree(FIXTURE, repo)
    markers = hostile_git_repo(repo, tmp_path)
    base = build_tiny_model(tmp_path / "tiny")
    cfg = loop_config(repo, tmp_path, base)
    cfg.propose.max_prompts = 2
    report = run_selftune(cfg)
    assert report["modules"], report
    assert [m.name for m in markers if m.exists()] == []
    # and plain git would have run it: the marker logic is live
    subprocess.run(["git", "-C", str(repo), "status", "--short"], capture_output=True)
    assert any(m.exists() for m in markers)
