"""Logging and progress bars shared by every stage.

Progress goes to stderr through tqdm and switches itself off when stderr is not a terminal
(CI logs stay readable) or when NANODEX_PROGRESS=0.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def setup_logging(verbose: bool = False) -> None:
    """Configure the root logger once per process: INFO by default, DEBUG with --verbose."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname).1s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def get_logger(name: str) -> logging.Logger:
    return logging.getLogger(name)


def progress(
    items: Iterable[T], *, total: int | None = None, desc: str = "", unit: str = "it"
) -> Iterator[T]:
    """Wrap `items` in a progress bar when a person is watching."""
    disabled = os.environ.get("NANODEX_PROGRESS") == "0" or not sys.stderr.isatty()
    yield from tqdm(items, total=total, desc=desc, unit=unit, disable=disabled, leave=False, file=sys.stderr)
