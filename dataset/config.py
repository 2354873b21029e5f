"""The dataset stage's settings (config/dataset.yaml), read into typed dataclasses.

Key names follow DESIGN.md (graph, nodes_dir, counts, negatives_per_example, out_jsonl); the
rest are the knobs the issue asks for (seed, eval split, paraphrases, answer and snippet
budgets, optional LLM paraphrasing). Defaults are CPU-sized: the README's 2000 rows per kind
are for a GPU run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from nanodex.config import at_least
from nanodex.paths import DEFAULT_EVAL_JSONL, DEFAULT_GRAPH, DEFAULT_NODES_DIR, DEFAULT_TRAIN_JSONL

KINDS = ("discovery", "explain", "howto", "diag", "architecture")


@dataclass
class Counts:
    """Positive rows per question kind (train + eval together); negatives come on top."""

    discovery: int = at_least(0, 300)
    explain: int = at_least(0, 600)
    howto: int = at_least(0, 200)
    diag: int = at_least(0, 150)
    architecture: int = at_least(0, 250)

    def get(self, kind: str) -> int:
        return int(getattr(self, kind))


@dataclass
class LLMParaphraseConfig:
    """Optional rewording of template prompts by an OpenAI-compatible chat endpoint (off: endpoint null)."""

    endpoint: str | None = None  # base URL such as http://127.0.0.1:8000/v1 (`make serve`)
    model: str | None = None  # default: the first model the endpoint lists
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = 60.0
    share: float = 0.3  # share of positive rows whose prompt is reworded (chosen by seed)


@dataclass
class ContextConfig:
    """Code in the rows' prompts, as `make query` sends it (RAFT-style, see dataset/context.py).

    On by default: an adapter trained on bare questions learned to ignore the code it is served
    with. The code budget is what sizes training memory and time on a CPU (see
    config/dataset.yaml for the measured numbers)."""

    share: float = 1.0  # share of train and eval rows (seeded) that show code; 0 = bare questions
    absent_share: float = 0.2  # positive training rows whose answering code is left out ("not shown")
    tokens: int = at_least(1, 240)  # budget of the code shown (estimated at 3 bytes per token)
    window_lines: int = at_least(
        1, 14
    )  # a longer span is shown as a window for the question, as `make query` shows it
    cited_blocks: int = 1  # other spans the answer cites, shown beside the subject's code
    distractors: int = 2  # blocks search finds for the question, shown beside the cited code
    related_blocks: int = 0  # other blocks shown that the graph ties to the subject, named in the answer
    walk_blocks: int = 0  # other blocks shown, each named with its label and what it does, after the answer
    # a training row's blocks: "shuffled" (the cited code among distractors) or "search" (what search
    # retrieves for its question, in search order, as served; shuffled when search misses the code)
    order: Literal["shuffled", "search"] = "shuffled"
    search_k: int = at_least(1, 8)  # search hits considered (held-out rows show these, as `make query` does)
    search_mode: str = "hybrid"  # as `make query`; without `make brain-embed` it runs lexical + graph


@dataclass
class DatasetConfig:
    """Keys of config/dataset.yaml; command-line flags override them."""

    graph: str = str(DEFAULT_GRAPH)
    nodes_dir: str = str(DEFAULT_NODES_DIR)
    search_index: str | None = None  # default: beside the graph (as `make brain` writes it)
    counts: Counts = field(default_factory=Counts)
    negatives_per_example: float = 0.25  # negative rows per positive row of the same kind
    non_library_share: float = 1.0  # cap on a kind's rows about tests, examples, docs, `.pyi` stubs
    goal_questions: bool = False  # discovery rows asking for what a docstring says, without the name
    paraphrases: int = 3  # prompt phrasings per fact and aspect
    seed: int = 13
    eval_fraction: float = 0.1  # share of facts (not rows) held out for eval
    max_answer_tokens: int = 160  # answers are cut at a sentence boundary within this budget
    snippet_max_lines: int = 4  # code lines quoted in a how-to answer
    snippet_max_chars: int = 110  # a longer code line is never quoted
    out_jsonl: str = str(DEFAULT_TRAIN_JSONL)
    eval_jsonl: str = str(DEFAULT_EVAL_JSONL)
    stats_json: str = "work/dataset/stats.json"
    llm: LLMParaphraseConfig = field(default_factory=LLMParaphraseConfig)
    context: ContextConfig = field(default_factory=ContextConfig)
