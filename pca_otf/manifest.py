"""Byte-stable artifact files and the build manifest.

A build is a cache: a rebuild with the same inputs must be recognisable as such, and two builds of
the same inputs must produce the same bytes (so a manifest hash means "this content", not "this
run"). numpy's `savez` stamps the current time into every zip member, so arrays are written here
with fixed zip timestamps, sorted member names and no compression; JSON is written with sorted
keys. The manifest records what went in (graph hash, base config, knobs) and the sha256 of every
file that came out; `pca_otf.artifacts.Artifacts` checks those hashes when it reads the folder.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def canonical_json(obj: Any) -> str:
    """One stable text for `obj`: sorted keys, no whitespace variation (what hashes are taken of)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def write_npz(
    path: str | Path, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any] | None = None
) -> None:
    """Write `arrays` (and a JSON `meta` dict stored as `__meta__`) as a byte-stable .npz file."""
    members = dict(arrays)
    if meta is not None:
        members["__meta__"] = np.frombuffer(canonical_json(meta).encode("utf-8"), dtype=np.uint8)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in sorted(members):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(members[name]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def read_npz(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and the `meta` dict written by `write_npz` (pickles refused)."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    raw = arrays.pop("__meta__", None)
    meta = json.loads(raw.tobytes().decode("utf-8")) if raw is not None else {}
    return arrays, meta


def write_jsonl(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> int:
    """One canonical JSON object per line; returns the row count."""
    n = 0
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, sort_keys=True, ensure_ascii=False) + "\n")
            n += 1
    return n


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def inputs_key(inputs: Mapping[str, Any]) -> str:
    """The sha256 naming a build's inputs; equal keys mean a rebuild would write the same bytes."""
    return sha256_bytes(canonical_json({"schema_version": SCHEMA_VERSION, **inputs}).encode("utf-8"))


def manifest_sha(manifest: Mapping[str, Any]) -> str:
    """Hash of a manifest without its `created_at` (the build's identity in answer provenance)."""
    body = {k: v for k, v in manifest.items() if k != "created_at"}
    return sha256_bytes(canonical_json(body).encode("utf-8"))


def graph_content_hash(pg: Any) -> tuple[str, dict[str, Any]]:
    """sha256 of what a ProgramGraph says about the program (entities, relations, files, commit).

    Taken over content rather than the SQLite file's bytes, so re-indexing an unchanged repository
    (which may rewrite timestamps inside the database) still counts as unchanged. Also returns the
    graph's counts for the manifest.
    """
    h = hashlib.sha256()
    kinds: dict[str, int] = {}
    n_ent = 0
    for e in sorted(pg.entities(), key=lambda e: e.id):
        fields = [
            e.id,
            e.kind,
            e.name,
            e.qualname,
            e.path,
            e.start_line,
            e.end_line,
            e.signature,
            e.doc,
            e.lang,
            e.hash,
        ]
        h.update(canonical_json(fields).encode("utf-8") + b"\n")
        kinds[e.kind] = kinds.get(e.kind, 0) + 1
        n_ent += 1
    h.update(b"--edges\n")
    edge_kinds: dict[str, int] = {}
    n_edges = 0
    for src, dst, kind in sorted((r.src, r.dst, r.kind) for r in pg.edges()):
        h.update(canonical_json([src, dst, kind]).encode("utf-8") + b"\n")
        edge_kinds[kind] = edge_kinds.get(kind, 0) + 1
        n_edges += 1
    h.update(b"--files\n")
    files = sorted(pg.artifacts("file"), key=lambda f: f["path"])
    for f in files:
        h.update(canonical_json([f["path"], f["sha256"], f["bytes"]]).encode("utf-8") + b"\n")
    h.update(canonical_json({"commit": pg.commit()}).encode("utf-8"))
    counts = {
        "entities": n_ent,
        "edges": n_edges,
        "files": len(files),
        "entities_by_kind": dict(sorted(kinds.items())),
        "edges_by_kind": dict(sorted(edge_kinds.items())),
    }
    return h.hexdigest(), counts
