"""Scoring one generation from its reflection-token logprobs (SELFRAG_SPEC section 4).

For a generation `t[0..n)` with `P(i, tok) = exp(logprob of tok at position i)` (-100 when absent):

- ISREL at position 0: `P(Relevant) / (P(Relevant) + P(Irrelevant))`.
- ISSUP at the first position whose generated token is a support token:
  `(P(Full) + 0.5 P(Partial)) / (P(Full) + P(Partial) + P(NoSupport))`; 0 when none was generated.
- ISUSE at the first position whose generated token is a utility token: `sum_k w_k P(U_k) / sum_k P(U_k)` with
  `w = (-1, -0.5, 0, 0.5, 1)`; 0 when none was generated.
- `seq = exp(cumulative_logprob / max(n, 1))`.
- `final = (seq if use_seqscore) + w_rel rel + w_sup sup + w_use use`.

Ratios of probabilities are computed as a softmax over the group's logprobs, which is the same number without
underflow when every logprob is very negative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from selfrag_tui.selfrag.settings import DecodingSettings
from selfrag_tui.engines.base import Generation
from selfrag_tui.selfrag.types import Critique
from selfrag_tui.reflection import (
    FULLY_SUPPORTED,
    NO_SUPPORT,
    PARTIALLY_SUPPORTED,
    RELEVANCE_GROUP,
    RELEVANT,
    SUPPORT_GROUP,
    UTILITY_GROUP,
    ReflectionVocab,
)

# ISUSE weights of [Utility:1] .. [Utility:5].
UTILITY_WEIGHTS: tuple[float, ...] = (-1.0, -0.5, 0.0, 0.5, 1.0)


def normalise(logprobs: Sequence[float]) -> list[float]:
    """Probabilities `exp(l_i) / sum_j exp(l_j)`, computed stably (a softmax over the given logprobs)."""
    top = max(logprobs)
    weights = [math.exp(lp - top) for lp in logprobs]
    total = sum(weights)
    return [w / total for w in weights]


@dataclass(frozen=True)
class GroupReading:
    """A reflection group read at one position: the normalised probabilities and the token generated there."""

    position: int
    probabilities: dict[str, float]
    token: str | None


def read_group(
    generation: Generation, position: int, tokens: Sequence[str], vocab: ReflectionVocab
) -> GroupReading:
    logprobs = [generation.logprob_at(position, vocab.ids[token]) for token in tokens]
    probabilities = dict(zip(tokens, normalise(logprobs), strict=True))
    generated = generation.token_ids[position] if position < len(generation.token_ids) else None
    token = vocab.token(generated) if generated is not None else None
    return GroupReading(position, probabilities, token if token in tokens else None)


def first_position(generation: Generation, ids: Sequence[int]) -> int | None:
    """The first position whose generated token is one of `ids` (None when none was generated)."""
    wanted = set(ids)
    for position, token_id in enumerate(generation.token_ids):
        if token_id in wanted:
            return position
    return None


def relevance_reading(generation: Generation, vocab: ReflectionVocab) -> GroupReading:
    """ISREL is read at position 0, right after `</paragraph>`, whatever token was generated there."""
    return read_group(generation, 0, RELEVANCE_GROUP, vocab)


def support_reading(generation: Generation, vocab: ReflectionVocab) -> GroupReading | None:
    position = first_position(generation, vocab.support_ids)
    return None if position is None else read_group(generation, position, SUPPORT_GROUP, vocab)


def utility_reading(generation: Generation, vocab: ReflectionVocab) -> GroupReading | None:
    position = first_position(generation, vocab.utility_ids)
    return None if position is None else read_group(generation, position, UTILITY_GROUP, vocab)


def relevance_score(reading: GroupReading) -> float:
    return reading.probabilities[RELEVANT]


def support_score(reading: GroupReading | None) -> float:
    if reading is None:
        return 0.0
    p = reading.probabilities
    return p[FULLY_SUPPORTED] + 0.5 * p[PARTIALLY_SUPPORTED] + 0.0 * p[NO_SUPPORT]


def utility_score(reading: GroupReading | None) -> float:
    if reading is None:
        return 0.0
    return sum(w * reading.probabilities[token] for w, token in zip(UTILITY_WEIGHTS, UTILITY_GROUP, strict=True))


def sequence_score(generation: Generation) -> float:
    """Geometric-mean token probability: every generated token counts, the stop token included."""
    return math.exp(generation.cumulative_logprob / max(len(generation.token_ids), 1))


def critique(
    generation: Generation, vocab: ReflectionVocab, *, with_passage: bool, evidence: bool | None = None
) -> Critique:
    """The model's reflection on one generation, with the terms its kind of segment gets (spec 6.1).

    `with_passage`: the generation starts right after `</paragraph>` (a retrieved passage), so ISREL is read at
    position 0. `evidence`: a passage is in context (defaults to `with_passage`; True for
    `[Continue to Use Evidence]`, which has no `</paragraph>` before it and so no ISREL), so ISSUP applies, 0 when
    no support token was generated. Without evidence (`[No Retrieval]`) there is neither relevance nor support,
    even if the model emits a support token: nothing stands behind it. ISUSE always applies, 0 when no utility
    token was generated.
    """
    if evidence is None:
        evidence = with_passage
    probabilities: dict[str, float] = {}
    relevance: float | None = None
    relevance_token: str | None = None
    if with_passage:
        rel = relevance_reading(generation, vocab)
        relevance, relevance_token = relevance_score(rel), rel.token
        probabilities.update(rel.probabilities)
    support: float | None = None
    support_token: str | None = None
    if evidence:
        sup = support_reading(generation, vocab)
        support = support_score(sup)
        if sup is not None:
            support_token = sup.token
            probabilities.update(sup.probabilities)
    use = utility_reading(generation, vocab)
    if use is not None:
        probabilities.update(use.probabilities)
    return Critique(
        relevance=relevance,
        relevance_token=relevance_token,
        support=support,
        support_token=support_token,
        utility=utility_score(use),
        utility_token=use.token if use is not None else None,
        probabilities=probabilities,
    )


def final_score(review: Critique, seq: float, settings: DecodingSettings) -> float:
    """`(seq if use_seqscore) + w_rel rel + w_sup sup + w_use use`; a term that does not apply counts 0."""
    score = seq if settings.use_seqscore else 0.0
    score += settings.w_rel * (review.relevance or 0.0)
    score += settings.w_sup * (review.support or 0.0)
    score += settings.w_use * (review.utility or 0.0)
    return score
