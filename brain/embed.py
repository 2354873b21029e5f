"""`python -m brain.embed`: embed every search card's text with all-MiniLM-L6-v2, beside the graph.

Incremental: vectors are keyed by the hash of the text they embed, so a re-run embeds only cards
whose text changed (and none when nothing did). The file `<graph stem>.emb.npz` holds `ids`,
`hashes` (aligned with `vectors`), `vectors` (float16, unit length) and `meta` (format, model and
sequence length: vectors are reused only when these match); it is written
to a temporary file and renamed, so search never sees half of it.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from brain.config import BrainConfig, EmbedConfig, embeddings_path
from brain.index import open_index
from nanodex.errors import run_main
from nanodex.flags import config_flag, config_option, load_from_args
from nanodex.log import get_logger, progress, setup_logging
from nanodex.paths import atomic_path

log = get_logger("brain.embed")
EMBED_FORMAT = "nanodex-emb/1"


@dataclass
class EmbedReport:
    cards: int = 0
    embedded: int = 0
    reused: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return f"{self.cards} cards: {self.embedded} embedded, {self.reused} reused; {self.seconds:.2f}s"


def model_tag(cfg: BrainConfig) -> str:
    """What must match for stored vectors to be reusable."""
    return f"{cfg.embed.model}|seq{cfg.embed.max_seq_length}"


def load_embeddings(path: Path) -> dict | None:
    """The stored embeddings as arrays, or None when there are none (or they are unreadable)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            return {
                "ids": data["ids"].astype(str),
                "hashes": data["hashes"].astype(str),
                "vectors": data["vectors"],
                "meta": meta,
            }
    except (OSError, ValueError, KeyError) as err:
        log.warning("ignoring unreadable embeddings %s (%s)", path, err)
        return None


def save_embeddings(path: Path, ids: list[str], hashes: list[str], vectors: np.ndarray, meta: dict) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            ids=np.array(ids, dtype=str),
            hashes=np.array(hashes, dtype=str),
            vectors=vectors.astype(np.float16),
            meta=np.array(json.dumps(meta)),
        )


_WORKER: dict[str, object] = {}  # the model of a worker process; the parent process never fills it


def _init_worker(cfg: EmbedConfig) -> None:
    """Load the model once per worker process (kept in the worker's module state)."""
    from brain.encoder import Encoder

    _WORKER["encoder"] = Encoder(cfg)


def _encode_in_worker(texts: list[str]) -> np.ndarray:
    return _WORKER["encoder"].encode(texts)


def encode_all(cfg: EmbedConfig, texts: list[str], encoder: object | None = None) -> Iterator[np.ndarray]:
    """Vectors for `texts`, in order, chunk by chunk, in worker processes when there are many.

    Processes rather than threads: one single-threaded model per core keeps every core busy
    without OpenMP barriers, which stall whenever the machine is shared.
    """
    chunk = 256
    chunks = [texts[i : i + chunk] for i in range(0, len(texts), chunk)]
    workers = cfg.workers or os.cpu_count() or 1
    workers = min(workers, max(1, len(texts) // max(1, cfg.texts_per_worker)))
    if encoder is not None or workers <= 1:
        from brain.encoder import Encoder

        enc = encoder if encoder is not None else Encoder(cfg)
        for part in progress(chunks, total=len(chunks), desc="embed", unit="chunk"):
            yield enc.encode(part)  # type: ignore[attr-defined]
        return
    ctx = multiprocessing.get_context("spawn")  # torch and fork do not mix
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(cfg,)) as pool:
        yield from progress(
            pool.map(_encode_in_worker, chunks), total=len(chunks), desc="embed", unit="chunk"
        )


def embed(cfg: BrainConfig, encoder: object | None = None) -> EmbedReport:
    """Bring `embeddings_path(cfg)` up to date with the search index's cards."""
    t0 = time.perf_counter()
    conn = open_index(cfg)
    try:
        rows = conn.execute("SELECT id, text_hash, embed_text FROM cards ORDER BY rowid").fetchall()
    finally:
        conn.close()
    out = embeddings_path(cfg)
    tag = model_tag(cfg)
    old = load_embeddings(out)
    known: dict[str, np.ndarray] = {}
    if old is not None and old["meta"].get("model") == tag:
        known = dict(zip(old["hashes"].tolist(), old["vectors"], strict=True))
    todo = sorted({h: t for _, h, t in rows if h not in known}.items())
    report = EmbedReport(cards=len(rows))
    if todo:
        done = 0
        for vecs in encode_all(cfg.embed, [t for _, t in todo], encoder):
            for (h, _), v in zip(todo[done : done + len(vecs)], vecs, strict=True):
                known[h] = v.astype(np.float16)
            done += len(vecs)
        report.embedded = len(todo)
    fresh = {h for h, _ in todo}
    report.reused = sum(1 for _, h, _ in rows if h not in fresh)
    dim = next(iter(known.values())).shape[0] if known else 384
    vectors = np.stack([known[h] for _, h, _ in rows]) if rows else np.zeros((0, dim), np.float16)
    same_rows = old is not None and old["ids"].tolist() == [r[0] for r in rows]
    if todo or not same_rows:
        meta = {"format": EMBED_FORMAT, "model": tag}
        save_embeddings(out, [r[0] for r in rows], [r[1] for r in rows], vectors, meta)
    report.seconds = time.perf_counter() - t0
    return report


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m brain.embed", description=__doc__.split("\n\n")[0])
    config_option(ap, BrainConfig, "brain")
    config_flag(ap, "--graph", key="graph", help="code graph whose search index is embedded")
    config_flag(ap, "--out", key="search.embeddings", help="embeddings file")
    ap.add_argument("--json", action="store_true", help="print the run report as JSON")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logs")
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    cfg = load_from_args(args)
    report = embed(cfg)
    if args.json:
        print(json.dumps(report.__dict__, indent=2, sort_keys=True))
    else:
        print(f"brain-embed: {embeddings_path(cfg)}: {report.summary()}")
    return 0


if __name__ == "__main__":
    run_main(main)
