"""The one prompt: question + labelled code blocks -> the chat messages a model is asked with.

Training rows, the trainer's eval, the query CLI, the pca_otf runner and self-tune all call
`build_messages`, so an adapter is trained on exactly the layout it is served with. `LAYOUT`
names this wording; an adapter records it in its `nanodex.json` and serving an adapter trained on
another layout warns. Change the wording and bump `LAYOUT`.

The instruction asks for what makes an answer checkable: open with the symbol that answers and
its label, say what that code does, cite every claim with a label exactly as shown, and when the
code shown does not answer the question, say so and cite the closest block.
"""

from __future__ import annotations

from collections.abc import Sequence

from answer.blocks import Block, render_context

LAYOUT = "nanodex-answer-v1"
INSTRUCTION = (
    "Answer the question about this codebase from the code below. Start with the symbol that "
    "answers it and its label, e.g. `Name.method` [path:start-end], then say what that code does. "
    "Cite each claim with a label exactly as shown. If the code below does not answer the "
    "question, say so and cite the closest block."
)


def user_turn(question: str, blocks: Sequence[Block]) -> str:
    """The user message: the question alone, or the instruction, the labelled code and the question."""
    question = question.strip()
    if not blocks:
        return question
    return f"{INSTRUCTION}\n\n{render_context(blocks)}\n\nQuestion: {question}"


def build_messages(
    question: str, blocks: Sequence[Block], system_prompt: str | None = None
) -> list[dict[str, str]]:
    """The chat turns a model is asked with (no assistant turn): [system,] user."""
    msgs = [{"role": "user", "content": user_turn(question, blocks)}]
    if system_prompt:
        msgs.insert(0, {"role": "system", "content": system_prompt})
    return msgs


def training_messages(
    question: str, blocks: Sequence[Block], answer: str, system_prompt: str | None = None
) -> list[dict[str, str]]:
    """A training row's conversation: exactly `build_messages(...)` plus the answer to learn."""
    return [*build_messages(question, blocks, system_prompt), {"role": "assistant", "content": answer}]
