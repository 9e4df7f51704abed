"""Self-RAG prompts as token ids (SELFRAG_SPEC section 2).

- Base: `"### Instruction:\\n{instruction}\\n\\n### Response:\\n"` (with `### Input:` when there is extra input).
- One passage per prompt, after the response header: `"[Retrieval]<paragraph>{title}\\n{text}</paragraph>"`.
- No retrieval: `"[No Retrieval]"`. BOS comes from the tokenizer; no chat template.

Prompts are assembled from token ids so long-form segments append exactly the ids the model generated. Every
piece that starts with a special token is encoded on its own; that gives the same ids as encoding the whole
string, because tokenizers split text at special tokens before anything else.

The context budget (prompt + passage + new tokens <= the model's context) is met by shortening passages, never
the question: earlier segments' passage texts go first (oldest first, their markers stay), then the new
passage's text is cut.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

from selfrag_tui.engines.base import Engine
from selfrag_tui.selfrag.types import Passage
from selfrag_tui.reflection import ADDED_TOKENS, PARAGRAPH_CLOSE, PARAGRAPH_OPEN, RETRIEVAL, ReflectionVocab

HISTORY_HEADER = "Earlier in this conversation:"
_ADDED_TOKEN_PATTERN = re.compile("|".join(re.escape(token) for token in ADDED_TOKENS))


class ContextOverflow(ValueError):
    """The prompt cannot fit the model's context even with every passage text removed."""


def format_prompt(instruction: str, input_text: str | None = None) -> str:
    """The Alpaca-style template the model was trained on."""
    if input_text:
        return f"### Instruction:\n{instruction}\n\n### Input:\n{input_text}\n\n### Response:\n"
    return f"### Instruction:\n{instruction}\n\n### Response:\n"


def strip_added_tokens(text: str) -> str:
    """Remove Self-RAG token strings from document text: the tokenizer would parse them as real markers."""
    return _ADDED_TOKEN_PATTERN.sub("", text)


def passage_content(passage: Passage, text: str | None = None, title: str | None = None) -> str:
    """What goes between `<paragraph>` and `</paragraph>`: `"{title}\\n{text}"`."""
    body = strip_added_tokens(passage.text if text is None else text)
    return f"{strip_added_tokens(passage.title if title is None else title)}\n{body}"


def passage_block_text(passage: Passage, text: str | None = None, title: str | None = None) -> str:
    return f"{RETRIEVAL}{PARAGRAPH_OPEN}{passage_content(passage, text, title)}{PARAGRAPH_CLOSE}"


def transcript(history: Sequence[tuple[str, str]]) -> str:
    lines = [HISTORY_HEADER]
    for user, assistant in history:
        lines.append(f"User: {user.strip()}")
        lines.append(f"Assistant: {assistant.strip()}")
    return "\n".join(lines)


@dataclass(frozen=True)
class PassageBlock:
    """`[Retrieval]<paragraph>title\\ntext</paragraph>` as ids, possibly with the text shortened."""

    passage: Passage
    ids: tuple[int, ...]
    truncated: bool = False


@dataclass(frozen=True)
class ContextPiece:
    """An earlier segment as the model sees it in the next prompt."""

    full: tuple[int, ...]
    """Its marker or passage block, then its generated ids (without the stop token that opened the next one)."""
    without_passage: tuple[int, ...] | None = None
    """The same with the passage text removed (`[Retrieval]<paragraph></paragraph>` + generated ids); None when
    the segment had no passage block."""


@dataclass(frozen=True)
class AssembledPrompt:
    ids: list[int]
    tail: tuple[int, ...] = ()
    """The last piece: the new passage block as placed (possibly shortened) or the marker."""
    passages_dropped: int = 0
    """How many earlier passage texts were removed to fit the context."""
    truncated: bool = False
    """Whether the new passage's text was shortened."""


class PromptBuilder:
    """Builds the token ids of every prompt the decoder sends, within the engine's context length."""

    def __init__(self, engine: Engine, vocab: ReflectionVocab) -> None:
        self.engine = engine
        self.vocab = vocab
        self.markers_only = (vocab.retrieval, vocab.paragraph_open, vocab.paragraph_close)

    def count(self, text: str) -> int:
        return len(self.engine.encode(text, add_bos=False))

    # -- the instruction ----------------------------------------------------------------------------------------
    def instruction(self, question: str, history: Sequence[tuple[str, str]], budget: int) -> str:
        """The question, preceded by as many of the latest earlier turns as fit `budget` tokens.

        The model was trained on single turns, so earlier turns become a short transcript in the instruction;
        the oldest turns are dropped first, and the question itself is never shortened.
        """
        question = question.strip()
        turns = list(history)
        while turns:
            folded = transcript(turns)
            if self.count(folded) <= budget:
                return f"{folded}\n\n{question}"
            turns.pop(0)
        return question

    def base_ids(self, instruction: str) -> list[int]:
        return list(self.engine.encode(format_prompt(instruction), add_bos=True))

    # -- passages -----------------------------------------------------------------------------------------------
    def passage_block(self, passage: Passage, max_tokens: int | None = None) -> PassageBlock | None:
        """The passage block, its text cut at a token boundary so the block fits `max_tokens`.

        The title is kept whole while the markers, the title and any text fit; only a title longer than the room
        left is cut too. Returns None when not even the markers fit.
        """
        ids = tuple(self.engine.encode(passage_block_text(passage), add_bos=False))
        if max_tokens is None or len(ids) <= max_tokens:
            return PassageBlock(passage, ids)
        text_ids = list(self.engine.encode(strip_added_tokens(passage.text), add_bos=False))
        fitted = self._fit(text_ids, max_tokens, lambda kept: passage_block_text(passage, kept))
        if fitted is not None:
            return PassageBlock(passage, fitted, truncated=True)
        title_ids = list(self.engine.encode(strip_added_tokens(passage.title), add_bos=False))
        fitted = self._fit(title_ids, max_tokens, lambda kept: passage_block_text(passage, "", kept))
        return PassageBlock(passage, fitted, truncated=True) if fitted is not None else None

    def _fit(self, ids: list[int], max_tokens: int, render) -> tuple[int, ...] | None:
        """The ids of `render(the longest prefix of ids, decoded)` that fit `max_tokens` (None if not even the empty
        prefix fits)."""
        keep = len(ids)
        while keep >= 0:
            shortened = self.engine.decode(ids[:keep]).rstrip() if keep else ""
            rendered = tuple(self.engine.encode(render(shortened), add_bos=False))
            if len(rendered) <= max_tokens:
                return rendered
            if keep == 0:
                return None
            keep = max(0, keep - max(1, len(rendered) - max_tokens))
        return None

    # -- whole prompts ------------------------------------------------------------------------------------------
    def assemble(
        self,
        base_ids: Sequence[int],
        earlier: Sequence[ContextPiece],
        *,
        max_new_tokens: int,
        passage: Passage | None = None,
        marker_ids: Sequence[int] = (),
        generated: Sequence[int] = (),
    ) -> AssembledPrompt:
        """`base + earlier segments + (passage block | marker) + generated` so that it plus `max_new_tokens` fits.

        `generated` is the part of the current segment already generated, when a segment cut by `max_new_tokens`
        goes on. Earlier passage texts are removed oldest first; then the new passage's text is shortened (its
        title kept), so a candidate always fits while the rest of the prompt does. Raises ContextOverflow when even
        that is not enough: the question, the earlier segments' own tokens and the markers fill the context.
        """
        limit = self.engine.max_context - max_new_tokens
        pieces = [piece.full for piece in earlier]
        tail: Sequence[int] = marker_ids
        block = None
        if passage is not None:
            block = self.passage_block(passage)
            assert block is not None
            tail = block.ids

        def total() -> int:
            return len(base_ids) + sum(len(piece) for piece in pieces) + len(tail) + len(generated)

        dropped = 0
        for index, piece in enumerate(earlier):
            if total() <= limit:
                break
            if piece.without_passage is not None:
                pieces[index] = piece.without_passage
                dropped += 1
        truncated = False
        if total() > limit and passage is not None:
            room = limit - (total() - len(tail))
            block = self.passage_block(passage, max_tokens=room)
            if block is None:
                raise ContextOverflow(self._overflow_message(total(), max_new_tokens))
            tail, truncated = block.ids, block.truncated
        if total() > limit:
            raise ContextOverflow(self._overflow_message(total(), max_new_tokens))
        ids = list(base_ids)
        for piece in pieces:
            ids.extend(piece)
        ids.extend(tail)
        ids.extend(generated)
        return AssembledPrompt(ids=ids, tail=tuple(tail), passages_dropped=dropped, truncated=truncated)

    def _overflow_message(self, prompt_tokens: int, max_new_tokens: int) -> str:
        return (
            f"The prompt needs {prompt_tokens} tokens plus {max_new_tokens} new tokens, more than the "
            f"{self.engine.max_context}-token context of the model '{self.engine.model_name}'. Ask a shorter "
            f"question or lower decoding.max_new_tokens."
        )
