"""How the adapter is used while answering: alpha warm-up, adapter-aware (contrastive)
decoding and question-intent target weights. The decoding loop itself, with its contrast and
step hooks, is the one in answer.generate.

All three are opt-in because each is a bet, not a proven gain:
  alpha warm-up          the first tokens of an answer set its course; ramping the adapter in
                         over them (`on_step(t)` rescales it) lets the base model's fluent
                         opening stand and the adapter steer the content after it;
  adapter-aware decoding contrast the adapted model with the base: logits = adapted + beta *
                         (adapted - base), among tokens the adapted model itself finds plausible
                         (p >= plausibility x max p), which amplifies what the adapter knows
                         that the base does not, without promoting tokens neither would say;
  q-aware weights        a "where is X" question is a lookup (attention: q/k), a "what does X
                         do" question recalls knowledge (MLP and output: o/up/down), a failure
                         question both; target groups get weights by the question's intent.
"""

from __future__ import annotations

import re

TARGETS = ("q", "k", "v", "o", "gate", "up", "down")

# intent -> per-target weight; 1.0 is neutral
INTENT_WEIGHTS: dict[str, dict[str, float]] = {
    "locate": {"q": 1.25, "k": 1.25, "v": 1.0, "o": 1.0, "gate": 0.85, "up": 0.85, "down": 0.85},
    "explain": {"q": 0.9, "k": 0.9, "v": 1.0, "o": 1.2, "gate": 1.0, "up": 1.2, "down": 1.2},
    "diagnose": {"q": 1.1, "k": 1.1, "v": 1.0, "o": 1.1, "gate": 1.1, "up": 1.1, "down": 1.1},
    "howto": {"q": 1.0, "k": 1.0, "v": 1.1, "o": 1.1, "gate": 1.0, "up": 1.05, "down": 1.05},
    "general": dict.fromkeys(TARGETS, 1.0),
}
_INTENT_PATTERNS = (
    ("diagnose", r"\b(error|errors|exception|raise[sd]?|fail\w*|crash\w*|bug|wrong|traceback|invalid)\b"),
    ("locate", r"\b(where|which (file|module|function|class)|defined|find|located?|who calls)\b"),
    ("howto", r"\b(how (do|can|should) (i|we|you)|how to|example|use|usage)\b"),
    ("explain", r"\b(what|why|how|explain|describe|purpose|return[s]?)\b"),
)


def question_intent(question: str) -> str:
    """The first matching intent of locate/diagnose/howto/explain, else general."""
    q = question.lower()
    for intent, pattern in _INTENT_PATTERNS:
        if re.search(pattern, q):
            return intent
    return "general"


def intent_target_weights(question: str) -> dict[str, float]:
    return dict(INTENT_WEIGHTS[question_intent(question)])


def warmup_scale(step: int, warmup_tokens: int) -> float:
    """Alpha multiplier at new token `step` (0-based): linear from 1/(N+1) to 1 over N tokens."""
    if warmup_tokens <= 0 or step >= warmup_tokens:
        return 1.0
    return (step + 1) / (warmup_tokens + 1)
