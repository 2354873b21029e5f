"""Per-node JSON files in `brain/nodes/`: names, content hashes, and reading them back.

One file per typed node, so a later stage (dataset, pca_otf) can read one node without parsing
all of them, and an incremental run rewrites only the files whose content hash changed. Each
file is written atomically; a file holds its own hash and summarizer, so a run interrupted
half-way leaves only files that are each complete and are redone next time if stale.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from brain.ontology import BrainNode
from nanodex.errors import NanodexError
from nanodex.log import get_logger
from nanodex.paths import atomic_write_text

log = get_logger("brain.nodes")

FORMAT = "nanodex-brain-node/1"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def file_name(node_id: str) -> str:
    """A readable, collision-free file name: slug of the id plus a short hash of the exact id."""
    slug = _UNSAFE.sub("_", node_id).strip("._")[:96] or "node"
    return f"{slug}~{hashlib.sha1(node_id.encode()).hexdigest()[:10]}.json"


def content_hash(node: BrainNode, max_tokens: int) -> str:
    """Hash of everything a summary is made from: facts, refs, citations and the code it describes."""
    payload = {
        "type": node.type,
        "name": node.name,
        "where": [node.path, node.start_line, node.end_line, node.target],
        "facts": node.facts,
        "refs": node.refs,
        "citations": node.citations,
        "content": node.content,
        "max_tokens": max_tokens,
    }
    return hashlib.sha1(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@dataclass
class StoredNode:
    """What an existing node file says about itself."""

    id: str
    type: str
    target: str | None
    summary: str
    hash: str
    summarizer: str
    file: Path


def read_existing(out_dir: Path) -> dict[str, StoredNode]:
    """Node files already in `out_dir` (unreadable or foreign JSON files are ignored)."""
    found: dict[str, StoredNode] = {}
    if not out_dir.is_dir():
        return found
    for p in sorted(out_dir.glob("*.json")):
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            log.warning("node file %s is damaged (%s): it is written again", p, err.__class__.__name__)
            continue
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            continue
        found[data["id"]] = StoredNode(
            id=data["id"],
            type=data["type"],
            target=data.get("target"),
            summary=data.get("summary", ""),
            hash=data.get("hash", ""),
            summarizer=data.get("summarizer", ""),
            file=p,
        )
    return found


def write_node(
    out_dir: Path, node: BrainNode, summary: str, digest: str, summarizer: str, check: dict | None = None
) -> Path:
    """Write one node file atomically and return its path.

    `check` holds what the LLM grounding check found (summary_by, fallback reason, dropped or
    restored citations); it is written beside the summary so that no fallback is silent.
    """
    data = {
        "format": FORMAT,
        "id": node.id,
        "type": node.type,
        "name": node.name,
        "target": node.target,
        "path": node.path,
        "start_line": node.start_line,
        "end_line": node.end_line,
        "summary": summary,
        "refs": node.refs,
        "citations": node.citations,
        "facts": node.facts,
        "hash": digest,
        "summarizer": summarizer,
        **(check or {}),
    }
    path = out_dir / file_name(node.id)
    atomic_write_text(path, json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return path


def load_nodes(out_dir: str | Path) -> list[dict]:
    """All node files of a brain folder, as dicts (the reader later stages use).

    A node file that cannot be read or parsed is an error, not a skip: dropping it would change
    what later stages produce with no word said. JSON files of another format are not nodes and
    are left alone.
    """
    out = []
    for p in sorted(Path(out_dir).glob("*.json")):
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:  # ValueError covers UnicodeDecodeError
            raise NanodexError(
                f"brain node file {p} is damaged ({err.__class__.__name__}: {str(err)[:80]})",
                "re-run `make brain` to rewrite it (or delete the file first)",
            ) from err
        if isinstance(data, dict) and data.get("format") == FORMAT:
            if not isinstance(data.get("id"), str) or not isinstance(data.get("type"), str):
                raise NanodexError(
                    f"brain node file {p} has no id or type", "re-run `make brain` to rewrite it"
                )
            out.append(data)
    return out
