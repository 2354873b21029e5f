"""PcaConfig: config/pca.yaml as typed dataclasses.

`build` holds what `python -m pca_otf.build` needs to turn a graph and a base model into the
cached artifacts (embedding, synthesized adapters, indexes); `run` holds what
`python -m pca_otf.run` needs to answer one question (selection, packing, mixing, citations).
Command-line flags of the same name override these values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nanodex.paths import DEFAULT_GRAPH
from pca_otf.embedding import EmbedConfig
from pca_otf.synth import SynthConfig


@dataclass
class BuildConfig:
    """Keys of the `build:` section (owned by pca_otf.build and the modules it calls)."""

    graph: str = str(DEFAULT_GRAPH)
    out_dir: str = "work/pca"
    base: str = "embedded:smollm2-135m"  # only its config.json is read (dims, layers, heads)
    pg_backend: str | None = None  # "module:Factory" ProgramGraph backend (default: SQLite)
    window_lines: int = 60  # longest symbol window in windows_index.jsonl
    head_lines: int = 40  # lines of a file head window
    self_queries: int = 200  # most self-queries written (chosen by stable hash)
    rerank_dim: int = 64  # size of the per-entity sketch vectors in rerank_features.npz
    export_peft: bool = False  # also write the whole-program adapter as a PEFT folder (peft/)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    synth: SynthConfig = field(default_factory=SynthConfig)


@dataclass
class RunConfig:
    """Keys of the `run:` section (owned by pca_otf.run and the modules it calls)."""

    artifacts: str = "work/pca"  # folder written by `python -m pca_otf.build`
    graph: str = str(DEFAULT_GRAPH)  # code graph (its brain search index lies beside it)
    base: str = "embedded:smollm2-135m"  # must be the model the artifacts were built for
    pg_backend: str | None = None  # "module:Factory" ProgramGraph backend (default: SQLite)
    # torch CPU threads (0 = torch's default); 1 by default: on a shared 2-core machine two
    # threads decoded 3x slower than one (OpenMP barriers wait on descheduled threads; measured)
    threads: int = 1
    # -- selection
    of_sources: str = "question"  # question (brain search + graph distance) | zoom (a named symbol)
    zoom_symbol: str | None = None
    zoom_radius: int = 1
    retrieval_policy: str = "sim:0.6,struct:0.4"  # blend of search similarity and graph closeness
    retrieval_temp: float = 0.5  # softmax temperature turning scores into weights
    retrieval_k: int = 12  # search hits taken
    retrieval_seeds: int = 4  # strongest hits whose neighbourhood counts as structure
    retrieval_radius: int = 1  # hops around the seeds
    search_mode: str = "hybrid"  # brain search rankers: hybrid (dense when embeddings exist) | lexical
    max_nodes: int = 24  # region size cap
    # -- packing
    pack_context: bool = False  # show the selected code to the model
    pack_mode: str = "windows"  # windows (symbol-local) | heads (file heads)
    context_tokens: int = 768  # budget, in the base model's tokens
    window_lines: int = 60  # longest symbol window
    head_lines: int = 40  # lines of a file head (and of a module's window)
    pack_relevance: bool = False  # model-scored window relevance when the budget is tight
    relevance_candidates: int = 6
    # -- adapters and mixing
    adapter: bool = True  # apply the synthesized subgraph adapter
    gsub: float = 0.5  # blend: 0 = the whole-program adapter, 1 = the subgraph's own
    alpha_scale: float = 1.0
    delta_cap: float | None = None  # global delta-norm cap (also NANODEX_DELTA_CAP)
    adapters_bank: str | None = None  # folder of PEFT adapters to mix from
    mixture_m: int = 0  # top-M bank adapters mixed in (0 = none)
    function_first: bool = False  # small local adapters for the top function windows
    function_windows: int = 3
    cone_rank: int = 2  # rank of each local adapter
    cone_weight: float = 0.25  # its weight in the mix
    q_aware_weights: bool = False  # weight target groups by the question's intent
    alpha_warmup: int = 0  # new tokens over which the adapter's alpha ramps from 0 to full (0 = off)
    adapter_aware_decoding: bool = False  # contrast adapted and base logits
    contrast_beta: float = 0.5  # logits = adapted + beta * (adapted - base)
    # -- answer and citations
    max_new_tokens: int = 96  # CPU: ~8-10 new tokens/s for SmolLM2-135M on one free core
    no_repeat_ngram: int = 6  # the answer never repeats a 6-token sequence of itself (0 = off)
    require_citations: bool = True  # citations can only name a packed block (or a sub-range) while decoding
    open_with_citation: bool = (
        False  # ... and the first line must cite one within 300 characters (serve.yaml's rule)
    )
    citations_enforce: bool = False  # mark claim paragraphs left without a valid citation [unverified]
    telemetry: str | None = None  # JSONL file: one record per answer
    system_prompt: str | None = None  # None: the chat template's default, as training and `make query`


@dataclass
class PcaConfig:
    build: BuildConfig = field(default_factory=BuildConfig)
    run: RunConfig = field(default_factory=RunConfig)
