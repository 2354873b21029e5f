"""Default artifact locations and atomic writes.

Stages hand artifacts to each other through files; a half-written file would look like a good
one to the next stage, so every artifact is written to a temporary sibling and renamed into
place only when complete.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

DEFAULT_GRAPH = Path("brain/graph.sqlite")
DEFAULT_NODES_DIR = Path("brain/nodes")
DEFAULT_TRAIN_JSONL = Path("dataset/train.jsonl")
DEFAULT_EVAL_JSONL = Path("dataset/eval.jsonl")
DEFAULT_MODELS_DIR = Path("models")


def cache_dir() -> Path:
    """Where downloaded/converted models live: $NANODEX_CACHE or ~/.cache/nanodex."""
    root = os.environ.get("NANODEX_CACHE") or Path.home() / ".cache" / "nanodex"
    return Path(root)


_TMP_MARK = ".tmp-"


def current_umask() -> int:
    """The process umask, read without changing it (Linux: /proc/self/status; else set and restore)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True


def sweep_stale_temps(target: str | Path) -> list[Path]:
    """Remove `.NAME.tmp-PID-*` siblings of `target` left by a killed run (their PID is gone).

    Temporaries of a live process (another run writing the same artifact) are left alone. Returns
    what was removed.
    """
    target = Path(target)
    removed: list[Path] = []
    if not target.parent.is_dir():
        return removed
    prefix = f".{target.name}{_TMP_MARK}"
    for p in target.parent.glob(f"{glob_escape(prefix)}*"):
        pid_text = p.name[len(prefix) :].split("-", 1)[0]
        if pid_text.isdigit() and _pid_alive(int(pid_text)):  # this process's own included
            continue
        if not pid_text.isdigit() and time.time() - p.lstat().st_mtime < 24 * 3600:
            continue  # an old-style name without a PID: only once it is a day old
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def glob_escape(text: str) -> str:
    """`text` with glob metacharacters escaped (for a literal prefix in Path.glob)."""
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


@contextlib.contextmanager
def atomic_path(target: str | Path, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `target`; rename it onto `target` only if the block succeeds.

    On any exception the temporary file or folder is removed and `target` is left as it was.
    The temporary is named `.NAME.tmp-PID-*`, so a later run removes those of killed runs; it
    gets the umask's permissions (mkstemp's 0600 / mkdtemp's 0700 would otherwise stick to the
    artifact).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_stale_temps(target)
    prefix = f".{target.name}{_TMP_MARK}{os.getpid()}-"
    mask = current_umask()
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
        os.chmod(tmp, 0o777 & ~mask)
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, dir=target.parent)
        os.close(fd)
        tmp = Path(name)
        os.chmod(tmp, 0o666 & ~mask)
    try:
        yield tmp
        if is_dir and target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(target: str | Path, text: str) -> None:
    """Write `text` to `target` atomically (UTF-8)."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
