"""nanodex.json, the adapter's manifest: what it was trained from and how well it did.

Later stages (serving, eval, self-tune) read it to find the base model and to compare runs, so it
is written atomically and merged key by key (eval results are added without losing training ones).
"""

from __future__ import annotations

import json
import platform
import sqlite3
from pathlib import Path
from typing import Any

from nanodex.errors import NanodexError
from nanodex.paths import atomic_write_text

MANIFEST = "nanodex.json"
FORMAT = 1


def read_manifest(adapter: str | Path) -> dict[str, Any]:
    path = Path(adapter) / MANIFEST
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise NanodexError(f"{path} is not valid JSON", "re-run `make train-lora` to rewrite it") from err
    return data if isinstance(data, dict) else {}


def write_manifest(adapter: str | Path, data: dict[str, Any]) -> None:
    atomic_write_text(
        Path(adapter) / MANIFEST, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
    )


def update_manifest(adapter: str | Path, key: str, value: Any) -> dict[str, Any]:
    """Set one top-level key of an existing adapter's manifest (e.g. `eval`), keeping the rest."""
    data = read_manifest(adapter)
    data.setdefault("format", FORMAT)
    data[key] = value
    write_manifest(adapter, data)
    return data


def graph_commit(graph: str | Path | None) -> str | None:
    """The repository commit recorded in the code graph, when the graph exists (None otherwise)."""
    if not graph or not Path(graph).is_file():
        return None
    from extractor.graph import Graph

    try:
        with Graph(graph) as g:
            value = g.meta("commit")
    except (NanodexError, sqlite3.Error, ValueError):
        return None
    return str(value) if value else None


def environment() -> dict[str, str]:
    """Library versions and device: what a reproduction needs to know."""
    import peft
    import torch
    import transformers

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"cpu ({platform.machine()})"
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "device": device,
        "threads": str(torch.get_num_threads()),
    }
