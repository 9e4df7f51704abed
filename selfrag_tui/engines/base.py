"""The engine interface every backend implements (SELFRAG_SPEC section 7).

The decoder hands engines token ids and the ids whose logprobs it needs; engines hand back token ids and
logprobs. Decisions are never made from decoded text.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass, field
from typing import Callable, Literal, Protocol, Sequence, runtime_checkable

FinishReason = Literal["eos", "stop", "length", "cancelled"]
LogprobSource = Literal["exact", "topk"]

# A missing logprob (not returned by a top-k engine) counts as this (spec section 3/4).
MISSING_LOGPROB = -100.0


class EngineError(RuntimeError):
    """A problem the user can fix (missing model, no GPU, wrong URL); the message says what to do."""


class GenerationCancelled(Exception):
    """Raised by an engine when the cancel event was set between steps."""


@dataclass
class Generation:
    """What an engine returns for one prompt."""

    token_ids: list[int]
    """Generated ids, the stop token included when generation stopped on one."""
    text: str
    """Decoded generated text with special tokens kept."""
    token_logprobs: list[float]
    """Logprob of the chosen token at each position."""
    score_logprobs: list[dict[int, float]]
    """At each position, the logprobs of the requested ids (reflection tokens). A top-k engine may leave ids out:
    read them with `logprob_at`, which applies the -100 rule."""
    cumulative_logprob: float
    finish_reason: FinishReason
    logprob_source: LogprobSource = "exact"

    def logprob_at(self, position: int, token_id: int) -> float:
        if position >= len(self.score_logprobs):
            return MISSING_LOGPROB
        return self.score_logprobs[position].get(token_id, MISSING_LOGPROB)


# Called as tokens are produced for single-prompt generation: (new token id, decoded text delta).
TokenCallback = Callable[[int, str], None]


@runtime_checkable
class Engine(Protocol):
    """A loaded generator and its tokenizer."""

    name: str
    model_name: str
    max_context: int
    """Model context length in tokens (4096 for Llama-2)."""
    eos_token_id: int

    def encode(self, text: str, *, add_bos: bool = True) -> list[int]:
        """Token ids of `text`, with special tokens such as `[Retrieval]` parsed as single tokens."""

    def decode(self, token_ids: Sequence[int]) -> str:
        """Text of `token_ids` with special tokens kept."""

    def token_id(self, token: str) -> int | None:
        """The id of a single token string, or None when the vocabulary lacks it (never the unknown id)."""

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        max_new_tokens: int,
        stop_token_ids: Sequence[int] = (),
        score_ids: Sequence[int] = (),
        cancel: threading.Event | None = None,
        on_token: TokenCallback | None = None,
    ) -> list[Generation]:
        """Greedy generation for all prompts in one batched call.

        Stops each prompt at EOS or any of `stop_token_ids` (kept in `token_ids`) or `max_new_tokens`.
        `on_token` is only honoured for a single prompt. Raises `GenerationCancelled` when `cancel` is set.
        """

    def next_token_logprobs(
        self, prompts: Sequence[Sequence[int]], token_ids: Sequence[int]
    ) -> list[dict[int, float]]:
        """For each prompt, the next-token logprobs of `token_ids` (missing ones at MISSING_LOGPROB)."""

    def close(self) -> None:
        """Release model memory."""


def import_or_raise(module: str, *, extra: str, what: str):
    """Import an optional heavy dependency, or raise an EngineError that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise EngineError(
            f"{what} needs the Python package '{module}', which is not installed ({exc}). "
            f"Install it with: pip install 'selfrag-chat[{extra}]'"
        ) from exc


@dataclass
class EngineInfo:
    """What `doctor` and the app show about a loaded engine."""

    engine: str
    model: str
    device: str = "cpu"
    dtype: str = "float32"
    logprob_source: LogprobSource = "exact"
    extra: dict[str, str] = field(default_factory=dict)
