"""The extract stage's settings (config/extract.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field

from nanodex.paths import DEFAULT_GRAPH


@dataclass
class ExtractConfig:
    """Keys of config/extract.yaml; `--repo`/`--out` and friends override them."""

    repo: str = "."
    languages: list[str] = field(
        default_factory=lambda: ["python", "javascript", "typescript", "java", "go", "rust", "c", "cpp"]
    )
    use_scip: bool = False  # run the SCIP indexers (npm) and let their index confirm or replace calls edges
    exclude: list[str] = field(default_factory=list)  # gitignore-style globs, on top of .gitignore
    out_graph: str = str(DEFAULT_GRAPH)
    max_file_bytes: int = 1_000_000  # larger files are skipped and counted
    workers: int = 0  # parse processes; 0 = one per core
    respect_gitignore: bool = True
    coverage_json: str | None = None  # optional coverage.py JSON report to mark covered functions
