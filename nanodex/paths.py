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


@contextlib.contextmanager
def atomic_path(target: str | Path, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to `target`; rename it onto `target` only if the block succeeds.

    On any exception the temporary file or folder is removed and `target` is left as it was.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{target.name}.tmp-"
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, dir=target.parent)
        os.close(fd)
        tmp = Path(name)
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
