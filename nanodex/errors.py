"""The one user-facing error type and the CLI wrapper that prints it as a single line.

Users see `nanodex: error: <cause> (fix: <fix>)` and a non-zero exit status, never a traceback,
for every failure we can name. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Callable, Sequence

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


class NanodexError(Exception):
    """A failure the user can fix: `cause` says what is wrong, `fix` what to do about it."""

    def __init__(self, cause: str, fix: str | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.fix = fix

    def __str__(self) -> str:
        return f"{self.cause} (fix: {self.fix})" if self.fix else self.cause


def run_main(main: Callable[[Sequence[str] | None], int | None], argv: Sequence[str] | None = None) -> None:
    """Run a stage's `main(argv)` and exit with its status, turning NanodexError into one line."""
    try:
        status = main(argv)
    except NanodexError as err:
        print(f"nanodex: error: {err}", file=sys.stderr)
        sys.exit(EXIT_USER_ERROR)
    except sqlite3.DatabaseError as err:
        if not damaged_database(err):
            raise
        print(
            f"nanodex: error: a SQLite artifact is damaged or from another version ({_first_line(err)}) "
            "(fix: rebuild it: the code graph with `make extract ... --full`, the search index with `make brain`)",
            file=sys.stderr,
        )
        sys.exit(EXIT_USER_ERROR)
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        sys.stderr.close()
        sys.exit(0)
    except KeyboardInterrupt:
        print("nanodex: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(status or 0)


# sqlite3 messages that mean the file's content is damaged (not a bug in nanodex's SQL)
_DAMAGE_MARKS = (
    "malformed",
    "not a database",
    "could not decode to utf-8",
    "no such table",
    "no such column",
    "disk i/o error",
    "file is encrypted",
)


def damaged_database(err: BaseException) -> bool:
    """Whether an exception from reading a SQLite artifact says the file is damaged: a corrupt
    page, a dropped table, or text that is not UTF-8 (flipped bytes)."""
    return any(mark in str(err).lower() for mark in _DAMAGE_MARKS)


def _first_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else err.__class__.__name__
