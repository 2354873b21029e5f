"""PcaConfig: config/pca.yaml as typed dataclasses.

`build` holds what `python -m pca_otf.build` needs to turn a graph and a base model into the
cached artifacts (embedding, synthesized adapters, indexes); `run` holds what
`python -m pca_otf.run` needs to answer one question (selection, packing, mixing, citations).
Command-line flags of the same name override these values.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BuildConfig:
    """Keys of the `build:` section (owned by pca_otf.build and the modules it calls)."""

    graph: str = "brain/graph.sqlite"
    out_dir: str = "brain/pca"
    base: str = "embedded:smollm2-135m"


@dataclass
class RunConfig:
    """Keys of the `run:` section (owned by pca_otf.run and the modules it calls)."""

    artifacts: str = "brain/pca"


@dataclass
class PcaConfig:
    build: BuildConfig = field(default_factory=BuildConfig)
    run: RunConfig = field(default_factory=RunConfig)
