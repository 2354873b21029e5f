"""Real user questions about open-source Python libraries, with gold symbols at a pinned version.

The question set (`scripts/real_questions.jsonl`) is shared by the search benchmark (issue 18,
"retrieval") and the answer benchmark (issue 15, "one answer path").

Where the questions came from: each one was asked by a real user in a public GitHub issue or a
Q&A thread (Stack Overflow and similar); its `source` is that thread's URL. The wording is the
user's, lightly trimmed to one self-contained question of at most about three sentences; quoted
error text and identifiers the user wrote are kept, and no symbol name the user did not write was
added. Kinds: `capability` ("can X do Y?"), `howto`, `diag` (an error message or symptom) and
`architecture` ("where/how does X handle Y").

How gold was chosen: for each question, the 1-3 library symbols (functions, methods, classes)
whose code answers it at the pinned version, preferring library code over tests. Questions whose
answer is not in that version's code were dropped. Every gold span is the definition's `def` /
`class` line (decorators excluded) to its `end_lineno`, as Python's `ast` reports it for the file
in the library's sdist; `path` is relative to the unpacked sdist root, and `qualname` is the
module's dotted name (from the path, with a leading `src/` and `__init__` dropped) plus the
enclosing classes and functions. `python -m scripts.real_questions --check` downloads every
pinned sdist and re-verifies all spans.

The set: tenacity 9.2.1 and cachetools 8.0.3 (their latest releases when collected) and
marshmallow 3.26.1 (the last 3.x release: most user questions are about the 3.x API, which 4.x
changed); about 20-33 questions each. Filter on `Question.library` to run a subset.

The held-out set (`scripts/real_questions_heldout.jsonl`, `HELDOUT`): 42 questions collected the
same way and with the same rules, for two libraries not in the set above: attrs 26.1.0 (21; its
latest release when collected) and python-dateutil 2.9.0.post0 (21; the 2.x line the questions are
about). It was collected AFTER nanodex's search and answer design decisions had been made, and no
nanodex search was run on it while collecting. Use it only to confirm results measured on the set
above, never for tuning: a change chosen by looking at its held-out numbers makes it one more
tuning set. `python -m scripts.real_questions --questions scripts/real_questions_heldout.jsonl
--check` re-verifies its spans.

The sdists are only downloaded (`pip download --no-deps --no-binary :all:`), unpacked and parsed
with `ast`: nanodex never imports, builds or runs them. (pip itself prepares an sdist's metadata
with the package's declared build backend in an isolated environment while downloading it.)
"""

from __future__ import annotations

import argparse
import ast
import json
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nanodex.errors import NanodexError, run_main

DEFAULT = Path(__file__).with_name("real_questions.jsonl")
HELDOUT = Path(__file__).with_name("real_questions_heldout.jsonl")  # confirm-only, never tune on it
KINDS = ("capability", "howto", "diag", "architecture")
_ROW_KEYS = {"id", "library", "version", "kind", "question", "source", "gold", "note"}
_GOLD_KEYS = {"qualname", "path", "start_line", "end_line"}


@dataclass(frozen=True)
class Gold:
    """One library symbol whose code answers a question: its span in the unpacked sdist."""

    qualname: str
    path: str  # relative to the sdist root, with /
    start_line: int  # the def/class line (1-based)
    end_line: int  # ast end_lineno (inclusive)


@dataclass(frozen=True)
class Question:
    id: str
    library: str  # PyPI name
    version: str  # pinned version
    kind: str  # one of KINDS
    question: str
    source: str  # URL of the issue / thread
    gold: tuple[Gold, ...]
    note: str = ""


def _bad(path: Path, lineno: int, msg: str) -> NanodexError:
    return NanodexError(f"{path}:{lineno}: {msg}", "fix that row of the question set")


def _parse_gold(g: object, path: Path, lineno: int) -> Gold:
    if not isinstance(g, dict):
        raise _bad(path, lineno, f"gold entry is not an object: {g!r}")
    missing = _GOLD_KEYS - g.keys()
    if missing:
        raise _bad(path, lineno, f"gold entry lacks {sorted(missing)}")
    extra = g.keys() - _GOLD_KEYS
    if extra:
        raise _bad(path, lineno, f"gold entry has unknown keys {sorted(extra)}")
    q, p, s, e = g["qualname"], g["path"], g["start_line"], g["end_line"]
    if not isinstance(q, str) or not q or not isinstance(p, str) or not p:
        raise _bad(path, lineno, "gold qualname and path must be non-empty strings")
    if p.startswith("/") or "\\" in p or ".." in p.split("/"):
        raise _bad(path, lineno, f"gold path must be relative with '/' and no '..': {p!r}")
    if not all(isinstance(x, int) and not isinstance(x, bool) for x in (s, e)) or not 1 <= s <= e:
        raise _bad(path, lineno, f"gold lines must be integers with 1 <= start_line <= end_line: {s!r}-{e!r}")
    return Gold(q, p, s, e)


def parse_row(row: object, path: Path = DEFAULT, lineno: int = 0) -> Question:
    """Validate one decoded JSONL row and turn it into a Question (NanodexError on a bad row)."""
    if not isinstance(row, dict):
        raise _bad(path, lineno, "row is not a JSON object")
    missing = (_ROW_KEYS - {"note"}) - row.keys()
    if missing:
        raise _bad(path, lineno, f"row lacks {sorted(missing)}")
    extra = row.keys() - _ROW_KEYS
    if extra:
        raise _bad(path, lineno, f"row has unknown keys {sorted(extra)}")
    for key in ("id", "library", "version", "kind", "question", "source"):
        if not isinstance(row[key], str) or not row[key].strip():
            raise _bad(path, lineno, f"{key!r} must be a non-empty string")
    if not isinstance(row.get("note", ""), str):
        raise _bad(path, lineno, "'note' must be a string")
    if row["kind"] not in KINDS:
        raise _bad(path, lineno, f"kind {row['kind']!r} is not one of {', '.join(KINDS)}")
    if not row["source"].startswith(("https://", "http://")):
        raise _bad(path, lineno, f"source is not a URL: {row['source']!r}")
    gold = row["gold"]
    if not isinstance(gold, list) or not 1 <= len(gold) <= 3:
        raise _bad(path, lineno, "gold must be a list of 1 to 3 symbols")
    return Question(
        id=row["id"],
        library=row["library"],
        version=row["version"],
        kind=row["kind"],
        question=row["question"],
        source=row["source"],
        gold=tuple(_parse_gold(g, path, lineno) for g in gold),
        note=row.get("note", ""),
    )


def load(path: str | Path = DEFAULT) -> list[Question]:
    """Read and validate the question set; NanodexError names the first bad row."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise NanodexError(f"cannot read the question set {path}: {err.strerror}") from err
    out: list[Question] = []
    seen: dict[str, int] = {}
    pins: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise _bad(path, lineno, f"not valid JSON ({err.msg})") from err
        q = parse_row(row, path, lineno)
        if q.id in seen:
            raise _bad(path, lineno, f"duplicate id {q.id!r} (first on line {seen[q.id]})")
        seen[q.id] = lineno
        if pins.setdefault(q.library, q.version) != q.version:
            raise _bad(path, lineno, f"{q.library} pinned at {pins[q.library]} elsewhere, {q.version} here")
        out.append(q)
    if not out:
        raise NanodexError(f"the question set {path} is empty")
    return out


# --- sources ---------------------------------------------------------------------------------


def default_cache_dir() -> Path:
    """$NANODEX_CACHE/bench-src, else ~/.cache/nanodex/bench-src (nanodex.paths.cache_dir)."""
    from nanodex.paths import cache_dir

    return cache_dir() / "bench-src"


def _safe_extract(archive: Path, dest: Path) -> None:
    """Unpack a .tar.gz / .zip sdist into dest, refusing any member that would land outside it."""
    dest = dest.resolve()
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                target = (dest / name).resolve()
                if not target.is_relative_to(dest):
                    raise NanodexError(f"{archive.name}: member {name!r} would unpack outside {dest}")
            zf.extractall(dest)
        return
    try:
        with tarfile.open(archive) as tf:
            if hasattr(tarfile, "data_filter"):
                tf.extractall(dest, filter="data")  # no absolute paths, '..', links out, devices
                return
            for m in tf.getmembers():  # Python < 3.11.4: the same checks by hand
                target = (dest / m.name).resolve()
                if not target.is_relative_to(dest) or not (m.isfile() or m.isdir()):
                    raise NanodexError(
                        f"{archive.name}: refusing member {m.name!r} (outside {dest} or not a file)"
                    )
            tf.extractall(dest)
    except tarfile.TarError as err:
        raise NanodexError(f"cannot unpack {archive}: {err}", f"delete {archive.parent} and retry") from err


def fetch_source(library: str, version: str, cache_dir: str | Path | None = None) -> Path:
    """Download `library==version`'s sdist (once) and return its unpacked root folder.

    Layout: <cache>/<library>-<version>/{sdist archive, src/<unpacked top folder>}. A finished
    unpack is marked by a `.done` file, so an interrupted one is redone.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    base = cache / f"{library}-{version}"
    unpacked = base / "src"
    done = base / ".done"
    if done.is_file():
        root = Path(done.read_text(encoding="utf-8").strip())
        if root.is_dir():
            return root
    base.mkdir(parents=True, exist_ok=True)
    archives = [p for p in base.iterdir() if p.is_file() and p.name.endswith((".tar.gz", ".zip"))]
    if not archives:
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--disable-pip-version-check",
            "-q",
            f"{library}=={version}",
            "-d",
            str(base),
        ]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise NanodexError(f"pip download {library}=={version} failed: {err}") from err
        # pip checks the sdist's metadata with its declared build backend (in pip's isolated build
        # environment); nanodex itself only unpacks the archive and parses it, never imports it.
        archives = [p for p in base.iterdir() if p.is_file() and p.name.endswith((".tar.gz", ".zip"))]
        if res.returncode != 0 or not archives:
            lines = [ln for ln in (res.stderr or res.stdout).splitlines() if ln.strip()]
            last = lines[-1].strip() if lines else f"exit status {res.returncode}"
            raise NanodexError(
                f"pip download {library}=={version} failed: {last}",
                "check the network / package index, or put the sdist in " + str(base),
            )
    if unpacked.exists():
        shutil.rmtree(unpacked)
    unpacked.mkdir()
    _safe_extract(archives[0], unpacked)
    tops = [p for p in unpacked.iterdir() if p.is_dir()]
    root = tops[0] if len(tops) == 1 else unpacked
    done.write_text(str(root.resolve()), encoding="utf-8")
    return root.resolve()


# --- gold verification -------------------------------------------------------------------------


def module_name(path: str) -> str:
    """Dotted module name of a sdist-relative path: 'src/pkg/a/__init__.py' -> 'pkg.a'."""
    parts = path.split("/")
    if parts[0] == "src":
        parts = parts[1:]
    parts[-1] = parts[-1].removesuffix(".py")
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def definitions(source: str, module: str) -> dict[str, list[tuple[int, int]]]:
    """qualname -> [(def line, end line)] for every function and class in a module's source."""
    out: dict[str, list[tuple[int, int]]] = defaultdict(list)

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                q = f"{prefix}.{child.name}"
                out[q].append((child.lineno, child.end_lineno or child.lineno))
                walk(child, q)
            elif not isinstance(child, ast.expr):
                walk(child, prefix)  # defs under if/try/with blocks

    walk(ast.parse(source), module)
    return out


def verify(questions: Sequence[Question], roots: dict[str, Path]) -> list[str]:
    """Check every gold span against the unpacked sources; return one message per mismatch."""
    problems: list[str] = []
    cache: dict[tuple[str, str], dict[str, list[tuple[int, int]]] | str] = {}
    for q in questions:
        root = roots[q.library]
        for g in q.gold:
            key = (q.library, g.path)
            if key not in cache:
                f = root / g.path
                if not f.resolve().is_relative_to(root.resolve()) or not f.is_file():
                    cache[key] = f"no file {g.path}"
                else:
                    try:
                        cache[key] = definitions(f.read_text(encoding="utf-8"), module_name(g.path))
                    except (SyntaxError, UnicodeDecodeError) as err:
                        cache[key] = f"cannot parse {g.path}: {err}"
            defs = cache[key]
            if isinstance(defs, str):
                problems.append(f"{q.id}: {defs}")
                continue
            spans = defs.get(g.qualname)
            if not spans:
                problems.append(f"{q.id}: no definition {g.qualname} in {g.path}")
            elif (g.start_line, g.end_line) not in spans:
                have = ", ".join(f"{s}-{e}" for s, e in spans)
                problems.append(f"{q.id}: {g.qualname} is at {have}, gold says {g.start_line}-{g.end_line}")
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m scripts.real_questions",
        description="The real-question set: load it, or (--check) fetch each pinned sdist and "
        "re-verify every gold span with ast.",
    )
    ap.add_argument("--questions", default=str(DEFAULT), help="the JSONL question set (default: %(default)s)")
    ap.add_argument(
        "--cache-dir",
        default=None,
        help="where sdists are kept (default: $NANODEX_CACHE/bench-src or ~/.cache/nanodex/bench-src)",
    )
    ap.add_argument("--check", action="store_true", help="download the sdists and verify every gold span")
    args = ap.parse_args(argv)

    questions = load(args.questions)
    by_lib: dict[tuple[str, str], list[Question]] = defaultdict(list)
    for q in questions:
        by_lib[(q.library, q.version)].append(q)
    roots: dict[str, Path] = {}
    if args.check:
        for lib, ver in by_lib:
            roots[lib] = fetch_source(lib, ver, args.cache_dir)
    problems = verify(questions, roots) if args.check else []
    bad = Counter(p.split(":", 1)[0] for p in problems)
    kinds = list(KINDS)
    print(
        f"{'library':<17}{'version':<13}{'questions':>10}"
        + "".join(f"{k:>14}" for k in kinds)
        + ("" if not args.check else f"{'gold ok':>9}{'mismatch':>10}")
    )
    for (lib, ver), qs in sorted(by_lib.items()):
        c = Counter(q.kind for q in qs)
        line = f"{lib:<17}{ver:<13}{len(qs):>10}" + "".join(f"{c[k]:>14}" for k in kinds)
        if args.check:
            n_bad = sum(bad[q.id] for q in qs)
            n_gold = sum(len(q.gold) for q in qs)
            line += f"{n_gold - n_bad:>9}{n_bad:>10}"
        print(line)
    c = Counter(q.kind for q in questions)
    print(f"{'total':<30}{len(questions):>10}" + "".join(f"{c[k]:>14}" for k in kinds))
    for p in problems:
        print(f"MISMATCH {p}", file=sys.stderr)
    if args.check:
        print("gold spans: " + ("all verified" if not problems else f"{len(problems)} mismatch(es)"))
    return 1 if problems else 0


if __name__ == "__main__":
    run_main(main)
