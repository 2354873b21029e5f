"""Optional LLM rewording of template prompts through an OpenAI-compatible chat endpoint (off by default).

Templates give variety but a fixed style; a served model can reword prompts the way people ask.
Only prompts change (answers stay composed from facts), and a rewording is kept only when it is
one question that still names every `identifier` the template put in backticks; otherwise the
template prompt stays and the rejection is counted.
"""

from __future__ import annotations

import json
import os
import re
import urllib.error
import urllib.request
from typing import Any

from dataset.config import LLMParaphraseConfig
from nanodex.errors import NanodexError

SYSTEM = (
    "You reword questions a developer asks about a codebase. Reply with one reworded question only. "
    "Keep every name written in backticks exactly as it is, in backticks. Do not answer it."
)
_TICKED = re.compile(r"`[^`]+`")


def _url(endpoint: str, tail: str) -> str:
    base = endpoint.rstrip("/")
    for suffix in ("/chat/completions", "/models"):
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    if not base.endswith("/v1"):
        base += "/v1"
    return base + tail


class Paraphraser:
    def __init__(self, cfg: LLMParaphraseConfig) -> None:
        if not cfg.endpoint:
            raise NanodexError("llm.endpoint is not set", "set llm.endpoint or pass --endpoint URL")
        self.cfg = cfg
        self.model = cfg.model or self._first_model()

    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json"}
        key = os.environ.get(self.cfg.api_key_env)
        if key:
            h["Authorization"] = f"Bearer {key}"
        return h

    def _get(self, url: str, body: dict | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(url, data=data, headers=self._headers())
        with urllib.request.urlopen(req, timeout=self.cfg.timeout_s) as resp:
            return json.loads(resp.read().decode("utf-8"))

    def _first_model(self) -> str:
        try:
            return str(self._get(_url(self.cfg.endpoint or "", "/models"))["data"][0]["id"])
        except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError) as err:
            raise NanodexError(
                f"paraphrase endpoint {self.cfg.endpoint} did not answer /models ({err.__class__.__name__})",
                "start it (`make serve`), set llm.model, or set llm.endpoint: null",
            ) from err

    def reword(self, prompt: str) -> str | None:
        """The reworded prompt, or None when the request fails or the answer breaks the rules."""
        body = {
            "model": self.model,
            "messages": [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
            "temperature": 0,
            "max_tokens": 96,
        }
        try:
            out = self._get(_url(self.cfg.endpoint or "", "/chat/completions"), body)
            text = str(out["choices"][0]["message"]["content"]).strip().strip('"').strip()
        except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError):
            return None
        return text if acceptable(prompt, text) else None


def acceptable(original: str, text: str) -> bool:
    """One line, one question, not a copy, every backticked name kept, not much longer."""
    if not text or "\n" in text or not text.endswith("?") or text.count("?") > 1:
        return False
    if text.lower() == original.lower() or len(text) > 2 * len(original) + 40:
        return False
    return all(t in text for t in _TICKED.findall(original))
