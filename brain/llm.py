"""The optional LLM summarizer: a served OpenAI-compatible endpoint or a local transformers model.

`summary.style: llm` picks it, `summary.backend` picks where the model runs:

- `endpoint`: any OpenAI-compatible chat endpoint (such as `make serve`), over urllib, with
  `summary.workers` requests in flight;
- `local`: a transformers model in this process (default the embedded `embedded:smollm2-135m`,
  resolved by nanodex.models), greedy, fp32 on CPU, batched (brain.llm_local).

Both see the node's extractive facts (with their citations) and a short code excerpt and may
only rephrase them. Their answers are checked by brain.grounding before they replace the
extractive summary; a node whose answer fails the check keeps its extractive summary with the
reason recorded.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from brain.config import SummaryConfig
from brain.ontology import BrainNode
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


def _chat_url(endpoint: str) -> str:
    base = endpoint.rstrip("/")
    if base.endswith("/chat/completions"):
        return base
    if not base.endswith("/v1"):
        base += "/v1"
    return base + "/chat/completions"


class EndpointSummarizer:
    """Summaries from an OpenAI-compatible chat endpoint (temperature 0)."""

    def __init__(self, cfg: SummaryConfig) -> None:
        if not cfg.endpoint:
            raise NanodexError(
                "summary.backend is endpoint but no summary.endpoint is set",
                "set summary.endpoint (e.g. http://127.0.0.1:8000/v1 from `make serve`), "
                "use summary.backend: local, or summary.style: extractive",
            )
        self.cfg = cfg
        self.url = _chat_url(cfg.endpoint)
        self.model = cfg.model or self._first_model()
        self.fingerprint = f"{PROMPT_VERSION}:{self.model}"
        self.batch_size = max(1, cfg.workers) * 4

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.cfg.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _first_model(self) -> str:
        url = self.url.rsplit("/chat/completions", 1)[0] + "/models"
        try:
            req = urllib.request.Request(url, headers=self._headers())
            with urllib.request.urlopen(req, timeout=self.cfg.timeout_s) as resp:
                data = json.loads(resp.read().decode("utf-8"))
            return str(data["data"][0]["id"])
        except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError) as err:
            raise NanodexError(
                f"LLM endpoint {self.cfg.endpoint} did not answer /models ({err.__class__.__name__}: {err})",
                "start it (`make serve`), set summary.model, or use summary.style: extractive",
            ) from err

    def complete(self, prompt: str) -> str:
        """One chat completion; raises OSError/ValueError on transport or format errors."""
        body = {
            "model": self.model,
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
            "temperature": 0,
            "max_tokens": max(32, self.cfg.max_tokens * 2),
        }
        req = urllib.request.Request(
            self.url, data=json.dumps(body).encode("utf-8"), headers=self._headers(), method="POST"
        )
        with urllib.request.urlopen(req, timeout=self.cfg.timeout_s) as resp:
            data = json.loads(resp.read().decode("utf-8"))
        try:
            return str(data["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError) as err:
            raise ValueError(f"unexpected completion shape: {str(data)[:200]}") from err

    def _one(self, prompt: str) -> str | Exception:
        try:
            return self.complete(prompt)
        except (OSError, ValueError) as err:
            return err

    def complete_many(self, prompts: Sequence[str]) -> list[str | Exception]:
        workers = max(1, self.cfg.workers)
        if workers == 1:
            return [self._one(p) for p in prompts]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(self._one, prompts))


LLMSummarizer = EndpointSummarizer  # the name this class had before the local backend existed
