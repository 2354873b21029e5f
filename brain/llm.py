"""The optional LLM summarizer: any OpenAI-compatible chat endpoint (such as `make serve`), over urllib.

The model sees the node's extractive facts and a short code excerpt and may only rephrase them.
Its answer is then checked like any other answer: citations that are not among the node's own
are removed, the node's main citation is added when none is left, and the text is cut to the
token budget. A node whose request fails keeps its extractive summary and is retried next run.
"""

from __future__ import annotations

import json
import os
import urllib.error
import urllib.request

from brain.config import SummaryConfig
from brain.ontology import BrainNode
from brain.text import citations_in, clip_tokens, count_tokens
from nanodex.errors import NanodexError

PROMPT_VERSION = "llm-1"
SYSTEM = (
    "You summarize code for an index. Write one short factual paragraph using only the facts given. "
    "Keep every citation exactly in the form [path:start-end] as given; never invent paths or lines. "
    "No preamble, no markdown, no speculation."
)


def _chat_url(endpoint: str) -> str:
    base = endpoint.rstrip("/")
    if base.endswith("/chat/completions"):
        return base
    if not base.endswith("/v1"):
        base += "/v1"
    return base + "/chat/completions"


class LLMSummarizer:
    """Summaries from an OpenAI-compatible endpoint; see the module docstring for the checks."""

    def __init__(self, cfg: SummaryConfig) -> None:
        if not cfg.endpoint:
            raise NanodexError(
                "summary.style is llm but no summary.endpoint is set",
                "set summary.endpoint (e.g. http://127.0.0.1:8000/v1 from `make serve`) or use style: extractive",
            )
        self.cfg = cfg
        self.url = _chat_url(cfg.endpoint)
        self.model = cfg.model or self._first_model()

    @property
    def fingerprint(self) -> str:
        return f"{PROMPT_VERSION}:{self.model}"

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
        """One chat completion (temperature 0); raises OSError/ValueError on transport or format errors."""
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

    def prompt(self, node: BrainNode, facts_text: str, code: str) -> str:
        return (
            f"Node: {node.type} {node.name}\nFacts (with citations):\n{facts_text}\n\n"
            f"Code [{node.path}:{node.start_line}-{node.end_line}]:\n{code}\n\n"
            f"Write the summary in at most {self.cfg.max_tokens * 3 // 4} words."
        )

    def summarize(self, node: BrainNode, facts_text: str, code: str) -> str:
        return check_summary(self.complete(self.prompt(node, facts_text, code)), node, self.cfg.max_tokens)


def check_summary(text: str, node: BrainNode, max_tokens: int) -> str:
    """Drop citations the node does not own, keep one real citation, cut to `max_tokens`."""
    allowed = set(node.citations) | {f"{node.path}:{node.start_line}-{node.end_line}"}
    text = " ".join(text.split())
    for path, start, end in citations_in(text):
        spans = {f"{path}:{start}-{end}"}
        if start == end:
            spans.add(f"{path}:{start}")
        if not spans & allowed:
            for s in spans:
                text = text.replace(f"[{s}]", "")
    text = " ".join(text.split())
    main = f"[{node.citations[0] if node.citations else f'{node.path}:{node.start_line}-{node.end_line}'}]"
    if not citations_in(text):
        text = clip_tokens(text, max_tokens - count_tokens(main) - 1) + " " + main
    return clip_tokens(text, max_tokens).strip()
