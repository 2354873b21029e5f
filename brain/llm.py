"""The optional LLM summarizer: a served OpenAI-compatible endpoint or a local transformers model.

`summary.style: llm` picks it, `summary.backend` picks where the model runs:

- `endpoint`: any OpenAI-compatible chat endpoint (such as `make serve`), through the one client
  nanodex.chat_client, with `summary.workers` requests in flight;
- `local`: a transformers model in this process (default the embedded `embedded:smollm2-135m`,
  resolved by nanodex.models), greedy, fp32 on CPU, batched (brain.llm_local).

Both see the node's extractive facts (with their citations) and a short code excerpt and may
only rephrase them. Their answers are checked by brain.grounding before they replace the
extractive summary; a node whose answer fails the check keeps its extractive summary with the
reason recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from brain.config import SummaryConfig
from brain.ontology import BrainNode
from nanodex.chat_client import ChatClient
from nanodex.errors import NanodexError

PROMPT_VERSION = "llm-2"
BACKENDS = ("endpoint", "local")
SYSTEM = (
    "You summarize code for an index. Write one or two short factual sentences using only the facts given. "
    "Keep citations exactly in the form [path:start-end] as given; never invent paths or lines. "
    "No preamble, no markdown, no speculation."
)


class Summarizer(Protocol):
    """What brain.build needs from an LLM backend."""

    fingerprint: str  # names model and settings: a node made by another fingerprint is redone
    batch_size: int  # prompts handed to `complete_many` at once

    def complete_many(self, prompts: Sequence[str]) -> list[str | Exception]:
        """One answer per prompt; a failed prompt yields its exception (retried next run)."""
        ...


def build_prompt(node: BrainNode, facts_text: str, code: str, max_tokens: int) -> str:
    """The user message for one node: its facts (the extractive summary) and the code it covers."""
    code_part = f"\n\nCode [{node.path}:{node.start_line}-{node.end_line}]:\n{code}" if code.strip() else ""
    return (
        f"Node: {node.type} {node.name}\nFacts (with citations):\n{facts_text}{code_part}\n\n"
        f"Write the summary of {node.name} in at most {max_tokens * 3 // 4} words."
    )


def planned_fingerprint(cfg: SummaryConfig) -> str | None:
    """The fingerprint `make_summarizer(cfg)` will have, when the config alone tells (no model loaded,
    no endpoint asked); None when an endpoint must first say which model it serves."""
    if cfg.backend == "local":
        from nanodex.models import DEFAULT_BASE

        return local_fingerprint(cfg.model or DEFAULT_BASE, cfg.max_new_tokens)
    return f"{PROMPT_VERSION}:{cfg.model}" if cfg.model else None


def local_fingerprint(model: str, max_new_tokens: int) -> str:
    return f"{PROMPT_VERSION}:local:{model}:{max_new_tokens}"


def make_summarizer(cfg: SummaryConfig) -> Summarizer:
    """The backend `summary.backend` names (errors are one line: cause and fix)."""
    if cfg.backend == "endpoint":
        return EndpointSummarizer(cfg)
    if cfg.backend == "local":
        from brain.llm_local import LocalSummarizer  # torch/transformers only when asked for

        return LocalSummarizer(cfg)
    raise NanodexError(f"unknown summary.backend '{cfg.backend}'", f"use one of: {', '.join(BACKENDS)}")


class EndpointSummarizer:
    """Summaries from an OpenAI-compatible chat endpoint (temperature 0), through nanodex.chat_client."""

    def __init__(self, cfg: SummaryConfig) -> None:
        if not cfg.endpoint:
            raise NanodexError(
                "summary.backend is endpoint but no summary.endpoint is set",
                "set summary.endpoint (e.g. http://127.0.0.1:8000/v1 from `make serve`), "
                "use summary.backend: local, or summary.style: extractive",
            )
        self.cfg = cfg
        try:
            self.client = ChatClient.from_env(cfg.endpoint, cfg.api_key_env, timeout_s=cfg.timeout_s)
        except NanodexError as err:  # a malformed URL: say which setting holds it
            raise NanodexError(f"summary.endpoint: {err.cause}", err.fix) from err
        self.model = cfg.model or self._first_model()
        self.fingerprint = f"{PROMPT_VERSION}:{self.model}"
        self.batch_size = max(1, cfg.workers) * 4

    def _first_model(self) -> str:
        """The first model the server lists (vLLM: the base), not the code expert it may also serve."""
        try:
            return self.client.default_model(prefer_adapter=False)
        except NanodexError as err:
            raise NanodexError(
                f"LLM endpoint {self.cfg.endpoint} did not answer /models ({err.cause})",
                "start it (`make serve`), set summary.model, or use summary.style: extractive",
            ) from err

    def complete(self, prompt: str) -> str:
        """One chat completion; raises NanodexError (one line) on transport, server or format errors."""
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
        done = self.client.chat(messages, model=self.model, max_tokens=max(32, self.cfg.max_tokens * 2))
        return done.text

    def _one(self, prompt: str) -> str | Exception:
        try:
            return self.complete(prompt)
        except NanodexError as err:  # recorded on the node as the reason, and retried next run
            return err

    def complete_many(self, prompts: Sequence[str]) -> list[str | Exception]:
        workers = max(1, self.cfg.workers)
        if workers == 1:
            return [self._one(p) for p in prompts]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(self._one, prompts))


LLMSummarizer = EndpointSummarizer  # the name this class had before the local backend existed
