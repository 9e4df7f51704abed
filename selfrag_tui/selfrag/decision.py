"""Whether to retrieve (SELFRAG_SPEC section 3).

The paper (Eq. 8) retrieves iff `p_R / (p_R + p_N) > threshold` with probabilities. The released
`run_short_form.py` divides raw log-probabilities instead (`lr / (lr + ln) > t`), which retrieves almost always
and skips exactly when the model is confident it needs retrieval; it is offered only as
`threshold_formula = "released"` for parity checks.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Sequence

from selfrag_tui.selfrag.settings import DecodingSettings
from selfrag_tui.engines.base import MISSING_LOGPROB, Engine, Generation
from selfrag_tui.selfrag.types import RetrievalDecision, RetrievalMode, ThresholdFormula
from selfrag_tui.reflection import ReflectionVocab

MODES: tuple[str, ...] = ("adaptive", "always", "never")
FORMULAS: tuple[str, ...] = ("paper", "released")


def paper_ratio(logprob_retrieval: float, logprob_no_retrieval: float) -> float:
    """`p_R / (p_R + p_N)`, computed as `1 / (1 + exp(l_N - l_R))` so tiny probabilities do not underflow."""
    diff = logprob_no_retrieval - logprob_retrieval
    if diff > 700:  # exp would overflow; the ratio is 0 to double precision
        return 0.0
    return 1.0 / (1.0 + math.exp(diff))


def released_ratio(logprob_retrieval: float, logprob_no_retrieval: float) -> float:
    """The released code's `l_R / (l_R + l_N)` on raw log-probabilities (kept only for parity)."""
    denominator = logprob_retrieval + logprob_no_retrieval
    return logprob_retrieval / denominator if denominator != 0 else 0.0


def decide_from_logprobs(
    logprob_retrieval: float,
    logprob_no_retrieval: float,
    *,
    threshold: float,
    formula: ThresholdFormula = "paper",
) -> RetrievalDecision:
    """The adaptive decision from the logprobs of `[Retrieval]` and `[No Retrieval]` at one position."""
    if formula == "paper":
        ratio = paper_ratio(logprob_retrieval, logprob_no_retrieval)
    elif formula == "released":
        ratio = released_ratio(logprob_retrieval, logprob_no_retrieval)
    else:
        raise ValueError(f"decoding.threshold_formula must be one of {FORMULAS}, not {formula!r}")
    return RetrievalDecision(
        retrieve=ratio > threshold,
        mode="adaptive",
        threshold=threshold,
        formula=formula,
        p_retrieval=ratio,
        logprob_retrieval=logprob_retrieval,
        logprob_no_retrieval=logprob_no_retrieval,
    )


def forced_decision(mode: RetrievalMode, settings: DecodingSettings) -> RetrievalDecision:
    """`always` and `never` decide without asking the model."""
    if mode not in ("always", "never"):
        raise ValueError(f"forced_decision needs mode 'always' or 'never', not {mode!r}")
    return RetrievalDecision(
        retrieve=mode == "always", mode=mode, threshold=settings.threshold, formula=settings.threshold_formula
    )


def decide_initial(
    engine: Engine, base_ids: Sequence[int], vocab: ReflectionVocab, settings: DecodingSettings
) -> RetrievalDecision:
    """Segment 0: one next-token step on the base prompt (adaptive), or the forced mode."""
    if settings.mode != "adaptive":
        return forced_decision(settings.mode, settings)
    (logprobs,) = engine.next_token_logprobs([list(base_ids)], [vocab.retrieval, vocab.no_retrieval])
    return decide_from_logprobs(
        logprobs.get(vocab.retrieval, MISSING_LOGPROB),
        logprobs.get(vocab.no_retrieval, MISSING_LOGPROB),
        threshold=settings.threshold,
        formula=settings.threshold_formula,
    )


def decide_after(
    generation: Generation, vocab: ReflectionVocab, settings: DecodingSettings, *, has_passage: bool = False
) -> RetrievalDecision:
    """Segment t > 0: the distribution where the previous segment stopped, read from that generation (no call).

    The model marks every new segment with a retrieve-group token; the generation stopped on it, so its last
    position holds the logprobs of `[Retrieval]`, `[No Retrieval]` and `[Continue to Use Evidence]` (spec 6.2):
    `always` / `never` force the decision at every segment; in `adaptive`, a path with a passage in context
    (`has_passage`) keeps using it when `[Continue to Use Evidence]` is the most probable of the three, and
    otherwise the threshold applies to p_R / (p_R + p_N) there, as at the first segment.
    """
    if settings.mode != "adaptive":
        return forced_decision(settings.mode, settings)
    last = len(generation.token_ids) - 1
    lr, ln, lc = (
        generation.logprob_at(last, token) if last >= 0 else MISSING_LOGPROB
        for token in (vocab.retrieval, vocab.no_retrieval, vocab.continue_evidence)
    )
    decision = decide_from_logprobs(lr, ln, threshold=settings.threshold, formula=settings.threshold_formula)
    if has_passage and lc > lr and lc > ln:
        return replace(decision, retrieve=False, continue_evidence=True, logprob_continue=lc)
    return replace(decision, logprob_continue=lc)
