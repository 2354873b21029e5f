"""Produce SCIP indexes for a graph's files: install the pinned indexers, run them, cache.

`use_scip: true` (config/extract.yaml) runs Sourcegraph's indexers from the npm registry:
scip-python (pyright) for Python, scip-typescript (the TypeScript compiler) for TypeScript and
JavaScript. They are installed once, pinned, under the nanodex cache (`$NANODEX_CACHE/scip/`),
with `npm install --ignore-scripts` (no package's install script runs).

Each indexer runs on a scratch copy holding only the files the graph indexed for its languages,
never in the repository itself:
- nothing is written into the user's tree (scip-python and scip-typescript write their index,
  and scip-typescript an inferred tsconfig.json, into their working directory);
- excluded, ignored and oversized files are not analysed (the extract config decides, once);
- scip-python 0.6.6 crashes outside a git repository unless `--project-version` is given (it
  asks `git rev-parse HEAD` for one, and fails on the empty answer): the copy is no git
  repository and the version is always passed, so no git command runs at all, on the copy or on
  the indexed repository; `--environment` names an empty package list, so scip-python does not
  run `pip list`/`pip show` on every installed package (minutes on a large environment; the
  extractor only needs in-repo symbols, and external ones stay external without it).
The repository's code is read, never run: both indexers are static analysers.

Indexes are cached per repository root and indexer, keyed on the indexer's pin and the content
hashes (sha256) the graph keeps for the files indexed: a run whose files did not change reads
the cached index instead of running the indexer again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from nanodex.errors import NanodexError
from nanodex.log import get_logger
from nanodex.paths import atomic_path, cache_dir

log = get_logger("extractor")


@dataclass(frozen=True)
class Indexer:
    """One npm-published SCIP indexer and the graph languages it covers."""

    name: str  # the command (node_modules/.bin/<name>)
    package: str
    version: str
    languages: tuple[str, ...]
    script: str  # the package.json `bin` entry, run with `node` (so a missing node is caught first)

    @property
    def pin(self) -> str:
        return f"{self.package}@{self.version}"


INDEXERS: tuple[Indexer, ...] = (
    Indexer("scip-python", "@sourcegraph/scip-python", "0.6.6", ("python",), "index.js"),
    Indexer(
        "scip-typescript",
        "@sourcegraph/scip-typescript",
        "0.4.0",
        ("typescript", "tsx", "javascript"),
        "dist/src/main.js",
    ),
)
INSTALL_TIMEOUT_S = 900
INDEX_TIMEOUT_S = 3600  # scip-python takes ~10 s on a 20-file library, minutes on thousands of files
# The scratch copy's project: every copied file, JavaScript and JSX included (scip-typescript's own
# --infer-tsconfig allows JavaScript only when a project has no .ts file, and no JSX at all);
# the repository's own tsconfig is not used (its `extends`/`include` name files not copied).
_TSCONFIG = json.dumps(
    {
        "compilerOptions": {"allowJs": True, "checkJs": False, "jsx": "preserve", "noEmit": True,
                            "target": "es2022", "module": "esnext", "moduleResolution": "bundler",
                            "skipLibCheck": True},
        "include": ["**/*"],
    }
)  # fmt: skip
_NO_NODE_FIX = "install Node.js 18+ with npm (e.g. apt-get install nodejs npm), or set use_scip: false"


def pins() -> list[str]:
    """The pinned indexer packages (part of the graph's fingerprint when use_scip is on)."""
    return [i.pin for i in INDEXERS]


def _tools_dir() -> Path:
    digest = hashlib.sha256(" ".join(pins()).encode()).hexdigest()[:12]
    return cache_dir() / "scip" / f"npm-{digest}"


def _require(program: str) -> str:
    found = shutil.which(program)
    if found is None:
        raise NanodexError(
            f"use_scip: `{program}` not found on PATH (SCIP indexers run on Node.js)", _NO_NODE_FIX
        )
    return found


def preflight() -> None:
    """Fail before any parsing when the indexers cannot run: no node, or no npm to install them."""
    _require("node")
    if not _installed(_tools_dir()):
        _require("npm")


def _installed(target: Path) -> bool:
    return all((target / "node_modules" / i.package / i.script).is_file() for i in INDEXERS)


def ensure_installed() -> Path:
    """The folder holding the pinned indexers' node_modules, installing them on first use."""
    _require("node")
    target = _tools_dir()
    if _installed(target):
        return target
    npm = _require("npm")
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("installing %s into %s (first use of use_scip)", ", ".join(pins()), target)
    with atomic_path(target, is_dir=True) as tmp:
        try:
            done = subprocess.run(
                [npm, "install", "--prefix", str(tmp), "--no-audit", "--no-fund", "--ignore-scripts",
                 "--no-save", "--loglevel=error", *pins()],
                capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except subprocess.TimeoutExpired as err:
            raise NanodexError(
                f"use_scip: npm install of {', '.join(pins())} timed out after {INSTALL_TIMEOUT_S}s",
                "check access to the npm registry (npm config get registry), or set use_scip: false",
            ) from err
        if done.returncode != 0:
            raise NanodexError(
                f"use_scip: npm install of {', '.join(pins())} failed: {_last_line(done.stderr or done.stdout)}",
                "check access to the npm registry (npm config get registry), or set use_scip: false",
            )
    return target


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("at ")]
    return lines[-1][:300] if lines else "no output"


@dataclass
class IndexRun:
    """One indexer's index for this run: its bytes, and whether the indexer ran or the cache served it."""

    indexer: Indexer
    data: bytes
    cached: bool
    files: int
    seconds: float = 0.0


def cache_folder(root: Path) -> Path:
    """Where the indexes of the repository at `root` (resolved) are cached."""
    return cache_dir() / "scip" / "index" / hashlib.sha256(str(root).encode()).hexdigest()[:16]


def _cache_paths(root: Path, indexer: Indexer) -> tuple[Path, Path]:
    folder = cache_folder(root)
    return folder / f"{indexer.name}.scip", folder / f"{indexer.name}.key"


# Bumped when how an indexer is run changes (its flags, the scratch project), so that indexes
# made the old way are not reused.
_RECIPE = "2"


def _key(indexer: Indexer, files: list[tuple[str, str]]) -> str:
    h = hashlib.sha256(f"{indexer.pin}\0{_RECIPE}\0{_TSCONFIG}".encode())
    for path, sha in files:
        h.update(f"\0{path}\0{sha}".encode())
    return h.hexdigest()


def indexes(root: Path, files: list[tuple[str, str, str]]) -> list[IndexRun]:
    """The SCIP index of each indexer that covers some of `files` ((path, lang, sha256) rows of
    the graph's files table), from the cache when none of its files changed."""
    runs: list[IndexRun] = []
    for indexer in INDEXERS:
        mine = sorted((p, sha) for p, lang, sha in files if lang in indexer.languages)
        if not mine:
            continue
        key = _key(indexer, mine)
        index_path, key_path = _cache_paths(root, indexer)
        if index_path.is_file() and key_path.is_file() and key_path.read_text(encoding="utf-8") == key:
            runs.append(IndexRun(indexer, index_path.read_bytes(), True, len(mine)))
            continue
        run = _run(indexer, root, [p for p, _ in mine])
        index_path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(index_path) as tmp:
            tmp.write_bytes(run.data)
        with atomic_path(key_path) as tmp:
            tmp.write_text(key, encoding="utf-8")
        runs.append(run)
    return runs


def _run(indexer: Indexer, root: Path, paths: list[str]) -> IndexRun:
    """Run `indexer` on a scratch copy of `paths` (repo-relative) and return its index."""
    tools = ensure_installed()
    node = _require("node")
    scratch_parent = cache_dir() / "scip" / "work"
    scratch_parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f"{indexer.name}-", dir=scratch_parent) as tmp:
        work = Path(tmp) / "repo"
        for rel in paths:
            dst = work / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                dst.write_bytes((root / rel).read_bytes())  # contents only: no links, no modes
            except OSError as err:
                log.warning("use_scip: %s not copied for %s (%s)", rel, indexer.name, err.__class__.__name__)
        out = Path(tmp) / "index.scip"
        argv = [node, str(tools / "node_modules" / indexer.package / indexer.script), "index"]
        if indexer.name == "scip-python":
            env_json = Path(tmp) / "environment.json"
            env_json.write_text("[]", encoding="utf-8")
            argv += ["--project-name", "repo", "--project-version", "0", "--environment", str(env_json),
                     "--quiet", "--cwd", str(work), "--output", str(out)]  # fmt: skip
        else:
            (work / "tsconfig.json").write_text(_TSCONFIG, encoding="utf-8")
            argv += ["--no-progress-bar", "--cwd", str(work), "--output", str(out)]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "NODE_OPTIONS"))}
        t0 = time.perf_counter()
        log.info("use_scip: %s indexing %d files", indexer.name, len(paths))
        try:
            done = subprocess.run(
                argv, cwd=work, capture_output=True, text=True, timeout=INDEX_TIMEOUT_S,
                stdin=subprocess.DEVNULL, env=env,
            )  # fmt: skip
        except subprocess.TimeoutExpired as err:
            raise NanodexError(
                f"use_scip: {indexer.name} did not finish within {INDEX_TIMEOUT_S}s on {len(paths)} files",
                "exclude generated or vendored folders in the extract config, or set use_scip: false",
            ) from err
        if done.returncode != 0 or not out.is_file():
            raise NanodexError(
                f"use_scip: {indexer.name} {indexer.version} failed (exit {done.returncode}): "
                f"{_last_line(done.stderr or done.stdout)}",
                "run again with --verbose for the indexer's output, or set use_scip: false",
            )
        log.debug("%s output:\n%s%s", indexer.name, done.stdout, done.stderr)
        return IndexRun(indexer, out.read_bytes(), False, len(paths), time.perf_counter() - t0)


def fingerprint() -> dict[str, object]:
    """What use_scip adds to the graph's fingerprint: the indexers' pins."""
    return {"scip": pins()}


def describe(runs: list[IndexRun]) -> dict[str, str]:
    """indexer -> "cached" or what it indexed, for the build report."""
    return {
        r.indexer.name: ("cached" if r.cached else f"indexed {r.files} files in {r.seconds:.1f}s")
        for r in runs
    }
