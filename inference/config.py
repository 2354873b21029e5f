"""ServerConfig and QueryConfig: the two sections of config/serve.yaml, typed.

One file for both sides because they must agree on the address (`server.port` and
`query.endpoint`) and on the API key variable. Command-line flags override every key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from nanodex.config import at_least
from nanodex.models import DEFAULT_BASE

DEFAULT_ENDPOINT = "http://127.0.0.1:8000/v1"
DEFAULT_LOG_DIR = Path(".nanodex/logs")


@dataclass
class ServerConfig:
    """How `python -m inference.serve` (and `VllmServer`) starts vLLM."""

    base: str = DEFAULT_BASE
    served_model_name: str | None = None  # None: derived from base (embedded:smollm2-135m -> smollm2-135m)
    adapters: list[str] = field(default_factory=list)  # "name=DIR" or "DIR" (name = folder name)
    host: str = "127.0.0.1"  # 0.0.0.0 exposes the server to the network: set api_key_env then
    port: int = 8000
    api_key_env: str | None = None  # environment variable holding the key clients must send; None = no key
    max_lora_rank: int = 0  # 0 = the smallest value vLLM accepts that fits every adapter
    max_loras: int = 0  # adapters in one batch; 0 = as many as are served (at least 1)
    allow_runtime_lora: bool = False  # enables POST /v1/load_lora_adapter and /v1/unload_lora_adapter
    max_model_len: int = 2048  # prompt + answer tokens; bounds the KV cache per request
    dtype: str = "auto"  # auto = float32 on CPU (vLLM's CPU path), vLLM's own choice on GPU
    cpu_kvcache_gb: int = 1  # CPU only: VLLM_CPU_KVCACHE_SPACE, the KV cache in GiB
    cpu_compile: bool = False  # CPU only: let vLLM compile the model with inductor (minutes at start-up)
    gpu_memory_utilization: float = 0.0  # GPU only; 0 = vLLM's default (0.9)
    startup_timeout_s: float = 600.0  # from process start to a healthy /health
    stop_grace_s: float = 20.0  # after SIGINT, before the process group is killed
    log_file: str | None = None  # None: .nanodex/logs/vllm-<port>.log
    extra_args: list[str] = field(default_factory=list)  # passed to vLLM unchanged (e.g. --enforce-eager)


@dataclass
class QueryConfig:
    """How `inference/query.py` (and `ask`) talks to the server and builds the prompt."""

    endpoint: str = DEFAULT_ENDPOINT
    model: str | None = None  # None: the first adapter the server lists, else its base model
    api_key_env: str = "NANODEX_API_KEY"  # sent as a Bearer token when this variable is set
    timeout_s: float = 120.0  # per HTTP read; a generation slower than this is an error
    max_tokens: int = at_least(1, 256)
    temperature: float = 0.0  # 0 = greedy: the same question gets the same answer
    frequency_penalty: float = 0.0  # > 0 lowers tokens the answer already used: breaks small models' loops
    graph: str | None = None  # code graph for retrieval and citation checks; None = neither
    brain_config: str | None = None  # search settings; None: config/brain.yaml when it exists, else defaults
    search_mode: str = "hybrid"  # hybrid | lexical | dense (brain.search)
    k: int = at_least(0, 8)  # search hits considered for the context (each packed as a symbol window)
    context_tokens: int = at_least(0, 1024)  # budget for the packed code blocks (tokens)
    tokenizer: str | None = (
        None  # the served base, for exact token counts (None: the embedded default when cached)
    )
    window_lines: int = at_least(
        1, 14
    )  # a longer hit is shown as a window of about this many lines for the question
    system_prompt: str | None = None  # None: the chat template's default, as in training
    enforce_citations: bool = True  # a claim paragraph left without a valid citation is marked [unverified]
    constrain_citations: bool = True  # vLLM structured outputs: a citation can only name a shown block
    open_with_citation: bool = False  # ... and a label within the first 300 characters (measured: see README)


@dataclass
class ServeFile:
    """config/serve.yaml: `server:` and `query:` sections."""

    server: ServerConfig = field(default_factory=ServerConfig)
    query: QueryConfig = field(default_factory=QueryConfig)
