"""`python -m extractor.inspect`: what is in a code graph (counts, parse errors, skipped files)."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from extractor.graph import Graph
from nanodex.errors import run_main
from nanodex.paths import DEFAULT_GRAPH


def summarize(graph: Graph) -> dict:
    """Counts by node type and language, by edge kind, plus parse-error and skipped-file totals."""
    q = graph.conn.execute
    return {
        "graph": str(graph.path),
        "repo_root": graph.meta("repo_root"),
        "commit": graph.meta("commit"),
        "updated_at": graph.meta("updated_at"),
        "files": q("SELECT COUNT(*) FROM files").fetchone()[0],
        "files_by_language": dict(q("SELECT lang, COUNT(*) FROM files GROUP BY lang ORDER BY lang")),
        "nodes_by_type": dict(q("SELECT type, COUNT(*) FROM nodes GROUP BY type ORDER BY type")),
        "nodes_by_language": dict(q("SELECT lang, COUNT(*) FROM nodes GROUP BY lang ORDER BY lang")),
        "edges_by_kind": dict(q("SELECT kind, COUNT(*) FROM edges GROUP BY kind ORDER BY kind")),
        "references_by_resolution": dict(q("SELECT via, COUNT(*) FROM refs GROUP BY via ORDER BY via")),
        "parse_errors": q("SELECT COALESCE(SUM(parse_errors), 0) FROM files").fetchone()[0],
        "files_with_parse_errors": q("SELECT COUNT(*) FROM files WHERE parse_errors > 0").fetchone()[0],
        "skipped_files": q("SELECT COUNT(*) FROM skipped").fetchone()[0],
        "skipped_by_reason": dict(q("SELECT reason, COUNT(*) FROM skipped GROUP BY reason ORDER BY reason")),
        "coverage": _coverage(graph),
    }


def _coverage(graph: Graph) -> dict:
    """The coverage.py report the graph carries, if any: nodes measured and how many of them ran."""
    report = graph.meta("coverage")
    if not report:
        return {}
    nodes, ran = graph.conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(executed > 0), 0) FROM coverage"
    ).fetchone()
    return {"report": report["report"], "nodes": nodes, "nodes_run": ran}


def _table(title: str, counts: dict) -> list[str]:
    lines = [title]
    lines += [f"  {k or '(unset)':<28} {v:>9}" for k, v in counts.items()] or ["  (none)"]
    return lines


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m extractor.inspect", description=__doc__)
    ap.add_argument("--graph", default=str(DEFAULT_GRAPH), help="graph database (default: %(default)s)")
    ap.add_argument("--json", action="store_true", help="print the summary as JSON")
    ap.add_argument(
        "-v", "--verbose", action="store_true", help="also list skipped files and files with parse errors"
    )
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with Graph(args.graph) as graph:
        info = summarize(graph)
        if args.verbose:
            info["skipped"] = dict(graph.conn.execute("SELECT path, reason FROM skipped ORDER BY path"))
            info["parse_error_files"] = dict(
                graph.conn.execute(
                    "SELECT path, parse_errors FROM files WHERE parse_errors > 0 ORDER BY path"
                )
            )
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(
        f"graph {info['graph']}  repo {info['repo_root']}  commit {info['commit'] or '-'}  updated {info['updated_at']}"
    )
    out = _table(f"files: {info['files']}", info["files_by_language"])
    out += _table("nodes by type", info["nodes_by_type"]) + _table(
        "nodes by language", info["nodes_by_language"]
    )
    out += _table("edges by kind", info["edges_by_kind"]) + _table(
        "references by resolution", info["references_by_resolution"]
    )
    out.append(f"parse errors: {info['parse_errors']} in {info['files_with_parse_errors']} files")
    if info["coverage"]:
        cov = info["coverage"]
        out.append(f"coverage: {cov['nodes_run']} of {cov['nodes']} measured nodes ran ({cov['report']})")
    out.append(f"skipped files: {info['skipped_files']}")
    out += [f"  {k:<40} {v:>6}" for k, v in info["skipped_by_reason"].items()]
    for key in ("skipped", "parse_error_files"):
        out += [f"  {key}: {p}: {r}" for p, r in info.get(key, {}).items()]
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    run_main(main)
