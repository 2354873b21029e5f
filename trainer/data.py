"""Dataset rows -> chat-templated token ids whose labels cover only the answer tokens.

Rows are DESIGN.md's `{id, kind, prompt, response, refs, citations}`, optionally with a chat
`messages` list (the dataset stage writes one). The model is trained on exactly the text the
serving side sends: the base model's own chat template with the question as the user turn, so
the adapter learns to answer, not to reproduce prompts. Loss is masked (-100) everywhere except
the assistant turns, because prompts are not what the expert should learn to generate.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from answer.prompt import training_messages
from nanodex.errors import NanodexError

IGNORE = -100


@dataclass
class Encoded:
    """One training example: token ids and labels (IGNORE on prompt tokens)."""

    input_ids: list[int]
    labels: list[int]

    @property
    def answer_tokens(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


@dataclass
class EncodeStats:
    rows: int = 0
    kept: int = 0
    truncated: int = 0
    dropped_no_answer: int = 0
    tokens: int = 0
    answer_tokens: int = 0


def require_dataset(path: str | Path, what: str = "dataset") -> Path:
    """The path, or the one-line error a missing dataset gets (checked before any model loads)."""
    p = Path(path)
    if not p.is_file():
        raise NanodexError(f"{what} not found: {p}", "run `make dataset` first, or pass DATASET=<file.jsonl>")
    return p


def load_rows(path: str | Path, *, what: str = "dataset", limit: int = 0) -> list[dict[str, Any]]:
    """Read a JSONL dataset; missing, empty or malformed files are one-line errors naming the fix."""
    p = require_dataset(path, what)
    check_dataset_set(p)
    rows: list[dict[str, Any]] = []
    with p.open("rb") as fh:
        for lineno, raw in enumerate(fh, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise NanodexError(
                    f"{p}:{lineno}: not UTF-8 (byte {err.start + 1} of the line)",
                    "re-run `make dataset`, or re-encode the file as UTF-8",
                ) from err
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise NanodexError(
                    f"{p}:{lineno}: not valid JSON ({err.msg})", "re-run `make dataset`"
                ) from err
            if not isinstance(row, dict):
                raise NanodexError(f"{p}:{lineno}: a row must be a JSON object", "re-run `make dataset`")
            check_row(row, f"{p}:{lineno}")
            rows.append(row)
            if limit and len(rows) >= limit:
                break
    if not rows:
        raise NanodexError(
            f"{what} is empty: {p}", "run `make dataset` (it wrote no rows), or pass another DATASET="
        )
    return rows


def check_dataset_set(path: Path) -> None:
    """A dataset file written by `make dataset` must be the one its stats.json lists.

    The dataset stage writes train.jsonl, eval.jsonl and then stats.json, which records each
    file's sha256; a run killed between those renames leaves files from two runs side by side,
    and this check names it instead of training on the mix. Files with no such stats.json beside
    them (a hand-made dataset) are not checked.
    """
    stats = path.parent / "stats.json"
    if not stats.is_file():
        return
    try:
        data = json.loads(stats.read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as err:
        raise NanodexError(
            f"{stats} is damaged ({err.__class__.__name__}): cannot check {path.name} against it",
            "re-run `make dataset`",
        ) from err
    expected = (data.get("outputs_sha256") or {}).get(path.name) if isinstance(data, dict) else None
    if expected is None:
        return
    if file_sha256(path) != expected:
        raise NanodexError(
            f"{path} is not the file {stats} lists (the dataset run that wrote them was interrupted, "
            "or the file was edited)",
            "re-run `make dataset` to write the set again",
        )


def check_row(row: dict[str, Any], where: str) -> None:
    msgs = row.get("messages")
    if msgs is not None:
        if not isinstance(msgs, list) or not msgs or not all(_is_message(m) for m in msgs):
            raise NanodexError(
                f"{where}: `messages` must be a list of {{role, content}}", "re-run `make dataset`"
            )
        if not any(m["role"] == "assistant" for m in msgs):
            raise NanodexError(f"{where}: `messages` has no assistant turn to learn", "re-run `make dataset`")
        if any(m["role"] == "assistant" and not m["content"].strip() for m in msgs):
            raise NanodexError(
                f"{where}: an assistant turn is empty: nothing to learn", "re-run `make dataset`"
            )
        return
    for key in ("prompt", "response"):
        if not isinstance(row.get(key), str) or not row[key].strip():
            raise NanodexError(f"{where}: row has no `{key}` text", "re-run `make dataset`")


def _is_message(m: object) -> bool:
    return isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def row_messages(row: dict[str, Any], system_prompt: str | None = None) -> list[dict[str, str]]:
    """The conversation a row teaches: its `messages`, else the bare question (answer.prompt) and
    its response."""
    if row.get("messages"):
        msgs = [{"role": m["role"], "content": m["content"]} for m in row["messages"]]
    else:
        msgs = training_messages(row["prompt"], [], row["response"])
    if system_prompt and msgs[0]["role"] != "system":
        msgs.insert(0, {"role": "system", "content": system_prompt})
    return msgs


def prompt_messages(row: dict[str, Any], system_prompt: str | None = None) -> list[dict[str, str]]:
    """The conversation up to (not including) the final assistant answer: what eval asks."""
    msgs = row_messages(row, system_prompt)
    while msgs and msgs[-1]["role"] == "assistant":
        msgs.pop()
    return msgs


def reference_answer(row: dict[str, Any]) -> str:
    msgs = row.get("messages")
    if msgs:
        return next(m["content"] for m in reversed(msgs) if m["role"] == "assistant")
    return str(row["response"])


def _render(tokenizer: Any, msgs: Sequence[dict[str, str]], *, generation_prompt: bool = False) -> str:
    if not msgs:
        return ""
    return tokenizer.apply_chat_template(list(msgs), tokenize=False, add_generation_prompt=generation_prompt)


def render_segments(tokenizer: Any, msgs: Sequence[dict[str, str]]) -> list[tuple[str, bool]]:
    """Split the templated conversation into (text, is_answer) pieces.

    Each prefix of the conversation is rendered with the template; the text each message adds is
    its segment. The assistant header (`<|im_start|>assistant\\n`) stays on the prompt side, so the
    model is scored on exactly what it generates after the serving side's generation prompt.
    """
    if not getattr(tokenizer, "chat_template", None):
        raise NanodexError(
            "the base model's tokenizer has no chat template", "use an instruct/chat base model"
        )
    segments: list[tuple[str, bool]] = []
    done = ""
    for k, msg in enumerate(msgs):
        if msg["role"] == "assistant":
            head = _render(tokenizer, msgs[:k], generation_prompt=True)
            full = _render(tokenizer, msgs[: k + 1])
            if not head.startswith(done) or not full.startswith(head):
                raise NanodexError("the chat template is not prefix-stable", "use a ChatML-style base model")
            segments += [(head[len(done) :], False), (full[len(head) :], True)]
        else:
            full = _render(tokenizer, msgs[: k + 1])
            if not full.startswith(done):
                raise NanodexError("the chat template is not prefix-stable", "use a ChatML-style base model")
            segments.append((full[len(done) :], False))
        done = full
    return [(t, a) for t, a in segments if t]


def encode_messages(tokenizer: Any, msgs: Sequence[dict[str, str]], max_seq_len: int) -> tuple[Encoded, bool]:
    """Token ids + labels for one conversation, cut to max_seq_len; returns (example, was_truncated)."""
    ids: list[int] = []
    labels: list[int] = []
    for text, is_answer in render_segments(tokenizer, msgs):
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        labels += piece if is_answer else [IGNORE] * len(piece)
    truncated = len(ids) > max_seq_len
    return Encoded(ids[:max_seq_len], labels[:max_seq_len]), truncated


def encode_rows(
    tokenizer: Any, rows: Sequence[dict[str, Any]], max_seq_len: int, system_prompt: str | None = None
) -> tuple[list[Encoded], EncodeStats]:
    """Encode every row; rows whose answer is cut away entirely by max_seq_len are dropped and counted."""
    stats = EncodeStats(rows=len(rows))
    out: list[Encoded] = []
    for row in rows:
        enc, truncated = encode_messages(tokenizer, row_messages(row, system_prompt), max_seq_len)
        stats.truncated += truncated
        if enc.answer_tokens == 0:
            stats.dropped_no_answer += 1
            continue
        out.append(enc)
        stats.tokens += len(enc.input_ids)
        stats.answer_tokens += enc.answer_tokens
    stats.kept = len(out)
    return out, stats


def pack(examples: Sequence[Encoded], max_seq_len: int, seed: int) -> list[dict[str, list[int]]]:
    """Greedy packing of whole examples into blocks of at most max_seq_len tokens.

    Each block carries position_ids that restart at 0 for every example and no attention mask;
    transformers then builds a block-diagonal causal mask, so packed examples do not see each other
    (it does so only without a KV cache, i.e. with use_cache=False, as the Trainer runs).
    """
    order = list(range(len(examples)))
    random.Random(seed).shuffle(order)
    blocks: list[dict[str, list[int]]] = []
    cur: dict[str, list[int]] = {"input_ids": [], "labels": [], "position_ids": []}
    for i in order:
        ex = examples[i]
        if cur["input_ids"] and len(cur["input_ids"]) + len(ex.input_ids) > max_seq_len:
            blocks.append(cur)
            cur = {"input_ids": [], "labels": [], "position_ids": []}
        cur["input_ids"] += ex.input_ids
        cur["labels"] += ex.labels
        cur["position_ids"] += list(range(len(ex.input_ids)))
    if cur["input_ids"]:
        blocks.append(cur)
    return blocks


def as_features(examples: Sequence[Encoded]) -> list[dict[str, list[int]]]:
    return [{"input_ids": e.input_ids, "labels": e.labels} for e in examples]


class ListDataset(torch.utils.data.Dataset):
    """A plain list as a torch Dataset (the Trainer needs __len__ for length grouping)."""

    def __init__(self, items: list[dict[str, list[int]]]) -> None:
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, list[int]]:
        return self.items[i]


@dataclass
class Collator:
    """Right-pads a batch; padded labels are IGNORE. Packed blocks get position_ids, no attention mask.

    `answer_logits_only`: the model computes logits only at the positions that predict an answer
    token (`logits_to_keep`, with the matching `shift_labels` that transformers' causal-LM loss
    takes as is). Rows with code in the prompt are ~85 % prompt tokens, and the logits
    (tokens x 49k vocabulary, upcast to float32 for the loss, and their gradient) were the
    largest tensors of a CPU step; the loss is the same, since prompt positions carry IGNORE.
    """

    pad_id: int
    answer_logits_only: bool = False

    def __call__(self, features: list[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(f["input_ids"]) for f in features)
        packed = "position_ids" in features[0]
        batch: dict[str, list[list[int]]] = {"input_ids": [], "labels": []}
        batch["position_ids" if packed else "attention_mask"] = []
        for f in features:
            n = len(f["input_ids"])
            pad = width - n
            batch["input_ids"].append(f["input_ids"] + [self.pad_id] * pad)
            batch["labels"].append(f["labels"] + [IGNORE] * pad)
            if packed:
                # padding becomes its own (masked-out) segment: positions restart at 0
                batch["position_ids"].append(f["position_ids"] + list(range(pad)))
            else:
                batch["attention_mask"].append([1] * n + [0] * pad)
        out = {k: torch.tensor(v, dtype=torch.long) for k, v in batch.items()}
        if self.answer_logits_only:
            out.update(answer_positions(out["labels"]))
        return out


def answer_positions(labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """`logits_to_keep` (the positions whose next token is an answer token in any row of the
    batch) and `shift_labels` (those next tokens, IGNORE where a row has none)."""
    keep = (labels[:, 1:] != IGNORE).any(0).nonzero().squeeze(1)
    if keep.numel() == 0:  # no answer token at all: one position, all IGNORE (a zero loss)
        keep = torch.tensor([labels.shape[1] - 1])
        return {"logits_to_keep": keep, "shift_labels": torch.full((labels.shape[0], 1), IGNORE)}
    return {"logits_to_keep": keep, "shift_labels": labels[:, keep + 1]}
