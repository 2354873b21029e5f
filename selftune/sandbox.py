"""Run a command on a scratch copy of the repository, isolated from the rest of the machine.

Mapped tests are the one place nanodex runs code from an indexed repository (DESIGN.md), so the
sandbox has to hold even when a test is hostile or broken:

- namespaces (preferred): `unshare` puts the command in new user, mount, network, UTS, IPC and
  PID namespaces. Inside, the scratch copy is bind-mounted onto itself, /proc/sys and every
  other mount are remounted read-only, and the command then runs in a *nested* user+mount
  namespace, where the kernel locks those read-only flags (a root-in-namespace test cannot
  remount them writable). The network namespace has only a downed loopback: no network.
  Every home (/root, /home, the user's own) and the shared temporary folders are covered with
  an empty tmpfs first, so a test can neither list nor read the user's files; the scratch copy
  and the Python install are bound back into view where they live under one of them.
- none (rlimits only): time and memory limits but no file-system or network isolation. Used only
  when the config says so (`isolation: none`, or `allow_unisolated: true` when the namespace
  probe fails); the mechanism is recorded with every result, never chosen silently.

Both modes add: RLIMIT_AS (memory), RLIMIT_CPU, no core files, a wall-clock limit that kills the
whole process group, TMPDIR/HOME inside the scratch copy, and no bytecode or pytest cache.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nanodex.errors import NanodexError
from nanodex.log import get_logger
from selftune.config import SandboxConfig

log = get_logger("selftune.sandbox")

NAMESPACES = "namespaces"
RLIMITS_ONLY = "rlimits-only"

# Runs as /bin/sh inside the outer namespaces: $1 = scratch folder, $2 = folders to hide
# (':'-separated), $3 = folders to keep visible inside them (':'-separated, the scratch copy and
# the Python install), the rest = the command. Each kept folder is opened (fd 3, 4, ...) before
# the empty tmpfs goes over the hidden ones, then bound back through /proc/self/fd (mount -c:
# the path must not be resolved again, it is hidden by then).
_SETUP = r"""
S="$1"; HIDE="$2"; KEEP="$3"; shift 3
mount --bind "$S" "$S" || exit 97
IFS_SAVED="$IFS"; IFS=:
n=3
for k in $KEEP; do eval "exec $n<\"\$k\"" || exit 97; n=$((n + 1)); done
for h in $HIDE; do
  [ -d "$h" ] || continue
  mount -t tmpfs -o mode=755,size=1m,nosuid,nodev nanodex-hidden "$h" || exit 97
done
n=3
for k in $KEEP; do
  mkdir -p "$k" 2>/dev/null
  mount -c --bind "/proc/self/fd/$n" "$k" || exit 97
  eval "exec $n<&-"; n=$((n + 1))
done
IFS="$IFS_SAVED"
mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys || exit 97
for mp in $(awk '{print $5}' /proc/self/mountinfo | sort -u); do
  case "$mp" in "$S"|/proc) continue;; esac
  mount -o remount,bind,ro "$mp" 2>/dev/null
done
cd "$S" || exit 97
exec unshare --user --map-root-user --mount -- "$@"
"""
_OUTER = [
    "--user",
    "--map-root-user",
    "--mount",
    "--net",
    "--uts",
    "--ipc",
    "--pid",
    "--fork",
    "--mount-proc",
]
_SETUP_FAILED = 97
# Other people's and the user's own files: an empty tmpfs goes over each that exists.
_HIDDEN = ("/root", "/home", "/tmp", "/var/tmp", "/run/user", "/mnt", "/media")


def hidden_paths() -> list[str]:
    """Folders the sandboxed command must not see: every home (the user's own included, wherever
    it is), and the shared temporary folders (other processes' files)."""
    out = list(_HIDDEN)
    home = os.path.realpath(os.path.expanduser("~"))
    if home not in ("/", "") and home not in out:
        out.append(home)
    return out


def kept_paths(scratch: Path, command: Sequence[str]) -> list[str]:
    """Folders bound back into view inside hidden ones: the scratch copy, and the Python install
    (the venv and the interpreter's prefix) the command runs with, which may live in a home."""
    keep = [str(scratch)]
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix}:
        keep.append(os.path.realpath(prefix))
    exe = command[0] if command else ""
    if os.path.isabs(exe):
        keep.append(str(Path(exe).parent.parent))  # <venv>/bin/python -> <venv>
        keep.append(str(Path(os.path.realpath(exe)).parent.parent))
    hidden = hidden_paths()
    under_hidden = [
        k
        for k in dict.fromkeys(keep)
        if k == str(scratch) or any(k == h or k.startswith(h.rstrip("/") + "/") for h in hidden)
    ]
    for k in under_hidden:
        if ":" in k:
            raise NanodexError(f"sandbox: path {k} contains ':'", "move the self-tune work folder elsewhere")
    return under_hidden


@dataclass
class SandboxResult:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool
    mechanism: str  # NAMESPACES or RLIMITS_ONLY
    limits: dict = field(default_factory=dict)


_probe_cache: dict[str, str | None] = {}


def probe_namespaces() -> str | None:
    """None when namespace isolation works here, else the reason it does not (cached per process)."""
    if "result" in _probe_cache:
        return _probe_cache["result"]
    reason: str | None = None
    if shutil.which("unshare") is None:
        reason = "the `unshare` command is missing (util-linux)"
    else:
        with tempfile.TemporaryDirectory(prefix="nanodex-probe-") as tmp:
            try:
                out = subprocess.run(
                    [
                        "unshare",
                        *_OUTER,
                        "/bin/sh",
                        "-c",
                        _SETUP,
                        "sh",
                        tmp,
                        ":".join(hidden_paths()),
                        tmp,
                        "/bin/sh",
                        "-c",
                        "echo ok > probe",
                    ],
                    capture_output=True,
                    text=True,
                    timeout=30,
                    cwd=tmp,
                )
                if out.returncode != 0 or not (Path(tmp) / "probe").is_file():
                    reason = f"unshare failed ({out.returncode}): {out.stderr.strip()[:200]}"
            except (OSError, subprocess.SubprocessError) as err:
                reason = f"unshare failed: {err}"
    _probe_cache["result"] = reason
    return reason


def choose_mechanism(cfg: SandboxConfig) -> str:
    """The isolation this config gets on this machine; an error when it asks for more than is possible."""
    if cfg.isolation not in ("auto", NAMESPACES, "none"):
        raise NanodexError(
            f"sandbox.isolation must be auto, namespaces or none, got {cfg.isolation!r}",
            "fix config/selftune.yaml",
        )
    if cfg.isolation == "none":
        return RLIMITS_ONLY
    reason = probe_namespaces()
    if reason is None:
        return NAMESPACES
    if cfg.isolation == "auto" and cfg.allow_unisolated:
        log.warning("sandbox: no namespace isolation (%s): running tests with rlimits only", reason)
        return RLIMITS_ONLY
    raise NanodexError(
        f"cannot isolate mapped tests: {reason}",
        "enable unprivileged user namespaces, or set sandbox.allow_unisolated: true (recorded in the report) "
        "or verify.run_tests: false",
    )


def scratch_copy(repo: Path, parent: Path, ignore: Sequence[str]) -> Path:
    """A fresh copy of `repo` under `parent` (symlinks kept as links, `ignore` names left out)."""
    parent.mkdir(parents=True, exist_ok=True)
    dest = Path(tempfile.mkdtemp(prefix="scratch-", dir=parent))
    shutil.copytree(repo, dest / "repo", symlinks=True, ignore=shutil.ignore_patterns(*ignore))
    return dest / "repo"


def _limits(cfg: SandboxConfig) -> dict[str, int]:
    return {
        "memory_bytes": cfg.memory_mb * 1024 * 1024,
        "cpu_seconds": cfg.time_limit_s + 5,
        "wall_seconds": cfg.time_limit_s,
    }


def _preexec(limits: dict[str, int]):
    def apply() -> None:
        os.setsid()  # its own process group, killed whole on timeout
        mem = limits["memory_bytes"]
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        cpu = limits["cpu_seconds"]
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def run_in_sandbox(
    command: Sequence[str], scratch: Path, cfg: SandboxConfig, *, mechanism: str | None = None
) -> SandboxResult:
    """Run `command` with cwd = `scratch` under the chosen isolation and limits."""
    mechanism = mechanism or choose_mechanism(cfg)
    scratch = scratch.resolve()
    tmp = scratch / ".sandbox-tmp"
    tmp.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp),
        "TMPDIR": str(tmp),
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": str(scratch),
        "LANG": "C.UTF-8",
        "NO_PROXY": "*",
    }
    if mechanism == NAMESPACES:
        argv = [
            "unshare",
            *_OUTER,
            "/bin/sh",
            "-c",
            _SETUP,
            "sh",
            str(scratch),
            ":".join(hidden_paths()),
            ":".join(kept_paths(scratch, command)),
            *command,
        ]
    else:
        argv = list(command)
    limits = _limits(cfg)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        cwd=scratch,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_preexec(limits),
    )
    timed_out = False
    try:
        out, err = proc.communicate(timeout=cfg.time_limit_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    if mechanism == NAMESPACES and proc.returncode == _SETUP_FAILED:
        raise NanodexError(
            f"sandbox setup failed inside the namespaces: {err.strip()[:300]}",
            "check that unshare/mount work for this user, or set sandbox.isolation: none",
        )
    return SandboxResult(
        returncode=proc.returncode,
        stdout=out,
        stderr=err,
        seconds=time.perf_counter() - t0,
        timed_out=timed_out,
        mechanism=mechanism,
        limits=limits,
    )
