"""The retrieval decision: the paper's formula by default, the released log-ratio only on request, the modes."""

from __future__ import annotations

import math

import pytest

from scripted_engine import ScriptedEngine, eos, reply, tok, words
from selfrag_tui.selfrag.settings import DecodingSettings
from selfrag_tui.engines.base import MISSING_LOGPROB
from selfrag_tui.selfrag.decision import decide_after, decide_from_logprobs, decide_initial
from selfrag_tui.selfrag.prompts import format_prompt
from selfrag_tui.reflection import ReflectionVocab

P_R, P_N = math.log(0.9), math.log(0.01)


def test_spec_threshold_example_paper_formula_retrieves():
    decision = decide_from_logprobs(P_R, P_N, threshold=0.2)
    assert decision.p_retrieval == pytest.approx(0.9 / 0.91, abs=1e-9)
    assert round(decision.p_retrieval, 3) == 0.989
    assert decision.retrieve is True
    assert decision.formula == "paper"


def test_spec_threshold_example_released_formula_skips():
    decision = decide_from_logprobs(P_R, P_N, threshold=0.2, formula="released")
    assert decision.p_retrieval == pytest.approx(0.0224, abs=5e-5)
    assert decision.retrieve is False


def test_threshold_is_compared_strictly_and_configurable():
    # p_R = 0.3, p_N = 0.7 -> ratio 0.3
    lr, ln = math.log(0.3), math.log(0.7)
    assert decide_from_logprobs(lr, ln, threshold=0.2).retrieve is True
    assert decide_from_logprobs(lr, ln, threshold=0.5).retrieve is False
    assert decide_from_logprobs(lr, ln, threshold=0.3 + 1e-9).retrieve is False


def test_unknown_formula_is_rejected_by_name():
    with pytest.raises(ValueError, match="threshold_formula"):
        decide_from_logprobs(-1.0, -1.0, threshold=0.2, formula="log")  # type: ignore[arg-type]


def _engine() -> tuple[ScriptedEngine, ReflectionVocab]:
    engine = ScriptedEngine()
    return engine, ReflectionVocab.from_engine(engine)


def test_adaptive_makes_one_next_token_call_on_the_base_prompt():
    engine, vocab = _engine()
    engine.decide("### Response:\n", {"[Retrieval]": P_R, "[No Retrieval]": P_N})
    base = engine.encode(format_prompt("Who bred alpacas?"))
    decision = decide_initial(engine, base, vocab, DecodingSettings())
    assert engine.next_token_calls == [[format_prompt("Who bred alpacas?")]]
    assert decision.retrieve is True and decision.mode == "adaptive" and decision.threshold == 0.2
    assert (decision.logprob_retrieval, decision.logprob_no_retrieval) == (P_R, P_N)


def test_missing_no_retrieval_logprob_counts_as_minus_100():
    engine, vocab = _engine()
    engine.decide("### Response:\n", {"[Retrieval]": -30.0})
    decision = decide_initial(engine, engine.encode(format_prompt("q")), vocab, DecodingSettings())
    assert decision.logprob_no_retrieval == MISSING_LOGPROB
    assert decision.p_retrieval == pytest.approx(1.0 / (1.0 + math.exp(-70.0)))
    assert decision.retrieve is True


@pytest.mark.parametrize(("mode", "retrieve"), [("always", True), ("never", False)])
def test_forced_modes_do_not_ask_the_model(mode, retrieve):
    engine, vocab = _engine()
    decision = decide_initial(engine, engine.encode(format_prompt("q")), vocab, DecodingSettings(mode=mode))
    assert engine.next_token_calls == []
    assert decision.retrieve is retrieve and decision.mode == mode and decision.p_retrieval is None


def test_later_segments_decide_from_the_last_position_of_the_previous_generation():
    engine, vocab = _engine()
    # The model stopped on [Retrieval] but was unsure: p_R = 0.1, p_N = 0.9 -> ratio 0.1 < 0.2.
    unsure = {"[Retrieval]": math.log(0.1), "[No Retrieval]": math.log(0.9)}
    engine.on("q", reply(words("Some text."), tok("[Retrieval]", math.log(0.1), unsure)))
    (gen,) = engine.generate([engine.encode("q")], max_new_tokens=50, score_ids=vocab.score_ids)
    decision = decide_after(gen, vocab, DecodingSettings())
    assert decision.p_retrieval == pytest.approx(0.1)
    assert decision.retrieve is False
    assert decide_after(gen, vocab, DecodingSettings(threshold=0.05)).retrieve is True
    assert engine.next_token_calls == []


def test_later_segment_decision_of_an_empty_generation_uses_minus_100():
    engine, vocab = _engine()
    engine.on("q", reply(eos()))
    (gen,) = engine.generate([engine.encode("q")], max_new_tokens=50, score_ids=vocab.score_ids)
    gen.token_ids.clear()
    gen.score_logprobs.clear()
    decision = decide_after(gen, vocab, DecodingSettings())
    assert decision.p_retrieval == pytest.approx(0.5)


def _stopped_on(engine, vocab, scores: dict[str, float]):
    engine.on("q", reply(words("Some text."), tok("[Continue to Use Evidence]", scores["[Continue to Use Evidence]"], scores)))
    (gen,) = engine.generate([engine.encode("q")], max_new_tokens=50, score_ids=vocab.score_ids)
    return gen


def test_later_segments_keep_the_passage_when_continue_is_the_most_probable():
    # SELFRAG_SPEC 6.2: p_C = 0.8, p_R = p_N = 0.1. Eq. 8 alone would retrieve (0.5 > 0.2).
    engine, vocab = _engine()
    keep = {"[Retrieval]": math.log(0.1), "[No Retrieval]": math.log(0.1), "[Continue to Use Evidence]": math.log(0.8)}
    gen = _stopped_on(engine, vocab, keep)
    kept = decide_after(gen, vocab, DecodingSettings(), has_passage=True)
    assert kept.continue_evidence and not kept.retrieve
    assert kept.logprob_continue == pytest.approx(math.log(0.8)) and kept.p_retrieval == pytest.approx(0.5)
    # Without a passage in context there is nothing to continue with: the threshold decides.
    alone = decide_after(gen, vocab, DecodingSettings(), has_passage=False)
    assert alone.retrieve and not alone.continue_evidence
    # Forced modes win over the model's choice.
    assert decide_after(gen, vocab, DecodingSettings(mode="never"), has_passage=True).continue_evidence is False
    always = decide_after(gen, vocab, DecodingSettings(mode="always"), has_passage=True)
    assert always.retrieve and not always.continue_evidence


def test_continue_that_is_not_the_most_probable_leaves_the_threshold_to_decide():
    engine, vocab = _engine()
    unsure = {"[Retrieval]": math.log(0.45), "[No Retrieval]": math.log(0.1), "[Continue to Use Evidence]": math.log(0.45)}
    decision = decide_after(_stopped_on(engine, vocab, unsure), vocab, DecodingSettings(), has_passage=True)
    assert decision.retrieve and not decision.continue_evidence
    assert decision.p_retrieval == pytest.approx(0.45 / 0.55)
