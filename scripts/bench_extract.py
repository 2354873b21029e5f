"""Extractor benchmark (issue 2, section 4): throughput, incremental re-runs and symbol accuracy.

Corpus: the standard library of the running Python (`sysconfig.get_paths()['stdlib']`), its
`.py`/`.pyi` files copied into a temporary folder so that the benchmark can modify them.
`site-packages` and `__pycache__` are left out (not the standard library); everything else,
`test/`, `idlelib/` and `lib2to3/` included, is kept. The extractor's own walker decides which of
the copied files are indexed (it prunes folders named `venv`, so the stdlib `venv` package is not
indexed), and every measurement below uses exactly the files it lists.

Throughput, with the same files and the same number of worker processes for every step:
  (a) raw: read each file and `Parser(grammar(lang)).parse(bytes)`, nothing else, in a process
      pool chunked like the extractor's (pool start-up included, as it is in (b));
  (a2) parse + query: (a), then run the language's query over the tree (Tree-sitter's C
      matcher, which builds the capture objects) and do nothing with the matches. Every
      extraction needs this pass, so raw / (a2) bounds what (b) can reach: full extraction
      adds fact building, resolution and storage on top;
  (b) full: `extract(cfg, force_full=True)` into a fresh graph (parse, query, store, resolve);
  (c) unchanged: `extract(cfg)` again, nothing changed;
  (d) one changed: append a function to one mid-size module (the median-size file outside test
      folders), `extract(cfg)`.
Targets (issue 2 "Must show"): (b) throughput >= 50 % of (a); (c) <= 5 % of (b)'s time; (d) <= 1 s.
Each step also reports its CPU time (user + sys of this process and of its worker processes,
from `getrusage`): on a machine shared with other jobs, wall time depends on the load, CPU time
much less, so the CPU ratio full/raw tells what the code costs when wall times are noisy.

Symbol accuracy against Python's own `ast` over the same files (files `ast` cannot parse are
skipped and counted; the extractor's nodes in them are left out too). A symbol is keyed by
(path, qualname, type, start line):
  - type: `class`; `method` for a def (sync or async) whose nearest enclosing class/def is a class,
    also when it sits under an `if`/`try`/`with` in the class body; `function` for every other def,
    including functions nested in functions and in methods (and defs nested in those);
  - qualname: the names of the enclosing classes and defs joined with `.` (`__qualname__`
    without `<locals>`), e.g. `Outer.method.helper`; the module is not part of it;
  - start line: `ast`'s `lineno` of the `class`/`def` line (for decorated definitions the `def`
    line, not the first decorator; for `async def` the line of `async`).
Lambdas are not symbols. The graph is read right after the full build (b).

The same throughput measurement runs on one JavaScript tree found offline (a globally installed
npm package, such as npm itself; nested `node_modules` folders are renamed in the copy because
the walker prunes them), or is skipped with a message.
"""

from __future__ import annotations

import ast
import os
import resource
import shutil
import sqlite3
import sys
import sysconfig
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from tree_sitter import Parser, QueryCursor

from extractor import build, languages
from extractor.build import extract
from extractor.config import ExtractConfig
from extractor.walk import SourceFile, walk
from scripts.bench import Check, Section, table

PY_EXTS = (".py", ".pyi")
JS_EXTS = (".js", ".mjs", ".cjs", ".jsx")
JS_ROOTS = (
    "/usr/lib/node_modules",
    "/usr/local/lib/node_modules",
    "/usr/share/nodejs",
    "/opt/homebrew/lib/node_modules",
)
JS_MIN_FILES = 200
PRUNE_COPY = {"site-packages", "__pycache__", ".git"}
TEST_DIRS = {"test", "tests", "__tests__", "idle_test"}
ADDED = {
    "python": ("_nanodex_bench_added", "\n\ndef _nanodex_bench_added(x):\n    return x + 1\n"),
    "javascript": ("nanodexBenchAdded", "\nfunction nanodexBenchAdded(x) {\n  return x + 1;\n}\n"),
}
MAX_EXAMPLES = 10

TARGET_FULL_VS_RAW = 0.50
TARGET_UNCHANGED_VS_FULL = 0.05
TARGET_ONE_CHANGED_S = 1.0
TARGET_ACCURACY = 0.99


# ---------------------------------------------------------------------------- corpus


def copy_tree(src: Path, dst: Path, exts: tuple[str, ...], top_level_only: bool = False) -> tuple[int, int]:
    """Copy the files with `exts` under `src` to `dst`; nested `node_modules` become `node_modules_`."""
    count = size = 0
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames[:] = [] if top_level_only else sorted(d for d in dirnames if d not in PRUNE_COPY)
        rel = Path(dirpath).relative_to(src)
        out_dir = dst.joinpath(*("node_modules_" if p == "node_modules" else p for p in rel.parts))
        for name in filenames:
            if not name.endswith(exts):
                continue
            source = Path(dirpath, name)
            if source.is_symlink() or not source.is_file():
                continue
            out_dir.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, out_dir / name)
            count += 1
            size += source.stat().st_size
    return count, size


def find_js_tree(quick: bool) -> Path | None:
    """The installed npm package with the most .js files (at least JS_MIN_FILES), if any."""
    best: tuple[int, Path] | None = None
    for root in map(Path, JS_ROOTS):
        if not root.is_dir():
            continue
        for pkg in sorted(root.iterdir()):
            if not pkg.is_dir() or pkg.is_symlink():
                continue
            n = 0
            for _dirpath, dirnames, filenames in os.walk(pkg):
                if quick:
                    dirnames[:] = [d for d in dirnames if d != "node_modules"]
                n += sum(name.endswith(JS_EXTS) for name in filenames)
            if n >= (JS_MIN_FILES // 2 if quick else JS_MIN_FILES) and (best is None or n > best[0]):
                best = (n, pkg)
    return best[1] if best else None


# ---------------------------------------------------------------------------- (a) raw parse


@cache
def _parser(lang: str) -> Parser:
    return Parser(languages.grammar(lang))


def _raw_parse(job: tuple[str, str, str, bool]) -> int:
    root, path, lang, query = job
    source = Path(root, path).read_bytes()
    tree = _parser(lang).parse(source)
    if query:
        QueryCursor(languages.query(lang)).matches(tree.root_node)
    return len(source)


def cpu_seconds() -> float:
    """User + system CPU time of this process and of its finished (waited-for) children."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def raw_parse(root: Path, files: list[SourceFile], workers: int, query: bool = False) -> float:
    """Seconds to read and Tree-sitter-parse every file (and run the query over it, with
    `query`), pooled and chunked like `build._parse_all`."""
    jobs = [(str(root), f.path, f.lang, query) for f in files]
    for lang in {f.lang for f in files}:
        _parser(lang)  # load the grammar and query before the workers fork, as the extractor does
        languages.query(lang)
    t0 = time.perf_counter()
    if len(jobs) <= build._IN_PROCESS_MAX or workers == 1:
        sum(map(_raw_parse, jobs))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            chunk = max(1, min(32, len(jobs) // (workers * 8)))
            sum(pool.map(_raw_parse, jobs, chunksize=chunk))
    return time.perf_counter() - t0


# ---------------------------------------------------------------------------- (a)-(d)


@dataclass
class Throughput:
    rows: list[list[object]]
    checks: list[Check]
    metrics: dict
    graph_defs: list[tuple[str, str, str, int]]  # (path, qualname, type, start_line) right after (b)
    files: list[SourceFile]


def pick_mid_size(files: list[SourceFile], exts: tuple[str, ...]) -> SourceFile:
    """The median-size file outside test folders (deterministic for a given tree)."""
    pool = [
        f for f in files if f.path.endswith(exts) and not TEST_DIRS & set(f.path.split("/")[:-1])
    ] or files
    pool.sort(key=lambda f: (f.size, f.path))
    return pool[len(pool) // 2]


def measure(lang: str, repo: Path, graph: Path, workers: int, label: str) -> Throughput:
    cfg = ExtractConfig(repo=str(repo), languages=[lang], out_graph=str(graph), workers=workers)
    walked = walk(
        repo.resolve(),
        languages.by_extension(languages.expand(cfg.languages)),
        cfg.exclude,
        cfg.max_file_bytes,
        cfg.respect_gitignore,
    )
    files = walked.files
    n, mb = len(files), sum(f.size for f in files) / 1e6
    print(
        f"{label}: {n} files, {mb:.1f} MB indexed ({len(walked.skipped)} skipped by the walker), "
        f"{workers} worker processes",
        flush=True,
    )

    cpu: dict[str, float] = {}
    c0 = cpu_seconds()
    raw_s = raw_parse(repo.resolve(), files, workers)
    c1 = cpu_seconds()
    query_s = raw_parse(repo.resolve(), files, workers, query=True)
    c2 = cpu_seconds()
    full = extract(cfg, force_full=True)
    c3 = cpu_seconds()
    cpu["raw"], cpu["query"], cpu["full"] = c1 - c0, c2 - c1, c3 - c2
    with closing(sqlite3.connect(graph)) as conn:
        graph_defs = conn.execute(
            "SELECT path, qualname, type, start_line FROM nodes WHERE type IN ('class', 'function', 'method')"
        ).fetchall()
        node_count = conn.execute("SELECT COUNT(*) FROM nodes").fetchone()[0]
        edge_count = conn.execute("SELECT COUNT(*) FROM edges").fetchone()[0]
    c0 = cpu_seconds()
    unchanged = extract(cfg)
    cpu["unchanged"] = cpu_seconds() - c0

    target = pick_mid_size(files, PY_EXTS if lang == "python" else JS_EXTS)
    added_name, added_src = ADDED[lang]
    path = repo / target.path
    original = path.read_bytes()
    path.write_bytes(original + added_src.encode())
    try:
        c0 = cpu_seconds()
        one = extract(cfg)
        cpu["one"] = cpu_seconds() - c0
        with closing(sqlite3.connect(graph)) as conn:
            found = conn.execute(
                "SELECT start_line FROM nodes WHERE path = ? AND name = ?", (target.path, added_name)
            ).fetchall()
    finally:
        path.write_bytes(original)  # the graph is not updated again: the accuracy pass uses (b)'s nodes

    def row(step: str, seconds: float, cpu_s: float, note: str) -> list[object]:
        return [
            step,
            n,
            round(mb, 1),
            round(seconds, 3),
            round(n / seconds, 1),
            round(mb / seconds, 2),
            round(cpu_s, 3),
            round(mb / cpu_s, 2) if cpu_s else 0.0,
            note,
        ]

    rows = [
        row("(a) raw parse", raw_s, cpu["raw"], "read + Parser.parse only"),
        row("(a2) parse + query", query_s, cpu["query"], "(a) + QueryCursor.matches, matches unused"),
        row(
            "(b) full extraction",
            full.seconds,
            cpu["full"],
            f"{full.parsed} parsed; {node_count} nodes, {edge_count} edges; "
            f"{full.parse_errors} parse errors in {full.files_with_errors} files",
        ),
        row(
            "(c) unchanged re-run",
            unchanged.seconds,
            cpu["unchanged"],
            f"{unchanged.parsed} parsed, {unchanged.unchanged} unchanged",
        ),
        row(
            "(d) one file changed",
            one.seconds,
            cpu["one"],
            f"{one.parsed} parsed, {one.resolved_files} re-resolved; "
            f"{target.path} ({target.size / 1e3:.1f} kB) + {added_name} "
            f"{'found' if found else 'NOT FOUND'}{' at line ' + str(found[0][0]) if found else ''}",
        ),
    ]
    table(
        ["step", "files", "MB", "seconds", "files/s", "MB/s", "cpu s", "MB/cpu-s", "notes"],
        rows,
        title=f"{label}: throughput (cpu s: user + sys, this process and its workers)",
    )
    ratio_full = raw_s / full.seconds  # throughput ratio = inverse time ratio on the same files
    ratio_unchanged = unchanged.seconds / full.seconds
    print(
        f"{lang} ceiling: (a2) alone reaches {100 * raw_s / query_s:.1f} % of raw throughput "
        f"({100 * cpu['raw'] / cpu['query']:.1f} % by CPU time); full extraction builds facts, "
        "resolves and stores on top of it"
    )
    print(
        f"{lang} by CPU time: full/raw throughput {100 * cpu['raw'] / cpu['full']:.1f} %, "
        f"unchanged/full {100 * cpu['unchanged'] / cpu['full']:.2f} %, one changed file {cpu['one']:.3f} cpu-s"
    )
    checks = [
        Check(f"{lang} full/raw throughput", round(100 * ratio_full, 1), 100 * TARGET_FULL_VS_RAW, unit=" %"),
        Check(
            f"{lang} unchanged re-run / full time",
            round(100 * ratio_unchanged, 2),
            100 * TARGET_UNCHANGED_VS_FULL,
            higher_is_better=False,
            unit=" %",
        ),
        Check(
            f"{lang} one changed file re-indexed",
            round(one.seconds, 3),
            TARGET_ONE_CHANGED_S,
            higher_is_better=False,
            unit=" s",
        ),
    ]
    for c in checks:
        print(c.line())
    if one.parsed != 1 or not found or unchanged.parsed != 0:
        print(
            f"WARNING: unexpected incremental behaviour: unchanged run parsed {unchanged.parsed}, "
            f"one-change run parsed {one.parsed}, added function found: {bool(found)}"
        )
    metrics = {
        "files": n,
        "mb": round(mb, 2),
        "workers": workers,
        "raw_s": raw_s,
        "parse_query_s": query_s,
        "ceiling_vs_raw": raw_s / query_s,
        "full_s": full.seconds,
        "unchanged_s": unchanged.seconds,
        "one_changed_s": one.seconds,
        "one_changed_path": target.path,
        "one_changed_resolved_files": one.resolved_files,
        "nodes": node_count,
        "edges": edge_count,
        "full_vs_raw": ratio_full,
        "unchanged_vs_full": ratio_unchanged,
        "cpu_s": {k: round(v, 3) for k, v in cpu.items()},
        "full_vs_raw_cpu": cpu["raw"] / cpu["full"],
        "load_avg_1min": os.getloadavg()[0],
    }
    return Throughput(rows, checks, metrics, graph_defs, files)


# ---------------------------------------------------------------------------- accuracy


def ast_defs(job: tuple[str, str]) -> tuple[str, list[tuple[str, str, int]] | None, str]:
    """(path, [(qualname, type, line)], error) for one file; None when `ast` cannot parse it."""
    root, path = job
    source = Path(root, path).read_bytes()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tree = ast.parse(source, filename=path)
    except (SyntaxError, ValueError) as err:
        return path, None, f"{err.__class__.__name__}: {err}".splitlines()[0][:120]
    out: list[tuple[str, str, int]] = []

    def visit(node: ast.AST, scope: tuple[str, ...], in_class: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                out.append((".".join((*scope, child.name)), "class", child.lineno))
                visit(child, (*scope, child.name), True)
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                out.append(
                    (".".join((*scope, child.name)), "method" if in_class else "function", child.lineno)
                )
                visit(child, (*scope, child.name), False)
            else:
                visit(child, scope, in_class)

    visit(tree, (), False)
    return path, out, ""


def spread(keys: Counter, limit: int) -> list[tuple]:
    """Up to `limit` keys, taken from as many different files as possible (one per file per round)."""
    by_file: dict[str, list[tuple]] = {}
    for key in sorted(keys):
        by_file.setdefault(key[0], []).append(key)
    out: list[tuple] = []
    while len(out) < limit and any(by_file.values()):
        for queue in by_file.values():
            if queue and len(out) < limit:
                out.append(queue.pop(0))
    return out


def accuracy(
    repo: Path, files: list[SourceFile], graph_defs: list[tuple[str, str, str, int]], workers: int
) -> tuple[list[Check], dict]:
    t0 = time.perf_counter()
    jobs = [(str(repo), f.path) for f in files if f.lang == "python"]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(ast_defs, jobs, chunksize=16))
    failed = {p: err for p, defs, err in results if defs is None}
    expected = Counter((p, q, t, line) for p, defs, _ in results if defs is not None for q, t, line in defs)
    got = Counter(d for d in graph_defs if d[0] not in failed and d[0].endswith(PY_EXTS))
    matched = expected & got
    missed, extra = expected - matched, got - matched
    print(
        f"\npython symbols vs ast: {len(jobs) - len(failed)} files compared, {len(failed)} skipped "
        f"(ast cannot parse them), {time.perf_counter() - t0:.1f}s"
    )
    for p, err in sorted(failed.items())[:MAX_EXAMPLES]:
        print(f"  ast skip {p}: {err}")

    rows = []
    for typ in ("class", "function", "method", "all"):

        def of(c: Counter, typ: str = typ) -> int:
            return sum(v for k, v in c.items() if typ in ("all", k[2]))

        e, g, m = of(expected), of(got), of(matched)
        rows.append(
            [
                typ,
                e,
                g,
                m,
                of(missed),
                of(extra),
                round(100 * m / e, 3) if e else 100.0,
                round(100 * m / g, 3) if g else 100.0,
            ]
        )
    table(
        ["type", "ast", "graph", "matched", "missed", "extra", "recall %", "precision %"],
        rows,
        title="python symbols vs ast, key = (path, qualname, type, start line)",
    )

    # Explain each miss by the closest counterpart on the other side, to tell line/type/name errors apart.
    def explain(key: tuple, other: Counter) -> str:
        path, qual, typ, line = key
        same_line = [k for k in other if k[0] == path and k[3] == line]
        if same_line:
            return "other side at this line: " + ", ".join(f"{k[2]} {k[1]}" for k in same_line[:3])
        same_name = [k for k in other if k[0] == path and k[1] == qual]
        if same_name:
            return "same qualname elsewhere: " + ", ".join(f"{k[2]} line {k[3]}" for k in same_name[:3])
        return "no counterpart"

    for title, diff, other in (
        ("missed (in ast, not in graph)", missed, got),
        ("extra (in graph, not in ast)", extra, expected),
    ):
        if diff:
            print(f"\n{title}: {sum(diff.values())}; {min(MAX_EXAMPLES, len(diff))} examples:")
            by_file = Counter(k[0] for k in diff.elements()).most_common(5)
            print("  by file: " + ", ".join(f"{p} {n}" for p, n in by_file))
            for key in spread(diff, MAX_EXAMPLES):
                print(f"  {key[0]}:{key[3]} {key[2]} {key[1]}  [{explain(key, other)}]")
    total = rows[-1]
    checks = [
        Check("python symbol recall vs ast", total[6], 100 * TARGET_ACCURACY, unit=" %"),
        Check("python symbol precision vs ast", total[7], 100 * TARGET_ACCURACY, unit=" %"),
    ]
    for c in checks:
        print(c.line())
    metrics = {
        "files_compared": len(jobs) - len(failed),
        "ast_skipped": len(failed),
        "per_type": {
            r[0]: dict(
                zip(("ast", "graph", "matched", "missed", "extra", "recall", "precision"), r[1:], strict=True)
            )
            for r in rows
        },
    }
    return checks, metrics


# ---------------------------------------------------------------------------- section


def _timed(label: str, fn: Callable[[], tuple[int, int]]) -> tuple[int, int]:
    t0 = time.perf_counter()
    count, size = fn()
    print(f"{label}: {count} files, {size / 1e6:.1f} MB in {time.perf_counter() - t0:.1f}s", flush=True)
    return count, size


def run(quick: bool = False) -> Section:
    sec = Section("extract")
    workers = os.cpu_count() or 1
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    with tempfile.TemporaryDirectory(prefix="nanodex-bench-") as tmp_name:
        tmp = Path(tmp_name)
        repo = tmp / "stdlib"
        scope = "top-level modules only (--quick)" if quick else "all packages, site-packages excluded"
        _timed(
            f"copied {stdlib} ({scope}) to {repo}",
            lambda: copy_tree(stdlib, repo, PY_EXTS, top_level_only=quick),
        )
        py = measure("python", repo, tmp / "python.sqlite", workers, "python stdlib")
        sec.checks += py.checks
        sec.metrics["python"] = py.metrics
        checks, metrics = accuracy(repo, py.files, py.graph_defs, workers)
        sec.checks += checks
        sec.metrics["python"]["accuracy"] = metrics

        print()
        if not languages.LANGUAGES["javascript"].query_path.is_file():
            sec.skipped.append(
                f"javascript: no query file {languages.LANGUAGES['javascript'].query_path} yet"
            )
        elif (js_src := find_js_tree(quick)) is None:
            sec.skipped.append(
                f"javascript: no npm package with >= {JS_MIN_FILES} .js files under {', '.join(JS_ROOTS)}"
            )
        else:
            js_repo = tmp / "js"
            _timed(
                f"copied {js_src}{' (without node_modules, --quick)' if quick else ''} to {js_repo}",
                lambda: copy_tree_js(js_src, js_repo, quick),
            )
            js = measure(
                "javascript", js_repo, tmp / "javascript.sqlite", workers, f"javascript {js_src.name}"
            )
            sec.checks += js.checks
            sec.metrics["javascript"] = {**js.metrics, "source": str(js_src)}
        for reason in sec.skipped:
            print(f"SKIP {reason}")
    return sec


def copy_tree_js(src: Path, dst: Path, quick: bool) -> tuple[int, int]:
    if not quick:
        return copy_tree(src, dst, JS_EXTS)
    count = size = 0
    for entry in sorted(src.iterdir()):
        if entry.name == "node_modules":
            continue
        if entry.is_dir() and not entry.is_symlink():
            c, s = copy_tree(entry, dst / entry.name, JS_EXTS)
        elif entry.name.endswith(JS_EXTS) and entry.is_file():
            dst.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(entry, dst / entry.name)
            c, s = 1, entry.stat().st_size
        else:
            continue
        count, size = count + c, size + s
    return count, size


if __name__ == "__main__":
    from scripts.bench import main

    # `python -m scripts.bench_extract [--quick] [--json PATH] [--strict]`: the `extract` section
    # of `make bench`, with its options (and its --help)
    raise SystemExit(main(["--only", "extract", *sys.argv[1:]]))
