"""Run git on a repository nanodex did not create, without running anything that repository asks for.

A repository's own `.git/config` can name programs that git runs on its behalf: `core.fsmonitor`
(run by `ls-files`, `check-ignore`, `status`), hooks (`core.hooksPath`), the pager, credential
helpers, `core.sshCommand`, diff/merge drivers and clean/smudge filters. Indexing a repository
must never run its code (DESIGN.md), so every git call nanodex makes on one goes through `git()`,
which overrides each of those keys on the command line (command-line `-c` beats every config
file), drops inherited GIT_* variables that could point git elsewhere, and never prompts.

`safe.directory` is left to git: a repository owned by another user is refused by git itself
(`dubious ownership`), and callers report that instead of trusting it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

# Config keys whose value git runs as a command (or that select a program to run), neutralised.
NEUTRAL_CONFIG: tuple[tuple[str, str], ...] = (
    ("core.fsmonitor", "false"),
    ("core.hooksPath", os.devnull),
    ("core.pager", "cat"),
    ("core.editor", "true"),
    ("core.askPass", ""),
    ("core.sshCommand", "false"),
    ("core.gitProxy", ""),
    ("core.alternateRefsCommand", ""),
    ("credential.helper", ""),
    ("diff.external", ""),
    ("protocol.allow", "never"),
    ("uploadpack.packObjectsHook", ""),
    ("sequence.editor", "true"),
    ("gpg.program", "false"),
)

# Environment variables that would redirect git or make it run something.
_DROPPED_ENV_PREFIXES = ("GIT_",)


def git_argv(repo: str | Path, *args: str) -> list[str]:
    """The full argv `git()` runs (exposed for tests and for callers that need Popen)."""
    argv = ["git", "--no-pager", "--no-optional-locks"]
    for key, value in NEUTRAL_CONFIG:
        argv += ["-c", f"{key}={value}"]
    return [*argv, "-C", str(repo), *args]


def git_env() -> dict[str, str]:
    """The caller's environment without GIT_* variables, plus no prompts and no pager."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED_ENV_PREFIXES)}
    env.update(
        GIT_TERMINAL_PROMPT="0",
        GIT_PAGER="cat",
        PAGER="cat",
        GIT_ASKPASS="true",
        SSH_ASKPASS="true",
        GIT_NO_REPLACE_OBJECTS="1",
    )
    return env


def git(
    repo: str | Path, *args: str, timeout: float = 60.0, text: bool = False, check: bool = False
) -> subprocess.CompletedProcess:
    """Run `git -C repo args...` with the repository's command-running config neutralised.

    Raises OSError / subprocess.SubprocessError like subprocess.run (git missing, timeout,
    `check` and a non-zero status); output is captured.
    """
    return subprocess.run(
        git_argv(repo, *args),
        capture_output=True,
        text=text,
        timeout=timeout,
        check=check,
        stdin=subprocess.DEVNULL,
        env=git_env(),
    )


def refused_as_dubious(result: subprocess.CompletedProcess) -> bool:
    """Whether git refused the repository because another user owns it (`safe.directory`)."""
    err = result.stderr if isinstance(result.stderr, str) else result.stderr.decode("utf-8", "replace")
    return "dubious ownership" in err
