"""Helpers for the hardening tests (issue 17): run a stage's CLI and check its failure is one line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def run_cli(
    module: str, *args: str, cwd: Path | None = None, prefix: list[str] | None = None, timeout: float = 300
) -> Ran:
    """`python -m module args...` with this checkout first on the import path."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [*(prefix or []), sys.executable, "-m", module, *args],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env=env,
        timeout=timeout,
    )
    return Ran(proc.returncode, proc.stdout, proc.stderr)


def assert_one_line_error(ran: Ran, *needles: str) -> str:
    """The run failed with exactly one `nanodex: error: ... (fix: ...)` line and no traceback."""
    assert ran.returncode != 0, ran
    assert "Traceback" not in ran.stderr + ran.stdout, ran.stderr
    lines = [ln for ln in ran.stderr.splitlines() if ln.startswith("nanodex: error:")]
    assert len(lines) == 1, ran.stderr
    line = lines[0]
    assert "(fix: " in line, line
    for needle in needles:
        assert needle in line, line
    return line


def unprivileged_prefix() -> list[str] | None:
    """A command prefix that drops root's file-permission override (a plain user namespace as
    uid nobody), so chmod 000 means something in tests run as root; [] when not root; None when
    neither works."""
    if os.geteuid() != 0:
        return []
    if shutil.which("unshare") is None:
        return None
    probe = subprocess.run(["unshare", "--user", "true"], capture_output=True)
    return ["unshare", "--user"] if probe.returncode == 0 else None
