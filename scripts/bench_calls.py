"""Call-graph benchmark (issue 16): the graph's `calls` edges against jedi's goto-definition.

Corpus: pinned source distributions of pure-Python libraries from PyPI (`LIBRARIES`), fetched
with `pip download --no-binary :all:` into the nanodex cache and unpacked; their code is parsed
(by the extractor and by `ast`/jedi), never imported or run. jedi itself is installed pinned
into the cache (`pip install --target`) on first use and put on `sys.path` of this process only.

Method, per library:
  1. The extractor builds the graph of the whole unpacked tree (tests included: test-only
     definitions must be there for the "library code never resolves into tests" check).
  2. Every call inside a function or method of the library's package folder (`src/`-style
     layout or top-level package; tests, docs and benchmarks excluded) is located with `ast`:
     the callee name's position (`f` in `f(...)`, `m` in `x.m(...)`).
  3. jedi's `goto(follow_imports=True)` at that position gives one target. A target inside the
     repository that is a definition (a def or class line the graph has a node for) makes a gold
     pair (caller node, target node); a target in the standard library (its source, builtins or
     jedi's typeshed stdlib stubs) makes a "stdlib-bound" call site. Calls jedi cannot resolve,
     or resolves to third-party code or to a non-definition (a variable, a parameter), are not
     judged. jedi's answers are cached per (jedi version, library version): they do not depend
     on the extractor.
  4. A call site is (caller, callee name). The graph predicts, for each judged site, the `calls`
     edges from the caller to nodes of that name (edges table), plus the caller's `ambiguous`
     candidates of that name (with candidates); "top candidate" keeps one target per site: the
     edge of highest confidence, else the first candidate.
  Recall = gold pairs predicted / gold pairs. Precision in-repo = correct predictions / predictions
  at sites jedi sends into the repository; "incl. stdlib" also counts predictions at sites jedi
  sends to the standard library (every one of them is wrong: the graph holds no stdlib code).
  The bare-name baseline predicts every function/method/class of the callee's name in the repo,
  computed in the same process over the same sites.

scip-on row: the same libraries extracted again with `use_scip: true` (scip-python's index
confirms or replaces the calls edges, see extractor/scip_edges.py), scored the same way, with
the extraction time of that run (the indexer run included: each run indexes a fresh temporary
copy, so its index is never cached) next to the default run's, and a third, `--full` run that
reads the cached index. It needs `node` and `npm`; without them the row is skipped, with why.

Limits: jedi gives one target per call, so a call that dispatches to an override at run time
counts the graph's edge to the override as wrong, and a jedi miss (dynamic attribute, decorator
that hides the signature) is simply not judged. See the README section "Call-graph benchmark".
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from extractor import scip_run
from extractor.build import extract
from extractor.config import ExtractConfig
from nanodex.errors import NanodexError, run_main
from nanodex.paths import cache_dir
from scripts.bench import Check, Section, table

JEDI_VERSION = "0.19.2"
# (name, version, library code folder inside the sdist, the folder that goes on sys.path):
# pure-Python libraries, not requests/click (reserved for independent evaluation).
LIBRARIES: tuple[tuple[str, str, str, str], ...] = (
    ("marshmallow", "3.23.1", "src/marshmallow", "src"),
    ("attrs", "24.2.0", "src", "src"),
    ("tenacity", "9.0.0", "tenacity", "."),
)
QUICK_LIBRARIES = ("tenacity", "marshmallow")
TARGET_RECALL, TARGET_PRECISION, TARGET_PRECISION_STDLIB = 0.95, 0.98, 0.95
SCIP_TARGET_RECALL, SCIP_TARGET_PRECISION = 0.98, 0.99
_CALLABLE = ("function", "method", "class")


def _bench_cache() -> Path:
    return cache_dir() / "bench-calls"


def ensure_jedi() -> object:
    """Import the pinned jedi from the cache, installing it there first if needed."""
    target = _bench_cache() / f"jedi-{JEDI_VERSION}"
    if not (target / "jedi").is_dir():
        print(f"installing jedi=={JEDI_VERSION} into {target}", flush=True)
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "-q", "--target", str(target), f"jedi=={JEDI_VERSION}"],
            check=True,
        )
    if str(target) not in sys.path:
        sys.path.insert(0, str(target))
    import jedi  # noqa: PLC0415  (installed above, on demand)

    return jedi


def ensure_library(name: str, version: str) -> Path:
    """The unpacked sdist of `name==version` (downloaded into the cache on first use)."""
    src = _bench_cache() / "src"
    folder = src / f"{name}-{version}"
    if folder.is_dir():
        return folder
    src.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--no-binary", ":all:",
         f"{name}=={version}", "-d", str(src)],
        check=True,
    )  # fmt: skip
    archive = next(p for p in src.iterdir() if p.name.startswith(f"{name}-{version}.tar"))
    tmp = Path(tempfile.mkdtemp(dir=src))
    with tarfile.open(archive) as tar:
        tar.extractall(tmp, filter="data")
    (tmp / f"{name}-{version}").rename(folder)
    shutil.rmtree(tmp)
    return folder


@dataclass
class Gold:
    """jedi's verdicts for one library: sites keyed (caller, name) -> in-repo targets / stdlib."""

    pairs: set[tuple[str, str, str]] = field(default_factory=set)  # (caller, target's name, target)
    repo_sites: set[tuple[str, str]] = field(default_factory=set)
    stdlib_sites: set[tuple[str, str]] = field(default_factory=set)
    calls: int = 0  # call sites seen
    unjudged: int = 0


def _defs_by_line(conn: sqlite3.Connection) -> dict[tuple[str, int, str], str]:
    return {
        (p, line, name): i
        for i, p, line, name in conn.execute(
            "SELECT id, path, start_line, name FROM nodes WHERE type IN ('function','method','class')"
        )
    }


def _call_sites(tree: ast.AST) -> list[tuple[ast.AST, str, int, int]]:
    """(enclosing def, callee name, line, col) of every call inside a def."""
    out = []

    def visit(node: ast.AST, fn: ast.AST | None) -> None:
        for child in ast.iter_child_nodes(node):
            inner = child if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else fn
            if isinstance(child, ast.ClassDef):
                inner = None
            if isinstance(child, ast.Call) and fn is not None:
                f = child.func
                if isinstance(f, ast.Name):
                    out.append((fn, f.id, f.lineno, f.col_offset))
                elif isinstance(f, ast.Attribute) and f.end_lineno is not None:
                    out.append((fn, f.attr, f.end_lineno, f.end_col_offset - len(f.attr)))
            visit(child, inner)

    visit(tree, None)
    return out


def _stdlib_roots(jedi: object) -> tuple[str, ...]:
    jedi_dir = Path(jedi.__file__).parent  # type: ignore[attr-defined]
    return (
        sysconfig.get_paths()["stdlib"],
        str(jedi_dir / "third_party" / "typeshed" / "stdlib"),
    )


def jedi_gold(jedi: object, repo: Path, package: str, import_root: str) -> dict:
    """Raw jedi verdicts: [caller path, caller line, caller name, callee, kind, target] per call."""
    stdlib = _stdlib_roots(jedi)
    env_path = [p for p in sys.path if p and "site-packages" not in p and "jedi-" not in p]
    project = jedi.Project(  # type: ignore[attr-defined]
        repo, sys_path=[str((repo / import_root).resolve()), *env_path],
        smart_sys_path=False,
    )  # fmt: skip
    rows = []
    for file in sorted((repo / package).rglob("*.py")):
        rel = file.relative_to(repo).as_posix()
        code = file.read_text(encoding="utf-8")
        script = jedi.Script(code, path=file, project=project)  # type: ignore[attr-defined]
        for fn, name, line, col in _call_sites(ast.parse(code)):
            try:
                targets = script.goto(line, col, follow_imports=True)
            except Exception:  # jedi's own failures: the call is not judged
                targets = []
            verdict: list = ["none"]
            for t in targets[:1]:
                mp = str(t.module_path) if t.module_path else ""
                if not mp or mp.startswith(stdlib):
                    verdict = ["stdlib"]
                elif Path(mp).is_relative_to(repo) and t.line is not None:
                    verdict = ["repo", Path(mp).relative_to(repo).as_posix(), t.line, t.name]
                else:
                    verdict = ["other"]
            rows.append([rel, fn.lineno, fn.name, name, *verdict])
    return {"rows": rows}


def load_gold(jedi: object, lib: tuple[str, str, str, str], repo: Path, conn: sqlite3.Connection) -> Gold:
    name, version, package, import_root = lib
    cache = _bench_cache() / f"gold-{name}-{version}-jedi-{JEDI_VERSION}.json"
    defs = _defs_by_line(conn)
    if cache.is_file():
        raw = json.loads(cache.read_text(encoding="utf-8"))
    else:
        t0 = time.perf_counter()
        raw = jedi_gold(jedi, repo, package, import_root)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(raw), encoding="utf-8")
        tmp.replace(cache)
        print(f"{name}: jedi judged {len(raw['rows'])} calls in {time.perf_counter() - t0:.0f}s", flush=True)
    gold = Gold()
    for path, line, fn_name, callee, kind, *target in raw["rows"]:
        gold.calls += 1
        caller = defs.get((path, line, fn_name))
        if caller is None:
            gold.unjudged += 1
            continue
        site = (caller, callee)
        if kind == "stdlib":
            gold.stdlib_sites.add(site)
        elif kind == "repo" and (dst := defs.get((target[0], target[1], target[2]))) is not None:
            # Keyed by the target's name: `from m import f as g; g()` is the site (caller, "f").
            gold.repo_sites.add((caller, target[2]))
            gold.pairs.add((caller, target[2], dst))
        else:
            gold.unjudged += 1
    return gold


@dataclass
class Predictions:
    """Per resolver, the predicted (caller, target) pairs for each judged site."""

    edges: dict[tuple[str, str], set[str]]
    candidates: dict[tuple[str, str], set[str]]
    top: dict[tuple[str, str], set[str]]
    bare: dict[tuple[str, str], set[str]]


def predictions(conn: sqlite3.Connection, sites: set[tuple[str, str]]) -> Predictions:
    name_of = dict(conn.execute("SELECT id, name FROM nodes"))
    by_name: dict[str, set[str]] = defaultdict(set)
    for i, n, t in conn.execute("SELECT id, name, type FROM nodes"):
        if t in _CALLABLE:
            by_name[n].add(i)
    edges: dict[tuple[str, str], set[str]] = defaultdict(set)
    best: dict[tuple[str, str], tuple[float, str]] = {}
    for src, dst, meta in conn.execute("SELECT src_id, dst_id, meta_json FROM edges WHERE kind = 'calls'"):
        site = (src, name_of.get(dst, ""))
        if site in sites:
            edges[site].add(dst)
            conf = json.loads(meta).get("confidence", 1.0)
            if site not in best or conf > best[site][0]:
                best[site] = (conf, dst)
    cands: dict[tuple[str, str], set[str]] = defaultdict(set)
    first: dict[tuple[str, str], str] = {}
    callers = {c for c, _ in sites}
    for node_id, meta in conn.execute("SELECT id, meta_json FROM nodes WHERE meta_json LIKE '%ambiguous%'"):
        if node_id not in callers:
            continue
        for amb in json.loads(meta).get("ambiguous", []):
            site = (node_id, amb["name"])
            if site in sites:
                cands[site].update(amb["candidates"])
                first.setdefault(site, amb["candidates"][0])
    with_cands = {s: edges.get(s, set()) | cands.get(s, set()) for s in sites}
    top = {s: {best[s][1]} if s in best else ({first[s]} if s in first else set()) for s in sites}
    bare = {s: by_name.get(s[1], set()) for s in sites}
    return Predictions(dict(edges), with_cands, top, bare)


def score(pred: dict[tuple[str, str], set[str]], gold: Gold) -> tuple[float, float, float]:
    """(recall, precision in-repo, precision incl. stdlib-bound sites)."""
    hit = sum(1 for c, n, d in gold.pairs if d in pred.get((c, n), ()))
    made_repo = sum(len(pred.get(s, ())) for s in gold.repo_sites)
    made_all = made_repo + sum(len(pred.get(s, ())) for s in gold.stdlib_sites - gold.repo_sites)
    recall = hit / len(gold.pairs) if gold.pairs else 0.0
    return (recall, hit / made_repo if made_repo else 1.0, hit / made_all if made_all else 1.0)


def _print_errors(pred: dict[tuple[str, str], set[str]], gold: Gold) -> None:
    """The edges table's misses and wrong edges, for reading (`python -m scripts.bench_calls --errors`)."""
    for c, n, d in sorted(gold.pairs):
        if d not in pred.get((c, n), ()):
            print(f"  MISS  {c} -> {d}")
    good = {(c, d) for c, _, d in gold.pairs}
    for s in sorted(gold.repo_sites | gold.stdlib_sites):
        for d in sorted(pred.get(s, ())):
            if (s[0], d) not in good:
                print(f"  WRONG {s[0]} -> {d}{'  (jedi: stdlib)' if s not in gold.repo_sites else ''}")


def run_library(
    jedi: object,
    lib: tuple[str, str, str, str],
    work: Path,
    use_scip: bool = False,
    show_errors: bool = False,
) -> dict:
    name, version = lib[0], lib[1]
    src = ensure_library(name, version)
    repo = work / f"{name}-{version}"
    if not repo.exists():
        shutil.copytree(src, repo, ignore=shutil.ignore_patterns("__pycache__", ".git"))
    graph = work / f"{name}{'-scip' if use_scip else ''}.sqlite"
    cfg = ExtractConfig(
        repo=str(repo), out_graph=str(graph), languages=["python"], workers=1, use_scip=use_scip
    )
    t0 = time.perf_counter()
    report = extract(cfg, force_full=True)
    seconds = time.perf_counter() - t0
    cached_s = None
    if use_scip:  # again, from scratch, with the index the first run cached
        t0 = time.perf_counter()
        again = extract(cfg, force_full=True)
        cached_s = time.perf_counter() - t0
        assert again.scip["indexers"] == {"scip-python": "cached"}, again.scip
        shutil.rmtree(scip_run.cache_folder(repo.resolve()), ignore_errors=True)
    conn = sqlite3.connect(graph)
    try:
        gold = load_gold(jedi, lib, repo, conn)
        sites = gold.repo_sites | gold.stdlib_sites
        pred = predictions(conn, sites)
    finally:
        conn.close()
    if show_errors:
        _print_errors(pred.edges, gold)
    return {
        "library": f"{name} {version}",
        "pairs": len(gold.pairs),
        "stdlib_sites": len(gold.stdlib_sites),
        "calls": gold.calls,
        "extract_s": seconds,
        "extract_cached_s": cached_s,
        "scip": report.scip,
        "edges": score(pred.edges, gold),
        "candidates": score(pred.candidates, gold),
        "top": score(pred.top, gold),
        "bare": score(pred.bare, gold),
    }


def _scip_unavailable() -> str | None:
    """Why the scip-on row cannot run here (None: it can); installs the indexers on first use."""
    try:
        scip_run.preflight()
        scip_run.ensure_installed()
    except NanodexError as err:
        return str(err)
    return None


def run(
    quick: bool = False, workdir: str | None = None, show_errors: bool = False, scip: bool = True
) -> Section:
    section = Section("calls")
    jedi = ensure_jedi()
    print(f"jedi {jedi.__version__} (goto, follow_imports) as the reference resolver", flush=True)  # type: ignore[attr-defined]
    libs = [lib for lib in LIBRARIES if not quick or lib[0] in QUICK_LIBRARIES]
    with tempfile.TemporaryDirectory(prefix="nanodex-bench-calls-", dir=workdir) as tmp:
        results = [run_library(jedi, lib, Path(tmp), show_errors=show_errors) for lib in libs]
        why_not = _scip_unavailable() if scip else "skipped by --no-scip"
        scip_results = (
            [run_library(jedi, lib, Path(tmp), use_scip=True, show_errors=show_errors) for lib in libs]
            if why_not is None
            else []
        )
    rows = []
    for r in results:
        for label, key in (
            ("calls edges table", "edges"),
            ("edges + ambiguous candidates", "candidates"),
            ("top candidate", "top"),
            ("bare-name baseline", "bare"),
        ):
            rec, prec, prec_all = r[key]
            rows.append([r["library"], label, round(rec, 3), round(prec, 3), round(prec_all, 3)])
        for s in scip_results:
            if s["library"] == r["library"]:
                rec, prec, prec_all = s["edges"]
                rows.append(
                    [r["library"], "use_scip: edges table", round(rec, 3), round(prec, 3), round(prec_all, 3)]
                )
    table(
        ["library", "resolver", "recall", "precision", "precision incl. stdlib-bound"],
        rows,
        title="calls vs jedi goto-definition",
    )
    table(
        ["library", "gold pairs", "stdlib-bound sites", "calls seen", "extract s"],
        [
            [r["library"], r["pairs"], r["stdlib_sites"], r["calls"], round(r["extract_s"], 2)]
            for r in results
        ],
    )
    if scip_results:
        table(
            ["library", "extract s (scip off)", "extract s (scip on)", "scip on, cached index", "edges confirmed",
             "added", "removed"],
            [
                [r["library"], round(r["extract_s"], 2), round(s["extract_s"], 2), round(s["extract_cached_s"], 2),
                 s["scip"]["edges"]["confirmed"], s["scip"]["edges"]["added"], s["scip"]["edges"]["removed"]]
                for r, s in zip(results, scip_results, strict=True)
            ],
            title="use_scip: scip-python's index over the Tree-sitter edges",
        )  # fmt: skip
    else:
        section.skipped.append(f"scip-on row: {why_not}")
    for s in scip_results:
        rec, prec, prec_all = s["edges"]
        lib = s["library"]
        section.metrics[f"{lib} use_scip"] = {
            "edges": s["edges"], "extract_s": s["extract_s"], "extract_cached_s": s["extract_cached_s"],
            "scip": s["scip"],
        }  # fmt: skip
        section.checks += [
            Check(f"{lib}: use_scip recall", rec, SCIP_TARGET_RECALL),
            Check(f"{lib}: use_scip precision", prec, SCIP_TARGET_PRECISION),
        ]
    for r in results:
        rec, prec, prec_all = r["edges"]
        lib = r["library"]
        section.metrics[lib] = {
            k: r[k] for k in ("pairs", "stdlib_sites", "edges", "candidates", "top", "bare")
        }
        section.checks += [
            Check(f"{lib}: edges recall", rec, TARGET_RECALL),
            Check(f"{lib}: edges precision", prec, TARGET_PRECISION),
            Check(f"{lib}: edges precision incl. stdlib-bound", prec_all, TARGET_PRECISION_STDLIB),
        ]
    return section


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scripts.bench_calls", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"only {', '.join(QUICK_LIBRARIES)}")
    ap.add_argument("--errors", action="store_true", help="list every missed and wrong edge")
    ap.add_argument("--no-scip", action="store_true", help="skip the use_scip row (needs node and npm)")
    ap.add_argument("--workdir", help="build the graphs here instead of a temporary folder")
    args = ap.parse_args(argv)
    if args.workdir and not Path(args.workdir).is_dir():
        raise NanodexError(f"--workdir {args.workdir} is not a folder", "create it, or leave --workdir out")
    os.environ.setdefault("NANODEX_PROGRESS", "0")
    run(quick=args.quick, workdir=args.workdir, show_errors=args.errors, scip=not args.no_scip)
    return 0


if __name__ == "__main__":
    run_main(main, sys.argv[1:])
