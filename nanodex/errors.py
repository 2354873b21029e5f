"""The one user-facing error type and the CLI wrapper that prints it as a single line.

Users see `nanodex: error: <cause> (fix: <fix>)` and a non-zero exit status, never a traceback,
for every failure we can name. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

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
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        sys.stderr.close()
        sys.exit(0)
    except KeyboardInterrupt:
        print("nanodex: interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(status or 0)
