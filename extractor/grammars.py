"""`python -m extractor.grammars`: check that every configured language's grammar and query load."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from extractor import languages
from extractor.config import ExtractConfig
from nanodex.errors import NanodexError, run_main
from nanodex.flags import config_option, load_from_args


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m extractor.grammars", description=__doc__)
    config_option(ap, ExtractConfig, "extract")  # its `languages` are checked
    return ap


def main(argv: Sequence[str] | None = None) -> int:
    cfg = load_from_args(build_parser().parse_args(argv))
    failed = []
    for name in languages.expand(cfg.languages):
        spec = languages.LANGUAGES[name]
        try:
            languages.query(name)
        except NanodexError as err:
            failed.append(name)
            print(f"  MISSING {name:<11} {err}")
            continue
        print(
            f"  ok      {name:<11} {spec.grammar_module}  queries/{spec.query_path.name}  ({' '.join(spec.extensions)})"
        )
    if failed:
        raise NanodexError(
            f"{len(failed)} grammar(s) not usable: {', '.join(failed)}",
            "see the lines above; `make setup` installs them",
        )
    return 0


if __name__ == "__main__":
    run_main(main)
