"""The OpenAI completions API's JSON as the server engine writes and reads it: pure functions over plain data,
tested without a server (and against vLLM's own request and response models).

- Token names: vLLM names tokens `token_id:N` (with `return_tokens_as_token_ids`); servers that only speak text
  (llama.cpp's) name them by their text, mapped back to ids through the local tokenizer's pieces.
- A streamed answer arrives as chunks, each with the logprobs of its new tokens; `StreamedChoice` joins them into
  the same shape as a whole answer's choice.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from selfrag_tui.engines.base import MISSING_LOGPROB, FinishReason

TOKEN_ID_PREFIX = "token_id:"


def sentencepiece_text(piece: str) -> str | None:
    """How a server renders one SentencePiece token as text: `▁the` -> ` the`, `<0x0A>` -> a newline.

    None for a byte token that is only part of a UTF-8 character (servers render those as nothing).
    """
    match = re.fullmatch(r"<0x([0-9A-Fa-f]{2})>", piece)
    if match:
        value = int(match.group(1), 16)
        return chr(value) if value < 0x80 else None
    return piece.replace("\u2581", " ")


def build_piece_table(pieces: Sequence[str | None], *, prefer: Sequence[int] = ()) -> dict[str, int]:
    """Token text -> id. Where texts collide the ordinary piece wins over a byte token; ids in `prefer` (the
    reflection tokens) always win."""
    table: dict[str, int] = {}
    byte_ids: dict[str, int] = {}
    for token_id, piece in enumerate(pieces):
        if piece is None:
            continue
        text = sentencepiece_text(piece)
        if text is None:
            continue
        if re.fullmatch(r"<0x[0-9A-Fa-f]{2}>", piece):
            byte_ids.setdefault(text, token_id)
        else:
            table.setdefault(text, token_id)
    for text, token_id in byte_ids.items():
        table.setdefault(text, token_id)
    for token_id in prefer:
        piece = pieces[token_id] if 0 <= token_id < len(pieces) else None
        if piece is not None:
            table[piece] = token_id
    return table


def spm_text_for_server(
    token_ids: Sequence[int], pieces: Sequence[str | None], added_ids: set[int]
) -> str:
    """Text that a llama.cpp server tokenises back into `token_ids` (SentencePiece vocabularies).

    llama.cpp splits text at added tokens and puts a space in front of every stretch of ordinary text that starts
    the prompt or follows an added token, so that space is taken off here. A stretch whose first piece has no
    leading `▁` cannot be written this way; the connect-time round-trip check reports it.
    """
    parts: list[str] = []
    run: list[int] = []

    def flush() -> None:
        if not run:
            return
        raw = bytearray()
        for token_id in run:
            piece = pieces[token_id] or ""
            match = re.fullmatch(r"<0x([0-9A-Fa-f]{2})>", piece)
            raw += bytes([int(match.group(1), 16)]) if match else piece.replace("\u2581", " ").encode("utf-8")
        text = raw.decode("utf-8", errors="replace")
        parts.append(text[1:] if text.startswith(" ") else text)
        run.clear()

    for token_id in token_ids:
        if token_id in added_ids:
            flush()
            parts.append(pieces[token_id] or "")
        else:
            run.append(int(token_id))
    flush()
    return "".join(parts)


def token_key_to_id(key: str, piece_table: Mapping[str, int]) -> int | None:
    """A token as the server names it (`token_id:123` or its text) -> id, or None when unknown."""
    if key.startswith(TOKEN_ID_PREFIX):
        try:
            return int(key[len(TOKEN_ID_PREFIX):])
        except ValueError:
            return None
    return piece_table.get(key)


def max_logprobs_from_error(message: str) -> int | None:
    """The cap a server states when too many logprobs were asked, e.g. vLLM's '... max allowed: 5'."""
    match = re.search(r"(?:max(?:imum)?(?: allowed)?|at most|<=)\D{0,20}(\d+)", message, re.IGNORECASE)
    return int(match.group(1)) if match else None


@dataclass
class ParsedChoice:
    token_ids: list[int]
    token_logprobs: list[float]
    score_logprobs: list[dict[int, float]]
    finish_reason: str | None
    unknown_tokens: list[str] = field(default_factory=list)


def parse_choice(
    choice: Mapping[str, Any], *, score_ids: Sequence[int], piece_table: Mapping[str, int]
) -> ParsedChoice:
    """Token ids, chosen logprobs and the reflection ids' logprobs of one completion choice."""
    logprobs = choice.get("logprobs") or {}
    tokens = list(logprobs.get("tokens") or [])
    chosen = list(logprobs.get("token_logprobs") or [])
    tops = list(logprobs.get("top_logprobs") or [])
    wanted = set(int(i) for i in score_ids)
    token_ids: list[int] = []
    token_logprobs: list[float] = []
    score_logprobs: list[dict[int, float]] = []
    unknown: list[str] = []
    for position, token in enumerate(tokens):
        token_id = token_key_to_id(token, piece_table)
        if token_id is None:
            unknown.append(token)
            token_id = -1
        token_ids.append(token_id)
        value = chosen[position] if position < len(chosen) else None
        token_logprobs.append(float(value) if value is not None else MISSING_LOGPROB)
        top = tops[position] if position < len(tops) and tops[position] else {}
        scores: dict[int, float] = {}
        for key, lp in top.items():
            key_id = token_key_to_id(key, piece_table)
            if key_id is not None and key_id in wanted and lp is not None:
                scores[key_id] = float(lp)
        if token_id in wanted and value is not None:
            scores.setdefault(token_id, float(value))
        score_logprobs.append(scores)
    return ParsedChoice(token_ids, token_logprobs, score_logprobs, choice.get("finish_reason"), unknown)


def cut_at_stop(parsed: ParsedChoice, *, stop_ids: set[int], eos_token_id: int) -> tuple[ParsedChoice, FinishReason]:
    """Keep tokens up to and including the first stop id or EOS, and say why generation ended."""
    for position, token_id in enumerate(parsed.token_ids):
        if token_id == eos_token_id or token_id in stop_ids:
            end = position + 1
            reason: FinishReason = "eos" if token_id == eos_token_id else "stop"
            return (
                ParsedChoice(
                    parsed.token_ids[:end],
                    parsed.token_logprobs[:end],
                    parsed.score_logprobs[:end],
                    parsed.finish_reason,
                    parsed.unknown_tokens,
                ),
                reason,
            )
    if parsed.finish_reason == "length":
        return parsed, "length"
    # "stop" without a stop id in the tokens: the server ended on EOS and left it out.
    return parsed, "eos"


@dataclass
class StreamedChoice:
    """The first choice of a streamed completion, joined chunk by chunk into a whole choice's JSON shape."""

    text: str = ""
    tokens: list[str] = field(default_factory=list)
    token_logprobs: list[float | None] = field(default_factory=list)
    top_logprobs: list[dict[str, float] | None] = field(default_factory=list)
    finish_reason: str | None = None

    def add(self, chunk: Mapping[str, Any]) -> list[str]:
        """Join one chunk (a whole `text_completion` event); return the token names it added."""
        choices = chunk.get("choices") or []
        if not choices:
            return []
        choice = choices[0]
        self.text += choice.get("text") or ""
        if choice.get("finish_reason"):
            self.finish_reason = choice["finish_reason"]
        logprobs = choice.get("logprobs") or {}
        new = list(logprobs.get("tokens") or [])
        chosen = list(logprobs.get("token_logprobs") or [])
        tops = list(logprobs.get("top_logprobs") or [])
        self.tokens += new
        self.token_logprobs += chosen + [None] * (len(new) - len(chosen))
        self.top_logprobs += tops + [None] * (len(new) - len(tops))
        return new

    def as_choice(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "finish_reason": self.finish_reason,
            "logprobs": {"tokens": self.tokens, "token_logprobs": self.token_logprobs,
                         "top_logprobs": self.top_logprobs},
        }
