"""The decoder's logic over a scripted engine: short form, segment beam search, events, abstention, cancel.

Replies are scripted per prompt (see tests/scripted_engine.py); the numbers the decoder must produce are
computed here from the scripted logprobs with the spec's formulas, never copied from the decoder's output.
"""

from __future__ import annotations

import math
import threading

import pytest

from scripted_engine import EOS_ID, ScriptedEngine, Step, eos, reply, tok, words
from selfrag_tui.selfrag.settings import DecodingSettings
from selfrag_tui.selfrag.decoder import DecodeCancelled, DecodeError, SelfRagDecoder
from selfrag_tui.selfrag.prompts import format_prompt, passage_block_text
from selfrag_tui.selfrag.types import (
    Cancelled,
    CandidateScored,
    DecisionMade,
    Done,
    Failed,
    Passage,
    PassagesRetrieved,
    SegmentChosen,
    TextDelta,
)

Q = "What is the difference between llamas and alpacas?"
BASE = format_prompt(Q)
RETRIEVE = {"[Retrieval]": math.log(0.9), "[No Retrieval]": math.log(0.01)}
SKIP = {"[Retrieval]": math.log(0.01), "[No Retrieval]": math.log(0.9)}


def passage(key: str, text: str, page: int = 1) -> Passage:
    return Passage(id=f"doc.pdf#{key}", title=f"Camelids > {key}", text=text, source="doc.pdf", page_start=page)


A = passage("A", "Alpacas are smaller than llamas.", 1)
B = passage("B", "Llamas are larger pack animals.", 2)
C = passage("C", "Guanacos live in the Andes.", 3)
D = passage("D", "Vicunas are wild.", 4)


def relevance(p: float) -> dict[str, float]:
    return {"[Relevant]": math.log(p), "[Irrelevant]": math.log(1.0 - p)}


def support(full: float, partial: float, none: float) -> dict[str, float]:
    return {
        "[Fully supported]": math.log(full),
        "[Partially supported]": math.log(partial),
        "[No support / Contradictory]": math.log(none),
    }


def utility(*probs: float) -> dict[str, float]:
    return {f"[Utility:{k}]": math.log(p) for k, p in enumerate(probs, start=1)}


def candidate_reply(
    text: str,
    *,
    rel: float = 0.9,
    relevant: bool = True,
    sup: tuple[float, float, float] = (0.8, 0.15, 0.05),
    support_token: str = "[Fully supported]",
    use: tuple[float, ...] = (0.02, 0.03, 0.05, 0.1, 0.8),
    utility_token: str = "[Utility:5]",
    word_logprob: float = -0.1,
    end: Step | None = None,
) -> list[Step]:
    rel_token = "[Relevant]" if relevant else "[Irrelevant]"
    rel_scores = relevance(rel)
    return reply(
        tok(rel_token, rel_scores[rel_token], rel_scores),
        words(text, word_logprob),
        tok(support_token, support(*sup)[support_token], support(*sup)),
        tok(utility_token, utility(*use)[utility_token], utility(*use)),
        end or eos(),
    )


def expected_score(steps: list[Step], *, rel: float, sup: tuple[float, float, float], use: tuple[float, ...]) -> float:
    """The spec's final score with default weights, from the scripted numbers."""
    seq = math.exp(sum(step.logprob for step in steps) / len(steps))
    sup_score = (sup[0] + 0.5 * sup[1]) / sum(sup)
    use_score = sum(w * p for w, p in zip((-1, -0.5, 0, 0.5, 1), use)) / sum(use)
    return seq + rel + sup_score + 0.5 * use_score


class Retriever:
    """Hands out scripted passages per query and records the queries."""

    def __init__(self, *results: list[Passage]) -> None:
        self.results = list(results)
        self.queries: list[str] = []

    def __call__(self, query: str, k: int) -> list[Passage]:
        self.queries.append(query)
        return self.results.pop(0) if self.results else []


def block(p: Passage) -> str:
    return passage_block_text(p)


def run(engine, retriever, **settings):
    events: list = []
    decoder = SelfRagDecoder(engine, retriever)
    result = decoder.answer(Q, settings=DecodingSettings(**settings), on_event=events.append)
    return result, events


# -- short form ---------------------------------------------------------------------------------------------------


def test_short_form_scores_k_passages_from_one_batched_call_and_picks_the_best():
    engine = ScriptedEngine().decide(BASE, RETRIEVE)
    a_steps = candidate_reply("Alpacas are smaller.", rel=0.95, sup=(0.9, 0.08, 0.02))
    b_steps = candidate_reply("Llamas carry loads.", rel=0.6, sup=(0.3, 0.5, 0.2), use=(0.1, 0.2, 0.4, 0.2, 0.1))
    c_steps = candidate_reply("Guanacos.", relevant=False, rel=0.1, sup=(0.1, 0.2, 0.7), support_token="[No support / Contradictory]")
    engine.on(block(A), a_steps).on(block(B), b_steps).on(block(C), c_steps)
    retriever = Retriever([B, A, C])
    result, events = run(engine, retriever, form="short", k=3)

    assert engine.generate_calls == [[BASE + block(B), BASE + block(A), BASE + block(C)]]
    assert engine.generate_stop_ids == [(EOS_ID,)]
    assert engine.generate_max_new_tokens == [200]
    assert retriever.queries == [Q]
    (segment,) = result.segments
    assert segment.passage == A and segment.citation == 1 and segment.retrieval == "retrieval"
    assert [c.passage_index for c in segment.candidates] == [0, 1, 2]
    scores = [c.final_score for c in segment.candidates]
    assert scores[1] == pytest.approx(expected_score(a_steps, rel=0.95, sup=(0.9, 0.08, 0.02), use=(0.02, 0.03, 0.05, 0.1, 0.8)))
    assert scores[0] == pytest.approx(expected_score(b_steps, rel=0.6, sup=(0.3, 0.5, 0.2), use=(0.1, 0.2, 0.4, 0.2, 0.1)))
    assert result.score == pytest.approx(scores[1]) == pytest.approx(max(scores))
    assert result.text == "Alpacas are smaller."
    assert result.raw_text == block(A) + "[Relevant]Alpacas are smaller.[Fully supported][Utility:5]"
    assert segment.candidates[1].raw_text == "[Relevant]Alpacas are smaller.[Fully supported][Utility:5]</s>"
    assert result.passages == (A, B, C)  # the cited passage first, then the others in retrieval order
    assert result.relevance_verdicts[C.id].relevance == pytest.approx(0.1)
    assert result.relevance_verdicts[C.id].relevance_token == "[Irrelevant]"
    assert result.relevance_verdicts[A.id].support_token == "[Fully supported]"
    assert result.abstained is False and result.abstain_reason is None
    assert result.decision.retrieve and result.decision.p_retrieval == pytest.approx(0.9 / 0.91)
    assert [type(e) for e in events] == [
        DecisionMade, PassagesRetrieved, CandidateScored, CandidateScored, CandidateScored, SegmentChosen, Done
    ]
    assert events[-1].answer is result


def test_ties_go_to_the_lower_passage_index():
    engine = ScriptedEngine().decide(BASE, RETRIEVE)
    same = candidate_reply("Both are camelids.")
    engine.on(block(C), same).on(block(D), same)
    for form in ("short", "long"):
        result, _ = run(engine, Retriever([D, C]), form=form, k=2)
        candidates = result.segments[0].candidates
        assert candidates[0].final_score == candidates[1].final_score
        assert result.segments[0].passage == D, form


def test_truncated_candidate_without_support_or_utility_scores_zero_for_them():
    engine = ScriptedEngine().decide(BASE, RETRIEVE)
    engine.on(block(A), candidate_reply("Alpacas are much smaller than llamas and they were bred for fiber."))
    result, _ = run(engine, Retriever([A]), form="short", k=1, max_new_tokens=6)
    (cand,) = result.segments[0].candidates
    assert cand.finish_reason == "length" and len(cand.token_ids) == 6
    assert cand.critique.support == 0.0 and cand.critique.support_token is None
    assert cand.critique.utility == 0.0 and cand.critique.utility_token is None
    seq = math.exp((math.log(0.9) + 5 * -0.1) / 6)
    assert cand.final_score == pytest.approx(seq + 0.9)
    assert result.abstained and "no support rating" in result.abstain_reason
    # One segment only in short form: max_new_tokens is the whole answer's budget, and the cut is said.
    assert len(engine.generate_calls) == 1
    assert result.cut and result.cut_segment == 0 and result.segments[0].cut
    assert "decoding.max_new_tokens = 6" in result.cut_reason


def test_empty_generation_is_scored_not_fatal():
    engine = ScriptedEngine().decide(BASE, RETRIEVE)
    engine.on(block(A), []).on(block(B), candidate_reply("Llamas are larger."))
    result, _ = run(engine, Retriever([A, B]), form="short", k=2)
    empty = result.segments[0].candidates[0]
    assert empty.token_ids == () and empty.text == "" and empty.seq_score == 1.0
    assert empty.critique.relevance == pytest.approx(0.5) and empty.final_score == pytest.approx(1.5)
    assert result.segments[0].passage == B


def test_closed_set_sums_scores_per_answer_string():
    engine = ScriptedEngine().decide(BASE, RETRIEVE)
    engine.on(block(A), candidate_reply("Yes.", rel=0.7)).on(block(B), candidate_reply("no", rel=0.99))
    engine.on(block(C), candidate_reply("yes", rel=0.6))
    plain, _ = run(engine, Retriever([A, B, C]), form="short", k=3)
    assert plain.text == "no"  # the single best candidate
    closed, _ = run(engine, Retriever([A, B, C]), form="short", k=3, closed_set=True)
    assert closed.text == "Yes."  # "yes" wins on the sum; its best candidate is A's


# -- no retrieval, modes -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["short", "long"])
def test_no_retrieval_answer_streams_text_without_reflection_tokens(form):
    engine = ScriptedEngine().decide(BASE, SKIP)
    engine.on(BASE + "[No Retrieval]", reply(words("Alpacas are smaller."), tok("[Utility:4]", -0.2), eos()))
    retriever = Retriever([A])
    result, events = run(engine, retriever, form=form)
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert "".join(deltas) == "Alpacas are smaller."
    assert not any("[" in d or "</s>" in d for d in deltas)
    assert result.text == "Alpacas are smaller."
    assert retriever.queries == [] and engine.generate_calls == [[BASE + "[No Retrieval]"]]
    (segment,) = result.segments
    assert segment.retrieval == "no_retrieval" and segment.passage is None and segment.citation is None
    assert segment.critique.relevance is None and segment.critique.utility_token == "[Utility:4]"
    assert result.raw_text == "[No Retrieval]Alpacas are smaller.[Utility:4]"
    assert not result.abstained and not result.decision.retrieve


def test_mode_never_neither_asks_the_model_nor_retrieves():
    engine = ScriptedEngine().decide(BASE, RETRIEVE)
    engine.on(BASE + "[No Retrieval]", reply(words("Hello."), eos()))
    retriever = Retriever([A])
    result, _ = run(engine, retriever, mode="never")
    assert engine.next_token_calls == [] and retriever.queries == []
    assert result.decision.mode == "never" and not result.decision.retrieve


def test_mode_always_retrieves_without_asking_the_model():
    engine = ScriptedEngine().decide(BASE, SKIP)
    engine.on(block(A), candidate_reply("Alpacas are smaller."))
    retriever = Retriever([A])
    result, _ = run(engine, retriever, mode="always", k=1)
    assert engine.next_token_calls == [] and retriever.queries == [Q]
    assert result.segments[0].passage == A and result.decision.mode == "always"


def test_released_threshold_formula_is_only_an_option():
    engine = ScriptedEngine().decide(BASE, RETRIEVE)
    engine.on(block(A), candidate_reply("Alpacas are smaller."))
    engine.on(BASE + "[No Retrieval]", reply(words("Camelids."), eos()))
    paper, _ = run(engine, Retriever([A]), k=1)
    released, _ = run(engine, Retriever([A]), k=1, threshold_formula="released")
    assert paper.decision.retrieve and paper.segments[0].passage == A
    assert not released.decision.retrieve and released.decision.p_retrieval == pytest.approx(0.0224, abs=5e-5)
    assert released.text == "Camelids."


# -- abstention -----------------------------------------------------------------------------------------------------


def test_abstains_when_no_retrieved_passage_is_relevant():
    engine = ScriptedEngine().decide(BASE, RETRIEVE)
    irrelevant = candidate_reply("Not sure.", relevant=False, rel=0.2)
    engine.on(block(C), irrelevant).on(block(D), irrelevant)
    result, _ = run(engine, Retriever([C, D]), k=2)
    assert result.abstained
    assert "None of the 2 retrieved passages was judged relevant (highest relevance 0.20)" in result.abstain_reason


def test_abstains_when_the_chosen_answer_is_not_supported():
    engine = ScriptedEngine().decide(BASE, RETRIEVE)
    engine.on(block(A), candidate_reply("Alpacas fly.", sup=(0.1, 0.1, 0.8), support_token="[No support / Contradictory]"))
    result, _ = run(engine, Retriever([A]), k=1, form="short")
    assert result.abstained
    assert "[No support / Contradictory]" in result.abstain_reason and "[1]" in result.abstain_reason


def test_no_passages_found_answers_without_retrieval_and_says_so():
    engine = ScriptedEngine().decide(BASE, RETRIEVE)
    engine.on(BASE + "[No Retrieval]", reply(words("I think alpacas are smaller."), eos()))
    result, _ = run(engine, Retriever([]), form="short")
    assert result.text == "I think alpacas are smaller." and result.passages == ()
    assert result.abstained and "found no passages" in result.abstain_reason


# -- long form: segment beam search -----------------------------------------------------------------------------


def _two_step_engine(second_segment_good: bool) -> tuple[ScriptedEngine, list[Step], list[Step]]:
    """t=0: A answers and ends (EOS); B scores higher but asks for more evidence ([Retrieval]).
    t=1 (after B): C and D answer well or badly."""
    engine = ScriptedEngine().decide(BASE, RETRIEVE)
    a_steps = candidate_reply("Alpacas are smaller.", rel=0.98, sup=(0.95, 0.03, 0.02), word_logprob=-0.05)
    b_steps = candidate_reply(
        "Llamas are larger.", rel=0.99, sup=(0.97, 0.02, 0.01), word_logprob=-0.01, end=tok("[Retrieval]", -0.05, RETRIEVE)
    )
    engine.on(BASE + block(A), a_steps).on(BASE + block(B), b_steps)
    b_context = BASE + block(B) + "[Relevant]Llamas are larger.[Fully supported][Utility:5]"
    if second_segment_good:
        follow = candidate_reply("Alpacas are bred for fiber.", rel=0.99, sup=(0.97, 0.02, 0.01), word_logprob=-0.01)
    else:
        follow = candidate_reply(
            "Guanacos.", relevant=False, rel=0.01, sup=(0.02, 0.03, 0.95), support_token="[No support / Contradictory]",
            use=(0.9, 0.05, 0.03, 0.01, 0.01), utility_token="[Utility:1]", word_logprob=-4.0,
        )
    engine.on(b_context + block(C), follow).on(b_context + block(D), follow)
    return engine, a_steps, b_steps


def test_long_form_returns_the_best_finished_path_not_the_deepest():
    engine, _, _ = _two_step_engine(second_segment_good=False)
    retriever = Retriever([A, B], [C, D])
    result, events = run(engine, retriever, k=2)

    first = [e.candidate for e in events if isinstance(e, CandidateScored) and e.segment_index == 0]
    second = [e.candidate for e in events if isinstance(e, CandidateScored) and e.segment_index == 1]
    score_a, score_b = first[0].final_score, first[1].final_score
    # The scripted case really is the trap: B leads after one segment, B + its best follow-up loses to A.
    assert score_b > score_a
    assert score_b + max(c.final_score for c in second) < score_a
    assert len(result.segments) == 1 and result.segments[0].passage == A
    assert result.score == pytest.approx(score_a)
    assert result.text == "Alpacas are smaller."
    assert engine.next_token_calls == [[BASE]]  # t > 0 decisions come from the previous generation
    assert retriever.queries == [Q, Q + " Llamas are larger."]


def test_long_form_continues_a_better_path_with_per_segment_retrieval():
    engine, _, _ = _two_step_engine(second_segment_good=True)
    retriever = Retriever([A, B], [C, D])
    result, events = run(engine, retriever, k=2)

    assert retriever.queries == [Q, Q + " Llamas are larger."]
    b_context = BASE + block(B) + "[Relevant]Llamas are larger.[Fully supported][Utility:5]"
    assert engine.generate_calls[1] == [b_context + block(C), b_context + block(D)]
    stop = engine.generate_stop_ids[0]
    assert set(stop) == {32000, 32001, 32002, EOS_ID}
    assert [s.passage for s in result.segments] == [B, C]
    assert [s.citation for s in result.segments] == [1, 2]
    assert result.passages == (B, C, A, D)
    assert result.text == "Llamas are larger. Alpacas are bred for fiber."
    assert result.score == pytest.approx(sum(s.score for s in result.segments) / 2)  # the mean, as paths are compared
    decisions = [e for e in events if isinstance(e, DecisionMade)]
    assert [d.segment_index for d in decisions] == [0, 1]
    assert decisions[1].decision.p_retrieval == pytest.approx(0.9 / 0.91)
    assert not any(isinstance(e, TextDelta) for e in events)  # branching answers are not streamed
    chosen = [e.segment for e in events if isinstance(e, SegmentChosen)]
    assert chosen == list(result.segments)


def test_continue_to_use_evidence_keeps_the_current_passage():
    engine = ScriptedEngine().decide(BASE, RETRIEVE)
    keep = {"[Retrieval]": math.log(0.02), "[No Retrieval]": math.log(0.18), "[Continue to Use Evidence]": math.log(0.8)}
    first = candidate_reply("Alpacas are smaller.", end=tok("[Continue to Use Evidence]", math.log(0.8), keep))
    engine.on(BASE + block(A), first)
    then = BASE + block(A) + "[Relevant]Alpacas are smaller.[Fully supported][Utility:5][Continue to Use Evidence]"
    engine.on(then, reply(words("They were bred for fiber."), tok("[Fully supported]", -0.1, support(0.9, 0.05, 0.05)), eos()))
    retriever = Retriever([A])
    result, _ = run(engine, retriever, k=1)
    assert retriever.queries == [Q]
    assert engine.generate_calls[1] == [then]
    assert [s.retrieval for s in result.segments] == ["retrieval", "continue"]
    assert [s.passage for s in result.segments] == [A, A] and [s.citation for s in result.segments] == [1, 1]
    assert result.segments[1].critique.support == pytest.approx(0.9 + 0.025)
    assert result.segments[1].decision.retrieve is False and result.segments[1].decision.continue_evidence
    assert result.passages == (A,)
    # The continue segment has no `</paragraph>` before it: no ISREL term, and A keeps the verdict it got when it
    # was read, so the answer is not taken for one built on irrelevant passages.
    assert result.segments[1].critique.relevance is None
    continued = reply(words("They were bred for fiber."), tok("[Fully supported]", -0.1), eos())
    seq = math.exp(sum(step.logprob for step in continued) / len(continued))
    assert result.segments[1].score == pytest.approx(seq + 0.925)
    assert result.relevance_verdicts[A.id].relevance == pytest.approx(0.9)
    assert result.abstained is False and result.abstain_reason is None


def test_threshold_governs_later_segments_and_max_segments_ends_the_path():
    engine = ScriptedEngine().decide(BASE, SKIP)
    unsure = {"[Retrieval]": math.log(0.1), "[No Retrieval]": math.log(0.8)}  # ratio 0.111 < 0.2
    engine.on("[No Retrieval]", reply(words("More."), tok("[Retrieval]", math.log(0.1), unsure)))
    retriever = Retriever([A])
    result, events = run(engine, retriever, max_segments=3)
    assert retriever.queries == []
    assert [s.retrieval for s in result.segments] == ["no_retrieval"] * 3
    assert engine.generate_calls[2] == [BASE + "[No Retrieval]More." * 2 + "[No Retrieval]"]
    assert result.text == "More. More. More."
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == result.text
    # The same stop with a lower threshold retrieves at segment 1.
    engine.on(BASE + "[No Retrieval]More." + block(A), candidate_reply("Alpacas are smaller."))
    result, _ = run(engine, Retriever([A]), max_segments=3, threshold=0.1, k=1)
    assert [s.retrieval for s in result.segments] == ["no_retrieval", "retrieval"]


def test_long_form_drops_the_oldest_passage_text_when_the_context_is_tight():
    engine = ScriptedEngine(max_context=200).decide(BASE, RETRIEVE)
    old = passage("Old", " ".join(["alpaca"] * 40))
    new = passage("New", " ".join(["llama"] * 30))
    engine.on(block(old), candidate_reply("Alpacas are small.", end=tok("[Retrieval]", -0.05, RETRIEVE)))
    engine.on(block(new), candidate_reply("Llamas are big."))
    result, _ = run(engine, Retriever([old], [new]), k=1, max_new_tokens=40)
    second_prompt = engine.generate_calls[1][0]
    assert second_prompt.startswith(BASE + "[Retrieval]<paragraph></paragraph>[Relevant]Alpacas are small.")
    assert second_prompt.endswith(block(new))
    assert [s.passage for s in result.segments] == [old, new]


def test_short_passage_is_truncated_to_the_context_and_the_question_is_kept():
    engine = ScriptedEngine(max_context=120).decide(BASE, RETRIEVE)
    long = passage("Long", " ".join(f"w{i}" for i in range(200)))
    engine.on(lambda prompt: prompt.endswith("</paragraph>"), candidate_reply("Alpacas are smaller."))
    result, _ = run(engine, Retriever([long]), k=1, form="short", max_new_tokens=40)
    prompt = engine.generate_calls[0][0]
    assert prompt.startswith(BASE + "[Retrieval]<paragraph>Camelids > Long\nw0 w1 w2")
    assert "w199" not in prompt
    assert result.segments[0].candidates[0].passage_truncated
    assert result.segments[0].passage == long  # the full passage stays the source


def test_history_is_folded_into_the_instruction_but_not_the_query():
    engine = ScriptedEngine()
    engine.decide(lambda prompt: "User: Tell me about llamas." in prompt, RETRIEVE)
    engine.on(block(A), candidate_reply("Alpacas are smaller."))
    retriever = Retriever([A])
    decoder = SelfRagDecoder(engine, retriever)
    decoder.answer(Q, history=[("Tell me about llamas.", "Llamas are camelids.")], settings=DecodingSettings(k=1))
    (prompt,) = engine.next_token_calls[0]
    assert prompt == format_prompt(
        "Earlier in this conversation:\nUser: Tell me about llamas.\nAssistant: Llamas are camelids.\n\n" + Q
    )
    assert retriever.queries == [Q]


def test_history_beyond_the_budget_is_dropped_oldest_first():
    engine = ScriptedEngine()
    engine.decide("### Response:\n", SKIP)
    engine.on("[No Retrieval]", reply(words("Ok."), eos()))
    history = [("old question " * 20, "old answer " * 20), ("recent question", "recent answer")]
    SelfRagDecoder(engine, Retriever()).answer(Q, history=history, settings=DecodingSettings(history_token_budget=30))
    (prompt,) = engine.next_token_calls[0]
    assert "recent question" in prompt and "old question" not in prompt and prompt.endswith(Q + "\n\n### Response:\n")


# -- events, cancellation, failures -------------------------------------------------------------------------------


def test_cancel_mid_beam_emits_cancelled_and_raises():
    engine, _, _ = _two_step_engine(second_segment_good=True)
    cancel = threading.Event()
    engine.before_generate = lambda call: cancel.set() if call == 1 else None
    events: list = []
    decoder = SelfRagDecoder(engine, Retriever([A, B], [C, D]))
    with pytest.raises(DecodeCancelled):
        decoder.answer(Q, settings=DecodingSettings(k=2), on_event=events.append, cancel=cancel)
    assert isinstance(events[-1], Cancelled)
    assert not any(isinstance(e, (Done, Failed)) for e in events)
    assert len(engine.generate_calls) == 2  # the second step started and the engine stopped it


def test_cancel_between_steps_stops_before_the_next_engine_call():
    engine, _, _ = _two_step_engine(second_segment_good=True)
    cancel = threading.Event()
    results = [[A, B], [C, D]]

    def retriever(query: str, k: int) -> list[Passage]:
        if len(results) == 1:
            cancel.set()
        return results.pop(0)

    events: list = []
    with pytest.raises(DecodeCancelled):
        SelfRagDecoder(engine, retriever).answer(Q, settings=DecodingSettings(k=2), on_event=events.append, cancel=cancel)
    assert len(engine.generate_calls) == 1
    assert isinstance(events[-1], Cancelled)


def test_errors_emit_failed_and_propagate():
    engine = ScriptedEngine().decide(BASE, RETRIEVE)

    def broken(query: str, k: int) -> list[Passage]:
        raise RuntimeError("store is locked")

    events: list = []
    with pytest.raises(RuntimeError, match="store is locked"):
        SelfRagDecoder(engine, broken).answer(Q, on_event=events.append)
    assert events[-1] == Failed("store is locked")


def test_question_too_long_for_the_context_is_a_clear_error():
    engine = ScriptedEngine(max_context=100)
    with pytest.raises(DecodeError, match="Ask a shorter question"):
        SelfRagDecoder(engine, Retriever()).answer("why " * 80)


def test_timings_and_logprob_source_come_with_the_answer():
    engine = ScriptedEngine(logprob_source="topk").decide(BASE, RETRIEVE)
    engine.on(block(A), candidate_reply("Alpacas are smaller."))
    result, _ = run(engine, Retriever([A]), k=1)
    assert result.logprob_source == "topk"
    assert set(result.timings) >= {"decision", "retrieval", "generation", "total"}
    assert result.timings["total"] >= result.timings["generation"] + result.timings["decision"] > 0
    exact, _ = run(ScriptedEngine().decide(BASE, RETRIEVE).on(block(A), candidate_reply("x")), Retriever([A]), k=1)
    assert exact.logprob_source == "exact"


def test_segments_certain_to_be_in_the_answer_are_chosen_before_the_search_goes_on():
    engine = ScriptedEngine().decide(BASE, SKIP)
    engine.on(BASE + "[No Retrieval]", reply(words("Both are camelids."), tok("[Retrieval]", -0.05, RETRIEVE)))
    engine.on(block(A), candidate_reply("Alpacas are smaller."))
    seen_before_second_call: list = []
    events: list = []
    engine.before_generate = lambda call: seen_before_second_call.extend(events) if call == 1 else None
    result = SelfRagDecoder(engine, Retriever([A])).answer(Q, settings=DecodingSettings(k=1), on_event=events.append)
    early = [e.segment for e in seen_before_second_call if isinstance(e, SegmentChosen)]
    assert [s.retrieval for s in early] == ["no_retrieval"] and early[0] == result.segments[0]
    assert [e.segment for e in events if isinstance(e, SegmentChosen)] == list(result.segments)
    # The certain first segment was streamed as it was generated.
    assert "".join(e.text for e in seen_before_second_call if isinstance(e, TextDelta)) == "Both are camelids."


def test_segments_that_may_still_lose_are_not_streamed():
    engine = ScriptedEngine().decide(BASE, RETRIEVE)
    engine.on(BASE + block(A), candidate_reply("Alpacas are smaller."))
    engine.on(BASE + block(B), candidate_reply("Llamas are larger.", rel=0.99, end=tok("[No Retrieval]", -0.05, SKIP)))
    engine.on("[No Retrieval]", reply(words("They are camelids."), tok("[Utility:5]", -0.1), eos()))
    result, events = run(engine, Retriever([A, B]), k=2)
    assert len(engine.generate_calls) == 2 and engine.generate_calls[1][0].endswith("[No Retrieval]")
    assert not any(isinstance(e, TextDelta) for e in events)  # A's finished path could still win
    # And it does: finished paths are compared by their mean segment score, and B's second segment drags it down.
    assert [s.passage for s in result.segments] == [A] and result.text == "Alpacas are smaller."
