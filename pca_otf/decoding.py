"""How the adapter is used while answering: greedy decoding with optional alpha warm-up and
adapter-aware (contrastive) decoding, and question-intent target weights.

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
from collections.abc import Callable, Sequence
from typing import Any

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


def chat_ids(tok: Any, messages: Sequence[dict[str, str]]) -> list[int]:
    text = tok.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    return tok(text, add_special_tokens=False)["input_ids"]


def generate(
    model: Any,
    tok: Any,
    prompt_ids: list[int],
    *,
    max_new_tokens: int,
    on_step: Callable[[int], None] | None = None,
    contrast: Any | None = None,
    beta: float = 0.5,
    plausibility: float = 0.1,
    no_repeat_ngram: int = 0,
) -> list[int]:
    """Greedy decoding; returns the new token ids (without the final end-of-sequence token).

    Plain decoding uses `model.generate`. With `on_step` (called before each new token), a
    `contrast` model (the base, for adapter-aware decoding) or `no_repeat_ngram` it runs its own
    loop with a KV cache per model, so the cost is one (or two) single-token forward passes per
    new token. `no_repeat_ngram` bans repeating an n-gram of the answer itself, never of the
    prompt (transformers' option counts the prompt too and would forbid copying a block label).
    """
    import torch

    eos = {tok.eos_token_id} | set(_ids(getattr(model, "generation_config", None)))
    device = next(model.parameters()).device
    ids = torch.tensor([prompt_ids], device=device)
    if on_step is None and contrast is None and no_repeat_ngram <= 0:
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=tok.pad_token_id,
                eos_token_id=tok.eos_token_id,
            )
        new = out[0, ids.shape[1] :].tolist()
        while new and (new[-1] in eos or new[-1] == tok.pad_token_id):
            new.pop()
        return new
    new = []
    past = base_past = None
    cur = ids
    with torch.no_grad():
        for step in range(max_new_tokens):
            if on_step is not None:
                on_step(step)
            out = model(input_ids=cur, past_key_values=past, use_cache=True)
            past = out.past_key_values
            logits = out.logits[0, -1].float()
            if contrast is not None:
                bout = contrast(input_ids=cur, past_key_values=base_past, use_cache=True)
                base_past = bout.past_key_values
                logits = contrast_logits(logits, bout.logits[0, -1].float(), beta, plausibility)
            banned = repeat_bans(new, no_repeat_ngram)
            if banned:
                logits[list(banned)] = float("-inf")
            nxt = int(torch.argmax(logits))
            if nxt in eos:
                break
            new.append(nxt)
            cur = torch.tensor([[nxt]], device=device)
    return new


def repeat_bans(new: Sequence[int], n: int) -> set[int]:
    """Tokens that would complete an n-gram already present in `new` (the answer so far).

    Greedy decoding of a small model falls into loops ("a.py:1-40 a.py:1-40 ..."); forbidding
    a repeated n-gram of the answer breaks them while the prompt's text stays free to copy.
    """
    if n <= 0 or len(new) < n:
        return set()
    tail = tuple(new[len(new) - n + 1 :])
    return {new[i + n - 1] for i in range(len(new) - n + 1) if tuple(new[i : i + n - 1]) == tail}


def contrast_logits(adapted: Any, base: Any, beta: float, plausibility: float = 0.1) -> Any:
    """adapted + beta * (adapted - base) over the adapted model's plausible tokens; -inf elsewhere."""
    import torch

    logp_a = torch.log_softmax(adapted, dim=-1)
    logp_b = torch.log_softmax(base, dim=-1)
    scores = logp_a + beta * (logp_a - logp_b)
    keep = logp_a >= logp_a.max() + torch.log(torch.tensor(plausibility))
    return torch.where(keep, scores, torch.full_like(scores, float("-inf")))


def _ids(gen_cfg: Any) -> list[int]:
    if gen_cfg is None:
        return []
    e = getattr(gen_cfg, "eos_token_id", None)
    if e is None:
        return []
    return list(e) if isinstance(e, list | tuple) else [int(e)]
