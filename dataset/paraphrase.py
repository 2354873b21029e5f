"""Optional LLM rewording of template prompts through an OpenAI-compatible chat endpoint (off by default).

Templates give variety but a fixed style; a served model can reword prompts the way people ask.
Only prompts change (answers stay composed from facts), and a rewording is kept only when it is
one question that still names every `identifier` the template put in backticks; otherwise the
template prompt stays and the rejection is counted.
"""

from __future__ import annotations

import re

from dataset.config import LLMParaphraseConfig
from nanodex.chat_client import ChatClient
from nanodex.errors import NanodexError
from nanodex.log import get_logger

log = get_logger("dataset.paraphrase")

SYSTEM = (
    "You reword questions a developer asks about a codebase. Reply with one reworded question only. "
    "Keep every name written in backticks exactly as it is, in backticks. Do not answer it."
)
_TICKED = re.compile(r"`[^`]+`")


class Paraphraser:
    """Rewords template prompts through the one OpenAI-compatible client (nanodex.chat_client)."""

    def __init__(self, cfg: LLMParaphraseConfig) -> None:
        if not cfg.endpoint:
            raise NanodexError("llm.endpoint is not set", "set llm.endpoint or pass --endpoint URL")
        self.cfg = cfg
        try:
            self.client = ChatClient.from_env(cfg.endpoint, cfg.api_key_env, timeout_s=cfg.timeout_s)
        except NanodexError as err:  # a malformed URL: say which setting holds it
            raise NanodexError(f"llm.endpoint: {err.cause}", err.fix) from err
        self.model = cfg.model or self._first_model()
        self.failures = 0  # requests that failed (their template prompt stays)

    def _first_model(self) -> str:
        """The first model the server lists (vLLM: the base), as before the client was shared."""
        try:
            return self.client.default_model(prefer_adapter=False)
        except NanodexError as err:
            raise NanodexError(
                f"paraphrase endpoint {self.cfg.endpoint} did not answer /models ({err.cause})",
                "start it (`make serve`), set llm.model, or set llm.endpoint: null",
            ) from err

    def reword(self, prompt: str) -> str | None:
        """The reworded prompt, or None when the request fails or the answer breaks the rules."""
        messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]
        try:
            done = self.client.chat(messages, model=self.model, max_tokens=96)
        except NanodexError as err:  # the template prompt stays; build_dataset counts it as rejected
            self.failures += 1
            if self.failures == 1:  # not silent, but not one line per prompt either
                log.warning("paraphrase request failed, template prompt kept: %s", err)
            return None
        text = done.text.strip().strip('"').strip()
        return text if acceptable(prompt, text) else None


def acceptable(original: str, text: str) -> bool:
    """One line, one question, not a copy, every backticked name kept, not much longer."""
    if not text or "\n" in text or not text.endswith("?") or text.count("?") > 1:
        return False
    if text.lower() == original.lower() or len(text) > 2 * len(original) + 40:
        return False
    return all(t in text for t in _TICKED.findall(original))
