"""SelftuneConfig: config/selftune.yaml as typed dataclasses (flags of the same name override)."""

from __future__ import annotations

from dataclasses import dataclass, field

from nanodex.paths import DEFAULT_GRAPH


@dataclass
class ProposeConfig:
    top_functions: int = 3  # functions per module asked about (tests, callers and size rank them)
    cross_module: bool = True  # add "how does f use g" prompts across module boundaries
    max_prompts: int = 8
    max_tests: int = 4  # tests named per "which tests cover f" question (they become its subjects)  # per module, held-out ones included
    heldout_every: int = (
        4  # one in N proposals (by stable hash, at least one) is held out for eval, never trained
    )


@dataclass
class AnswerConfig:
    answerer: str = "direct"  # direct: base + adapter with packed symbol windows | runner: pca_otf.run.Runner
    max_new_tokens: int = 96
    context_lines: int = 60  # window lines shown per subject symbol for the question (direct answerer)
    context_tokens: int = 600  # all subjects together, estimated tokens (later ones are left out beyond it)
    cite_prefix: bool = True  # direct: start the answer with the first subject's `name` [label] (recorded)
    no_repeat_ngram: int = 6  # direct: the answer never repeats a 6-token sequence of itself (0 = off)
    pca_config: str = "config/pca.yaml"  # runner answerer: its RunConfig comes from this file
    artifacts: str | None = None  # runner answerer: pca_otf.build output (default from pca_config)


@dataclass
class VerifyConfig:
    min_citations: int = 1  # an answer with fewer valid citations is rejected
    min_words: int = 8  # ... and one with fewer words besides its citations (an empty or echo answer)
    run_tests: bool = True  # false: test verification is skipped and recorded as "disabled"
    exclude_tests: list[str] = field(default_factory=list)  # pytest-id globs never run (need absent data)
    count_forced_prefix: bool = True  # false: the cite_prefix citation does not count to min_citations
    check_content: bool = True  # reject echoes of the question and backticked names that do not exist


@dataclass
class SandboxConfig:
    isolation: str = "auto"  # auto: namespaces when the probe succeeds, else an error | namespaces | none
    allow_unisolated: bool = False  # true lets `auto` fall back to rlimits-only (recorded in the report)
    time_limit_s: int = 120  # wall clock per pytest run (the process group is killed after it)
    memory_mb: int = 4096  # RLIMIT_AS of the test process
    python: str | None = None  # interpreter that runs pytest (default: this one)
    ignore: list[str] = field(
        default_factory=lambda: [
            ".git",
            ".venv",
            "venv",
            "node_modules",
            "__pycache__",
            ".pytest_cache",
            "work",
            "models",
        ]
    )


@dataclass
class LoraRunConfig:
    rank: int = 8
    alpha: int = 16
    max_steps: int = 12
    learning_rate: float = 0.0003
    batch_size: int = 4
    max_seq_len: int = 1024  # rows carry the code they were asked with
    min_rows: int = 1  # fewer kept rows than this: no adapter, recorded as skipped


@dataclass
class RefreshConfig:
    enabled: bool = True
    max_steps: int = 12
    learning_rate: float = 0.0001
    batch_size: int = 4
    max_seq_len: int = 1024  # rows carry the code they were asked with
    replay_from: str = "work/dataset/train.jsonl"  # earlier rows replayed beside the new ones (missing: none)
    replay_rows: int = 32
    out: str | None = None  # default: the main adapter itself, replaced atomically


@dataclass
class SelftuneConfig:
    repo: str = "."
    graph: str = str(DEFAULT_GRAPH)
    base: str = "embedded:smollm2-135m"
    adapter: str | None = "models/nanodex-lora"  # the main adapter (answers use it; refreshed at the end)
    extract_config: str = "config/extract.yaml"
    train_config: str = "config/train_lora.yaml"  # trainer settings under the per-run overrides below
    brain_config: str | None = "config/brain.yaml"  # null: skip the brain refresh
    work_dir: str = "work/selftune"  # distill.jsonl, state.json, reports, held-out questions
    bank_dir: str | None = None  # default <work_dir>/bank
    dataset_out: str = "work/dataset/selftune.jsonl"
    eval_dataset: str = "work/dataset/eval.jsonl"  # kept rows never overlap its facts (missing: none)
    eval_heldout: bool = (
        True  # trainer.eval on the changed modules' held-out questions, before and after the refresh
    )
    eval_max_new_tokens: int = 64
    eval_max_rows: int = 24  # cap on the eval dataset's rows about the changed modules (0 = all)
    all: bool = False  # every module, not only the changed ones
    include_deps: bool = False  # per-module adapters also see their import dependencies' rows
    max_deps: int = 2
    max_modules: int = 0  # 0 = no cap
    distill_max_rows: int = 5000  # rolling buffer size
    propose: ProposeConfig = field(default_factory=ProposeConfig)
    answer: AnswerConfig = field(default_factory=AnswerConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    module_lora: LoraRunConfig = field(default_factory=LoraRunConfig)
    refresh: RefreshConfig = field(default_factory=RefreshConfig)

    @property
    def bank(self) -> str:
        return self.bank_dir or f"{self.work_dir.rstrip('/')}/bank"
