"""Find the files to index: language by extension, .gitignore and exclude globs, size cap.

Safety rules from DESIGN.md live here: symlinked folders are never followed (no loops),
symlinked files are indexed only when they point inside the repo, binary files and files over the
size cap are skipped and counted, never read whole.
"""

from __future__ import annotations

import os
import stat
import subprocess
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from extractor.languages import LanguageSpec
from nanodex.git import git, refused_as_dubious
from nanodex.log import get_logger

log = get_logger("extractor.walk")

_PRUNE = {".git", ".hg", ".svn", "__pycache__", "node_modules", ".tox", ".mypy_cache"}


@dataclass
class SourceFile:
    path: str  # repo-relative, '/'-separated
    lang: str
    size: int
    mtime_ns: int


@dataclass
class WalkResult:
    files: list[SourceFile] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # path -> reason


def _git_listed(root: Path) -> set[str] | None:
    """Files git would track (tracked + untracked, minus ignored); None if `root` is no git work tree.

    A folder that an enclosing repository ignores (a venv, a vendored tree) counts as no work tree.
    """
    try:
        ignored = git(root, "check-ignore", "-q", ".", timeout=30)
        if ignored.returncode == 0:
            return None
        listing = git(root, "ls-files", "-co", "--exclude-standard", "-z", timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    if listing.returncode != 0:
        if refused_as_dubious(listing):
            log.warning(
                "git refuses %s (owned by another user): .gitignore is read without git; "
                "mark it safe with `git config --global --add safe.directory %s` to use git's rules",
                root,
                root,
            )
        return None
    out = listing.stdout
    # With -C root, ls-files prints paths relative to `root`, also when root is a subfolder.
    return {p for p in out.decode("utf-8", "surrogateescape").split("\0") if p}


def _excluded(rel: str, globs: list[str]) -> bool:
    for g in globs:
        g = g.rstrip("/")
        if (
            fnmatchcase(rel, g)
            or fnmatchcase(rel, g + "/**")
            or ("/" not in g and fnmatchcase(rel.rsplit("/", 1)[-1], g))
        ):
            return True
        if g.startswith("**/") and (fnmatchcase(rel, g[3:]) or fnmatchcase(rel, g[3:] + "/**")):
            return True
    return False


def _root_gitignore(root: Path) -> list[str]:
    """Outside git, the root .gitignore's plain patterns as globs (negations are not supported)."""
    path = root / ".gitignore"
    if not path.is_file():
        return []
    globs = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")):
            globs.append(
                line.lstrip("/")
                if line.startswith("/")
                else f"**/{line}"
                if "/" not in line.rstrip("/")
                else line
            )
    return globs


def _is_binary(path: Path) -> bool:
    with path.open("rb") as fh:
        return b"\0" in fh.read(8192)


def walk(
    root: Path,
    by_ext: dict[str, LanguageSpec],
    exclude: list[str],
    max_bytes: int,
    respect_gitignore: bool = True,
    known: dict[str, tuple[int, int]] | None = None,
) -> WalkResult:
    """List the source files under `root` (sorted by path) and the ones skipped, with reasons.

    `known`: path -> (mtime_ns, size) of files the last run indexed; a file still showing the
    same mtime and size was text then and is not read again to check for binary content
    (the same mtime/size test the build uses to skip unchanged files), so a re-run of a big
    repository reads no file it does not have to.
    """
    result = WalkResult()
    root = root.resolve()
    listed = _git_listed(root) if respect_gitignore else None
    if respect_gitignore and listed is None:
        exclude = [*exclude, *_root_gitignore(root)]

    def unreadable_dir(err: OSError) -> None:
        # os.walk could not list a folder (permissions): skipped and counted, never dropped silently
        rel = os.path.relpath(err.filename or str(root), root).replace(os.sep, "/")
        result.skipped[rel] = f"unreadable folder ({err.__class__.__name__})"

    for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=unreadable_dir):
        rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        kept = []
        for d in dirnames:
            full = Path(dirpath, d)
            if d in _PRUNE or _excluded(rel_dir + d, exclude):
                continue
            try:
                is_venv = (full / "pyvenv.cfg").is_file()
            except OSError as err:  # a folder we may not look into (chmod 000)
                result.skipped[rel_dir + d] = f"unreadable folder ({err.__class__.__name__})"
                continue
            if is_venv:
                continue
            if full.is_symlink():
                result.skipped[rel_dir + d] = "symlinked folder (not followed)"
                continue
            kept.append(d)
        dirnames[:] = sorted(kept)
        for name in filenames:
            rel = rel_dir + name
            spec = by_ext.get(os.path.splitext(name)[1].lower())
            if spec is None or _excluded(rel, exclude):
                continue
            if listed is not None and rel not in listed:
                continue
            full = os.path.join(dirpath, name)
            try:
                st = os.lstat(full)
                if stat.S_ISLNK(st.st_mode):
                    target = Path(full).resolve(strict=True)
                    if not target.is_relative_to(root):
                        result.skipped[rel] = "symlink to outside the repository"
                        continue
                    if not target.is_file():
                        result.skipped[rel] = "symlink to a non-file"
                        continue
                    st = os.stat(full)
                if st.st_size > max_bytes:
                    result.skipped[rel] = f"larger than max_file_bytes ({st.st_size} > {max_bytes})"
                    continue
                same = known is not None and known.get(rel) == (st.st_mtime_ns, st.st_size)
                if not same and _is_binary(Path(full)):
                    result.skipped[rel] = "binary content"
                    continue
            except (OSError, RuntimeError) as err:  # broken link, loop, permission
                result.skipped[rel] = f"unreadable ({err.__class__.__name__})"
                continue
            result.files.append(SourceFile(rel, spec.name, st.st_size, st.st_mtime_ns))
    result.files.sort(key=lambda f: f.path)
    return result
