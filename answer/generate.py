"""The one local generate loop: chat messages -> greedy answers with a local transformers model.

The trainer's eval, the pca_otf runner, self-tune and the brain's local summarizer all decode
through `generate`, so "what the model answers" means the same thing everywhere. It is
`model.generate` (batched, left-padded, KV-cached) plus logits processors for what nanodex adds:
  CitationConstraint  a citation can only name a block shown in the prompt (answer.constrain);
  NoRepeatInAnswer    bans repeating an n-gram of the answer itself, never of the prompt
                      (transformers' own option counts the prompt and would forbid copying a label);
  FrequencyPenalty    the OpenAI/vLLM `frequency_penalty`: a token's logit falls by the penalty
                      times its count in the answer so far (the served `make query` sampling);
  StepHook            `on_step(t)` before new token t (pca_otf's adapter alpha warm-up);
  Contrast            adapter-aware decoding against a base copy (pca_otf): logits = adapted +
                      beta * (adapted - base) among the adapted model's plausible tokens.
Step hooks and contrast change the model per step, so they decode one conversation at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from answer.blocks import Block
from nanodex.log import progress


def chat_ids(tok: Any, messages: Sequence[dict[str, str]], prefix: str = "") -> list[int]:
    """Token ids of `messages` in the model's chat template, ready for the assistant's turn
    (which starts with `prefix`)."""
    text = tok.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
    return tok(text + prefix, add_special_tokens=False)["input_ids"]


def repeat_bans(new: Sequence[int], n: int) -> set[int]:
    """Tokens that would complete an n-gram already present in `new` (the answer so far)."""
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
    keep = logp_a >= logp_a.max(dim=-1, keepdim=True).values + torch.log(torch.tensor(plausibility))
    return torch.where(keep, scores, torch.full_like(scores, float("-inf")))


class _Processor:
    """A transformers LogitsProcessor that knows where the prompt ends (left padding: one width)."""

    prompt_len: int | None = None

    def new_tokens(self, input_ids: Any) -> Any:
        if self.prompt_len is None:
            self.prompt_len = int(input_ids.shape[1])
        return input_ids[:, self.prompt_len :]


class NoRepeatInAnswer(_Processor):
    def __init__(self, n: int) -> None:
        self.n = n

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        new = self.new_tokens(input_ids)
        for row in range(new.shape[0]):
            banned = repeat_bans(new[row].tolist(), self.n)
            if banned:
                scores[row, list(banned)] = float("-inf")
        return scores


class FrequencyPenalty(_Processor):
    def __init__(self, penalty: float) -> None:
        self.penalty = penalty

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        new = self.new_tokens(input_ids)
        if new.shape[1]:
            counts = torch.zeros_like(scores)
            counts.scatter_add_(1, new, torch.ones_like(new, dtype=scores.dtype))
            scores = scores - self.penalty * counts
        return scores


class StepHook(_Processor):
    """Calls `on_step(t + 1)` while token t is being chosen: before the forward pass of token t + 1."""

    def __init__(self, on_step: Callable[[int], None]) -> None:
        self.on_step = on_step

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        self.on_step(int(self.new_tokens(input_ids).shape[1]) + 1)
        return scores


class Contrast(_Processor):
    """Adapter-aware decoding: the base copy follows the same tokens with its own KV cache."""

    def __init__(self, base: Any, beta: float, plausibility: float) -> None:
        self.base, self.beta, self.plausibility = base, beta, plausibility
        self.past: Any = None
        self.seen = 0

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        self.new_tokens(input_ids)
        with torch.no_grad():
            out = self.base(input_ids=input_ids[:, self.seen :], past_key_values=self.past, use_cache=True)
        self.past, self.seen = out.past_key_values, int(input_ids.shape[1])
        return contrast_logits(scores.float(), out.logits[:, -1].float(), self.beta, self.plausibility)


def generate(
    model: Any,
    tok: Any,
    conversations: Sequence[Sequence[dict[str, str]]],
    *,
    max_new_tokens: int,
    batch_size: int = 8,
    blocks: Sequence[Sequence[Block]] | None = None,
    open_with_citation: bool = False,
    prefixes: Sequence[str] | None = None,
    no_repeat_ngram: int = 0,
    frequency_penalty: float = 0.0,
    on_step: Callable[[int], None] | None = None,
    contrast: Any | None = None,
    beta: float = 0.5,
    plausibility: float = 0.1,
    desc: str | None = None,
) -> list[str]:
    """Greedy answers to `conversations`, in their order.

    `blocks[i]`, when given, are the code blocks shown in conversation i: its citations are then
    constrained to name one of them (or a sub-range); with `open_with_citation` the answer's first
    line must also cite one (answer.constrain, as vLLM's regex asks a served model).
    `frequency_penalty` is the served sampling's (vLLM counts the answer's tokens only, as here).
    `prefixes[i]` starts answer i (self-tune opens with the subject's name and label); it is part
    of the returned text. Conversations of similar length are decoded together, `batch_size` at a
    time (one at a time with `on_step` or `contrast`).
    """
    import torch
    from transformers import LogitsProcessorList

    from answer.constrain import CitationConstraint

    if on_step is not None or contrast is not None:
        batch_size = 1
    starts = list(prefixes) if prefixes is not None else [""] * len(conversations)
    ids = [chat_ids(tok, c, s) for c, s in zip(conversations, starts, strict=True)]
    order = sorted(range(len(ids)), key=lambda i: (len(ids[i]), i))
    batches = [order[i : i + max(1, batch_size)] for i in range(0, len(order), max(1, batch_size))]
    answers = [""] * len(ids)
    device = next(model.parameters()).device
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    for batch in progress(batches, desc=desc or "generate", unit="batch") if desc else batches:
        width = max(len(ids[i]) for i in batch)
        input_ids = torch.tensor([[pad] * (width - len(ids[i])) + ids[i] for i in batch], device=device)
        mask = torch.tensor([[0] * (width - len(ids[i])) + [1] * len(ids[i]) for i in batch], device=device)
        procs: list[Any] = []
        if blocks is not None and any(blocks[i] for i in batch):
            procs.append(
                CitationConstraint(tok, [blocks[i] for i in batch], open_with_citation=open_with_citation)
            )
        if no_repeat_ngram > 0:
            procs.append(NoRepeatInAnswer(no_repeat_ngram))
        if frequency_penalty:
            procs.append(FrequencyPenalty(frequency_penalty))
        if contrast is not None:
            procs.append(Contrast(contrast, beta, plausibility))
        if on_step is not None:
            on_step(0)
            procs.append(StepHook(on_step))
        with torch.no_grad():
            out = model.generate(
                input_ids=input_ids,
                attention_mask=mask,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                logits_processor=LogitsProcessorList(procs),
                pad_token_id=pad,
                eos_token_id=tok.eos_token_id,
            )
        for row, i in enumerate(batch):
            answers[i] = (starts[i] + tok.decode(out[row, width:], skip_special_tokens=True)).strip()
    return answers
