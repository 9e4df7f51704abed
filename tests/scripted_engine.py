"""A scripted engine for unit tests of the decoder logic: fixed token ids and logprobs per prompt.

It implements `selfrag_tui.engines.base.Engine` with a tiny exact tokenizer (special tokens at the real Self-RAG
ids 32000..32015, every word, space run and punctuation mark one token) and replies chosen by what the prompt
ends with (or a predicate); a prompt that ends with the first part of a reply gets the rest of it, as a greedy model
would. Generation honours stop ids, `max_new_tokens`, cancellation and `on_token` like a real engine, and records
every call so tests can check what the decoder asked for.

Only decoder tests use it; everything else runs the real transformers engine with the tiny model.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Callable, Sequence

from selfrag_tui.engines.base import MISSING_LOGPROB, Generation, GenerationCancelled, TokenCallback
from selfrag_tui.reflection import ADDED_TOKENS

BOS, EOS = "<s>", "</s>"
BOS_ID, EOS_ID = 1, 2
FIRST_ADDED_ID = 32000
_WORD = re.compile(r"\s+|\w+|[^\w\s]")


@dataclass(frozen=True)
class Step:
    """One generated token: its string, its logprob, and the logprobs of reflection tokens at that position."""

    token: str
    logprob: float = -0.1
    scores: dict[str, float] = field(default_factory=dict)


def tok(token: str, logprob: float = -0.05, scores: dict[str, float] | None = None) -> Step:
    """A special token. Its own logprob is reported among the scores unless `scores` says otherwise."""
    merged = {token: logprob} if token in ADDED_TOKENS else {}
    merged.update(scores or {})
    return Step(token, logprob, merged)


def words(text: str, logprob: float = -0.1, scores: dict[str, float] | None = None) -> list[Step]:
    """Plain text, one step per token of the scripted tokenizer."""
    return [Step(piece, logprob, dict(scores or {})) for piece in _WORD.findall(text)]


def eos(logprob: float = -0.01, scores: dict[str, float] | None = None) -> Step:
    return Step(EOS, logprob, dict(scores or {}))


def reply(*parts: Step | list[Step]) -> list[Step]:
    steps: list[Step] = []
    for part in parts:
        steps.extend(part if isinstance(part, list) else [part])
    return steps


Matcher = str | Callable[[str], bool]


def _matches(matcher: Matcher, prompt: str) -> bool:
    return prompt.endswith(matcher) if isinstance(matcher, str) else matcher(prompt)


class ScriptedEngine:
    """Engine whose replies are scripted per prompt; see the module docstring."""

    name = "scripted"

    def __init__(
        self,
        *,
        max_context: int = 4096,
        missing_tokens: Sequence[str] = (),
        model_name: str = "scripted-selfrag",
        logprob_source: str = "exact",
    ) -> None:
        self.model_name = model_name
        self.max_context = max_context
        self.eos_token_id = EOS_ID
        self.logprob_source = logprob_source
        self._special = {BOS: BOS_ID, EOS: EOS_ID}
        for offset, token in enumerate(ADDED_TOKENS):
            if token not in missing_tokens:
                self._special[token] = FIRST_ADDED_ID + offset
        self._ids: dict[str, int] = dict(self._special)
        self._pieces: dict[int, str] = {v: k for k, v in self._ids.items()}
        self._special_pattern = re.compile(
            "(" + "|".join(re.escape(t) for t in sorted(self._special, key=len, reverse=True)) + ")"
        )
        self.replies: list[tuple[Matcher, list[Step]]] = []
        self.decisions: list[tuple[Matcher, dict[str, float]]] = []
        self.generate_calls: list[list[str]] = []
        self.generate_stop_ids: list[tuple[int, ...]] = []
        self.generate_max_new_tokens: list[int] = []
        self.next_token_calls: list[list[str]] = []
        self.before_generate: Callable[[int], None] | None = None
        """Called with the 0-based number of each generate call before it runs (tests set `cancel` here)."""

    # -- scripting ----------------------------------------------------------------------------------------------
    def on(self, matcher: Matcher, steps: list[Step]) -> "ScriptedEngine":
        """Reply with `steps` to prompts matching `matcher` (a suffix of the prompt text, or a predicate)."""
        self.replies.append((matcher, steps))
        return self

    def decide(self, matcher: Matcher, logprobs: dict[str, float]) -> "ScriptedEngine":
        """Next-token logprobs (by token string) for prompts matching `matcher`; absent tokens are -100."""
        self.decisions.append((matcher, logprobs))
        return self

    # -- tokenizer ----------------------------------------------------------------------------------------------
    def _id(self, piece: str) -> int:
        if piece not in self._ids:
            new_id = 100 + len(self._ids)
            self._ids[piece] = new_id
            self._pieces[new_id] = piece
        return self._ids[piece]

    def encode(self, text: str, *, add_bos: bool = True) -> list[int]:
        ids = [BOS_ID] if add_bos else []
        for part in self._special_pattern.split(text):
            if not part:
                continue
            if part in self._special:
                ids.append(self._special[part])
            else:
                ids.extend(self._id(piece) for piece in _WORD.findall(part))
        return ids

    def decode(self, token_ids: Sequence[int]) -> str:
        return "".join(self._pieces[token_id] for token_id in token_ids)

    def token_id(self, token: str) -> int | None:
        return self._special.get(token)

    def prompt_text(self, prompt: Sequence[int]) -> str:
        ids = list(prompt)
        return self.decode(ids[1:] if ids[:1] == [BOS_ID] else ids)

    # -- generation ---------------------------------------------------------------------------------------------
    def _reply_for(self, prompt: str) -> list[Step]:
        for matcher, steps in self.replies:
            if _matches(matcher, prompt):
                return steps
        # A prompt that ends with the start of a scripted reply goes on with the rest of it, as a greedy model
        # given its own output back would (a segment continued after max_new_tokens).
        for matcher, steps in self.replies:
            generated = ""
            for done in range(1, len(steps)):
                generated += steps[done - 1].token
                if prompt.endswith(generated) and _matches(matcher, prompt[: len(prompt) - len(generated)]):
                    return steps[done:]
        raise AssertionError(f"no scripted reply for the prompt ending {prompt[-200:]!r}")

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
        if self.before_generate is not None:
            self.before_generate(len(self.generate_calls))
        texts = [self.prompt_text(prompt) for prompt in prompts]
        self.generate_calls.append(texts)
        self.generate_stop_ids.append(tuple(stop_token_ids))
        self.generate_max_new_tokens.append(max_new_tokens)
        for prompt in prompts:
            if len(prompt) + max_new_tokens > self.max_context:
                raise AssertionError(f"prompt of {len(prompt)} + {max_new_tokens} exceeds {self.max_context}")
        stops = set(stop_token_ids) | {EOS_ID}
        wanted = set(score_ids)
        generations = []
        for text in texts:
            ids: list[int] = []
            chosen: list[float] = []
            scores: list[dict[int, float]] = []
            finish = "length"
            for step in self._reply_for(text):
                if len(ids) >= max_new_tokens:
                    break
                if cancel is not None and cancel.is_set():
                    raise GenerationCancelled()
                token_id = self._id(step.token) if step.token not in self._special else self._special[step.token]
                ids.append(token_id)
                chosen.append(step.logprob)
                scores.append(
                    {self._special[t]: lp for t, lp in step.scores.items() if t in self._special and self._special[t] in wanted}
                )
                if on_token is not None and len(prompts) == 1:
                    on_token(token_id, self._pieces[token_id])
                if token_id in stops:
                    finish = "eos" if token_id == EOS_ID else "stop"
                    break
            generations.append(
                Generation(
                    token_ids=ids,
                    text=self.decode(ids),
                    token_logprobs=chosen,
                    score_logprobs=scores,
                    cumulative_logprob=sum(chosen),
                    finish_reason=finish,  # type: ignore[arg-type]
                    logprob_source=self.logprob_source,  # type: ignore[arg-type]
                )
            )
        return generations

    def next_token_logprobs(self, prompts: Sequence[Sequence[int]], token_ids: Sequence[int]) -> list[dict[int, float]]:
        texts = [self.prompt_text(prompt) for prompt in prompts]
        self.next_token_calls.append(texts)
        results = []
        for text in texts:
            for matcher, logprobs in self.decisions:
                if _matches(matcher, text):
                    by_id = {self._special[t]: lp for t, lp in logprobs.items() if t in self._special}
                    results.append({i: by_id.get(i, MISSING_LOGPROB) for i in token_ids})
                    break
            else:
                raise AssertionError(f"no scripted decision for the prompt ending {text[-200:]!r}")
        return results

    def close(self) -> None:
        pass
