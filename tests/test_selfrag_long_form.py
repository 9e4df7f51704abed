"""Long-form decoding over a scripted engine: the beam search of SELFRAG_SPEC section 6 and its rules 6.1-6.3.

Each scenario is built so that only the spec's rule gives the asserted answer: two beams stay alive after the
first and second segments, their histories differ, later segments retrieve with their own query, and the scores
are scripted so that a narrower beam, pruning by the last segment, comparing finished paths by their sum, or
reading a term at the wrong position each leads to another answer. The preconditions that make each case a trap
are asserted from the scored candidates, never recomputed from the decoder's rule.
"""

from __future__ import annotations

import math

import pytest

from scripted_engine import ScriptedEngine, Step, eos, reply, tok, words
from selfrag_tui.selfrag.decoder import SelfRagDecoder
from selfrag_tui.selfrag.prompts import format_prompt, passage_block_text
from selfrag_tui.selfrag.settings import DecodingSettings
from selfrag_tui.selfrag.types import CandidateScored, DecisionMade, Passage, PassagesRetrieved, TextDelta

Q = "What is the difference between llamas and alpacas?"
BASE = format_prompt(Q)
RETRIEVE = {"[Retrieval]": math.log(0.9), "[No Retrieval]": math.log(0.01)}
SKIP = {"[Retrieval]": math.log(0.01), "[No Retrieval]": math.log(0.9)}


def passage(key: str, text: str) -> Passage:
    return Passage(id=f"camelids.md#{key}", title=f"Camelids > {key}", text=text, source="camelids.md")


A = passage("A", "Alpacas are smaller than llamas.")
B = passage("B", "Llamas are larger pack animals.")
C = passage("C", "Alpaca fleece is fine and soft.")
D = passage("D", "Llamas guard sheep.")
E = passage("E", "Both descend from wild camelids.")
F = passage("F", "Vicunas are wild.")

# Reflection numbers of a segment, from an excellent one to a bad one. With default weights the final scores are
# roughly great 3.3, good 3.1, fair 2.0, weak 1.4, poor 0.
LEVELS: dict[str, dict] = {
    "great": dict(rel=0.99, sup=(0.97, 0.02, 0.01), sup_token="[Fully supported]",
                  use=(0.01, 0.01, 0.01, 0.07, 0.9), use_token="[Utility:5]", word=-0.05),
    "good": dict(rel=0.95, sup=(0.8, 0.15, 0.05), sup_token="[Fully supported]",
                 use=(0.02, 0.03, 0.05, 0.1, 0.8), use_token="[Utility:5]", word=-0.1),
    "fair": dict(rel=0.6, sup=(0.3, 0.4, 0.3), sup_token="[Partially supported]",
                 use=(0.1, 0.2, 0.4, 0.2, 0.1), use_token="[Utility:3]", word=-0.1),
    "weak": dict(rel=0.3, sup=(0.2, 0.3, 0.5), sup_token="[No support / Contradictory]",
                 use=(0.3, 0.3, 0.2, 0.1, 0.1), use_token="[Utility:2]", word=-0.1),
    "poor": dict(rel=0.05, sup=(0.05, 0.05, 0.9), sup_token="[No support / Contradictory]",
                 use=(0.8, 0.1, 0.05, 0.03, 0.02), use_token="[Utility:1]", word=-2.0),
}


def group(tokens: tuple[str, ...], probs: tuple[float, ...]) -> dict[str, float]:
    return {token: math.log(p) for token, p in zip(tokens, probs, strict=True)}


def relevance(p: float) -> dict[str, float]:
    return {"[Relevant]": math.log(p), "[Irrelevant]": math.log(1.0 - p)}


SUPPORT = ("[Fully supported]", "[Partially supported]", "[No support / Contradictory]")
UTILITY = tuple(f"[Utility:{k}]" for k in range(1, 6))


def judged(token: str, scores: dict[str, float]) -> Step:
    return tok(token, scores[token], scores)


def segment(text: str, level: str, end: Step) -> list[Step]:
    """A retrieval candidate: ISREL token, text, ISSUP token, ISUSE token, then `end` (a retrieve token or EOS)."""
    lv = LEVELS[level]
    rel = relevance(lv["rel"])
    return reply(
        judged("[Relevant]" if lv["rel"] >= 0.5 else "[Irrelevant]", rel),
        words(text, lv["word"]),
        judged(lv["sup_token"], group(SUPPORT, lv["sup"])),
        judged(lv["use_token"], group(UTILITY, lv["use"])),
        end,
    )


def more() -> Step:
    """The model asks for another passage."""
    return tok("[Retrieval]", math.log(0.9), RETRIEVE)


def context(p: Passage, steps: list[Step]) -> str:
    """What a retrieval segment adds to the next prompt: its passage block and its tokens, without the stop token."""
    return passage_block_text(p) + "".join(step.token for step in steps[:-1])


class KeyedRetriever:
    """Passages per exact query; a query nobody expected fails the answer (and so the test)."""

    def __init__(self, table: dict[str, list[Passage]]) -> None:
        self.table = table
        self.queries: list[str] = []

    def __call__(self, query: str, k: int) -> list[Passage]:
        self.queries.append(query)
        if query not in self.table:
            raise AssertionError(f"unexpected query {query!r}")
        return self.table[query]


def run(engine, retriever, question: str = Q, **settings):
    events: list = []
    result = SelfRagDecoder(engine, retriever).answer(
        question, settings=DecodingSettings(**settings), on_event=events.append
    )
    return result, events


def scored(events, t: int) -> list:
    return [e.candidate for e in events if isinstance(e, CandidateScored) and e.segment_index == t]


# -- the beam ------------------------------------------------------------------------------------------------------


def test_the_second_beam_after_the_first_segment_can_win():
    """A leads after segment 0, but only B's path goes on well: a beam of 2 must keep B and continue it with B's
    own history (prompts and query)."""
    engine = ScriptedEngine().decide(BASE, RETRIEVE)
    a0 = segment("Alpacas are smaller.", "great", more())
    b0 = segment("Llamas are larger.", "good", more())
    engine.on(BASE + passage_block_text(A), a0).on(BASE + passage_block_text(B), b0)
    after_a, after_b = BASE + context(A, a0), BASE + context(B, b0)
    engine.on(after_a + passage_block_text(C), segment("Fleece.", "poor", eos()))
    engine.on(after_a + passage_block_text(D), segment("Sheep.", "poor", eos()))
    engine.on(after_b + passage_block_text(C), segment("Alpaca fleece is finer.", "great", eos()))
    engine.on(after_b + passage_block_text(D), segment("Llamas guard.", "weak", eos()))
    retriever = KeyedRetriever({
        Q: [A, B],
        Q + " Alpacas are smaller.": [C, D],
        Q + " Llamas are larger.": [C, D],
    })
    result, events = run(engine, retriever, k=2)

    first = scored(events, 0)
    assert first[0].final_score > first[1].final_score  # A leads after one segment
    assert retriever.queries == [Q, Q + " Alpacas are smaller.", Q + " Llamas are larger."]
    assert engine.generate_calls[1:] == [
        [after_a + passage_block_text(C), after_a + passage_block_text(D)],
        [after_b + passage_block_text(C), after_b + passage_block_text(D)],
    ]
    assert [s.passage for s in result.segments] == [B, C]
    assert result.text == "Llamas are larger. Alpaca fleece is finer."
    assert [d.segment_index for d in (e for e in events if isinstance(e, DecisionMade))] == [0, 1, 1]


def _three_segment_engine() -> tuple[ScriptedEngine, KeyedRetriever]:
    """Two beams alive after segments 0 and 1, a retrieval at segment 2 with each beam's previous segment.

    Scores (roughly): A 3.3, B 2.0; then A+C 0, A+D 1.4, B+C 3.3, B+D 2.0. By path sum the beams after segment 1
    are B+C and A+D; by the last segment alone they would be B+C and B+D. Then A+D+E is great and B+C+E fair, so
    the best finished path (by mean) is A, D, E.
    """
    engine = ScriptedEngine().decide(BASE, RETRIEVE)
    a0 = segment("Alpacas are smaller.", "great", more())
    b0 = segment("Llamas are larger.", "fair", more())
    engine.on(BASE + passage_block_text(A), a0).on(BASE + passage_block_text(B), b0)
    after_a, after_b = BASE + context(A, a0), BASE + context(B, b0)
    ac = segment("Fleece is soft.", "poor", more())
    ad = segment("Llamas guard sheep.", "weak", more())
    bc = segment("Alpaca fleece is finer.", "great", more())
    bd = segment("Llamas work.", "fair", more())
    engine.on(after_a + passage_block_text(C), ac).on(after_a + passage_block_text(D), ad)
    engine.on(after_b + passage_block_text(C), bc).on(after_b + passage_block_text(D), bd)
    paths = {
        "ad": after_a + context(D, ad),
        "bc": after_b + context(C, bc),
        "bd": after_b + context(D, bd),
        "ac": after_a + context(C, ac),
    }
    finals = {"ad": ("Both are camelids.", "great"), "bc": ("They are related.", "fair"),
              "bd": ("Llamas and alpacas are related camelids.", "great"), "ac": ("Unclear.", "poor")}
    for key, prefix in paths.items():
        text, level = finals[key]
        engine.on(prefix + passage_block_text(E), segment(text, level, eos()))
        engine.on(prefix + passage_block_text(F), segment("Vicunas.", "poor", eos()))
    retriever = KeyedRetriever({
        Q: [A, B],
        Q + " Alpacas are smaller.": [C, D],
        Q + " Llamas are larger.": [C, D],
        Q + " Llamas guard sheep.": [E, F],
        Q + " Alpaca fleece is finer.": [E, F],
        Q + " Llamas work.": [E, F],
        Q + " Fleece is soft.": [E, F],
    })
    return engine, retriever


def test_beams_are_pruned_by_path_sum_and_retrieve_with_their_previous_segment():
    engine, retriever = _three_segment_engine()
    result, events = run(engine, retriever, k=2, max_segments=3)

    first, second = scored(events, 0), scored(events, 1)
    a, b = first[0].final_score, first[1].final_score
    ac, ad, bc, bd = (c.final_score for c in second)
    # The trap: by the last segment B+D outranks A+D; by the path sum A+D outranks B+D.
    assert bd > ad and a + ad > b + bd and b + bc > a + ad > a + ac
    # Two beams after segment 1 (A+D and B+C) each retrieve with the question and their own previous segment.
    assert retriever.queries == [
        Q, Q + " Alpacas are smaller.", Q + " Llamas are larger.", Q + " Alpaca fleece is finer.",
        Q + " Llamas guard sheep.",
    ]
    assert [e.segment_index for e in events if isinstance(e, PassagesRetrieved)] == [0, 1, 1, 2, 2]
    assert [s.passage for s in result.segments] == [A, D, E]
    assert result.text == "Alpacas are smaller. Llamas guard sheep. Both are camelids."
    assert result.score == pytest.approx(sum(s.score for s in result.segments) / 3)


def test_finished_paths_of_different_lengths_are_compared_by_their_mean():
    """SELFRAG_SPEC 6.5: a finished one-segment answer from the right passage beats a longer path whose first
    segment came from a wrong passage, although that path's sum is larger."""
    question = "How often should I water tomatoes in summer?"
    base = format_prompt(question)
    watering = Passage(id="garden_watering.txt#0", title="garden_watering.txt", source="garden_watering.txt",
                       text="Water tomatoes deeply two or three times a week in summer, daily in a heat wave.")
    camelids = Passage(id="camelids.md#alpacas", title="Camelids > Alpacas", source="camelids.md",
                       text="Alpacas are smaller than llamas and were bred for their fibre.")
    engine = ScriptedEngine().decide(base, RETRIEVE)
    right = segment("Water them deeply two or three times a week.", "great", eos())
    wrong = segment("Tomatoes need water.", "weak", more())
    engine.on(base + passage_block_text(watering), right).on(base + passage_block_text(camelids), wrong)
    engine.on(base + context(camelids, wrong) + passage_block_text(watering),
              segment("Water two or three times a week, daily in a heat wave.", "great", eos()))
    retriever = KeyedRetriever({question: [watering, camelids], question + " Tomatoes need water.": [watering]})
    result, events = run(engine, retriever, question, k=2)

    one = scored(events, 0)[0].final_score
    two = [scored(events, 0)[1].final_score, scored(events, 1)[0].final_score]
    assert sum(two) > one > sum(two) / 2  # the longer path has the larger sum and the smaller mean
    assert [s.passage for s in result.segments] == [watering]
    assert result.segments[0].critique.relevance_token == "[Relevant]"
    assert result.segments[0].critique.support_token == "[Fully supported]"
    assert result.segments[0].critique.utility_token == "[Utility:5]"
    assert result.text == "Water them deeply two or three times a week."
    assert result.score == pytest.approx(one)
    assert not result.abstained and not result.cut


def test_relevance_is_read_right_after_the_passage_not_at_a_later_relevance_token():
    """ISREL is the distribution at position 0; a [Relevant] the model emits later in the text is not it."""
    engine = ScriptedEngine().decide(BASE, RETRIEVE)
    late = reply(
        Step("Alpacas", -0.1, relevance(0.3)),  # the model hesitated here, then wrote text
        words(" are smaller."),
        judged("[Relevant]", relevance(0.99)),
        judged("[Fully supported]", group(SUPPORT, (0.9, 0.05, 0.05))),
        judged("[Utility:5]", group(UTILITY, (0.02, 0.03, 0.05, 0.1, 0.8))),
        eos(),
    )
    prompt = reply(
        judged("[Relevant]", relevance(0.8)),
        words("Llamas are larger."),
        judged("[Fully supported]", group(SUPPORT, (0.9, 0.05, 0.05))),
        judged("[Utility:5]", group(UTILITY, (0.02, 0.03, 0.05, 0.1, 0.8))),
        eos(),
    )
    engine.on(BASE + passage_block_text(A), late).on(BASE + passage_block_text(B), prompt)
    result, events = run(engine, KeyedRetriever({Q: [A, B]}), k=2)

    a, b = scored(events, 0)
    assert a.critique.relevance == pytest.approx(0.3) and a.critique.relevance_token is None
    assert b.critique.relevance == pytest.approx(0.8)
    assert result.segments[0].passage == B
    assert result.relevance_verdicts[A.id].relevance == pytest.approx(0.3)


# -- the decision at t > 0 (6.2) -----------------------------------------------------------------------------------


def test_always_retrieves_at_every_segment_even_when_the_model_would_not():
    engine = ScriptedEngine()
    no = tok("[No Retrieval]", math.log(0.9), SKIP)  # the model would go on without evidence
    a0 = segment("Alpacas are smaller.", "great", no)
    b0 = segment("Llamas are larger.", "good", no)
    engine.on(BASE + passage_block_text(A), a0).on(BASE + passage_block_text(B), b0)
    for prior, steps in ((A, a0), (B, b0)):
        engine.on(BASE + context(prior, steps) + passage_block_text(C), segment("Fleece.", "good", eos()))
    retriever = KeyedRetriever({Q: [A, B], Q + " Alpacas are smaller.": [C], Q + " Llamas are larger.": [C]})
    result, events = run(engine, retriever, k=2, mode="always")

    assert engine.next_token_calls == []
    later = [e.decision for e in events if isinstance(e, DecisionMade) and e.segment_index == 1]
    assert len(later) == 2 and all(d.retrieve and d.mode == "always" for d in later)
    assert retriever.queries == [Q, Q + " Alpacas are smaller.", Q + " Llamas are larger."]
    assert [s.retrieval for s in result.segments] == ["retrieval", "retrieval"]


def test_never_retrieves_at_no_segment_even_when_the_model_asks():
    engine = ScriptedEngine()
    engine.on(BASE + "[No Retrieval]", reply(words("Both are camelids."), more()))
    engine.on(BASE + "[No Retrieval]Both are camelids.[No Retrieval]", reply(words("Alpacas are smaller."), eos()))
    retriever = KeyedRetriever({})
    result, events = run(engine, retriever, mode="never")

    assert retriever.queries == [] and engine.next_token_calls == []
    assert [s.retrieval for s in result.segments] == ["no_retrieval", "no_retrieval"]
    assert all(not e.decision.retrieve for e in events if isinstance(e, DecisionMade))
    assert result.text == "Both are camelids. Alpacas are smaller."


def test_continue_to_use_evidence_wins_when_it_is_the_most_probable_retrieve_token():
    """p_C = 0.8, p_R = p_N = 0.1: Eq. 8 alone (0.5 > 0.2) would search again; the model chose to keep A."""
    keep = {"[Retrieval]": math.log(0.1), "[No Retrieval]": math.log(0.1), "[Continue to Use Evidence]": math.log(0.8)}
    engine = ScriptedEngine().decide(BASE, RETRIEVE)
    a0 = segment("Alpacas are smaller.", "great", tok("[Continue to Use Evidence]", math.log(0.8), keep))
    engine.on(BASE + passage_block_text(A), a0)
    then = BASE + context(A, a0) + "[Continue to Use Evidence]"
    engine.on(then, reply(words("They were bred for fibre."), judged("[Fully supported]", group(SUPPORT, (0.9, 0.05, 0.05))),
                          judged("[Utility:4]", group(UTILITY, (0.05, 0.05, 0.1, 0.6, 0.2))), eos()))
    retriever = KeyedRetriever({Q: [A]})
    result, events = run(engine, retriever, k=1)

    decision = [e.decision for e in events if isinstance(e, DecisionMade)][1]
    assert decision.p_retrieval == pytest.approx(0.5) and decision.p_retrieval > decision.threshold
    assert decision.continue_evidence and not decision.retrieve
    assert decision.logprob_continue == pytest.approx(math.log(0.8))
    assert retriever.queries == [Q] and engine.generate_calls[1] == [then]
    assert [s.retrieval for s in result.segments] == ["retrieval", "continue"]
    assert [s.citation for s in result.segments] == [1, 1]


def test_continue_without_a_passage_in_context_falls_back_to_the_threshold():
    """After a [No Retrieval] segment there is no current passage: p_C being the largest does not count, and
    p_R / (p_R + p_N) = 0.5 > 0.2 retrieves."""
    keep = {"[Retrieval]": math.log(0.1), "[No Retrieval]": math.log(0.1), "[Continue to Use Evidence]": math.log(0.8)}
    engine = ScriptedEngine().decide(BASE, SKIP)
    engine.on(BASE + "[No Retrieval]", reply(words("Both are camelids."), tok("[Continue to Use Evidence]", math.log(0.8), keep)))
    engine.on(BASE + "[No Retrieval]Both are camelids." + passage_block_text(A), segment("Alpacas are smaller.", "great", eos()))
    retriever = KeyedRetriever({Q + " Both are camelids.": [A]})
    result, events = run(engine, retriever, k=1)

    decision = [e.decision for e in events if isinstance(e, DecisionMade)][1]
    assert decision.retrieve and not decision.continue_evidence
    assert [s.retrieval for s in result.segments] == ["no_retrieval", "retrieval"]


# -- which terms each kind of segment gets (6.1) ------------------------------------------------------------------


def test_no_retrieval_segment_gets_no_support_term_even_when_the_model_emits_one():
    engine = ScriptedEngine().decide(BASE, SKIP)
    steps = reply(
        words("Alpacas are smaller."),
        judged("[Fully supported]", group(SUPPORT, (0.9, 0.05, 0.05))),
        judged("[Utility:4]", group(UTILITY, (0.05, 0.05, 0.1, 0.6, 0.2))),
        eos(),
    )
    engine.on(BASE + "[No Retrieval]", steps)
    result, _ = run(engine, KeyedRetriever({}))

    (seg,) = result.segments
    assert seg.critique.support is None and seg.critique.support_token is None and seg.critique.relevance is None
    seq = math.exp(sum(step.logprob for step in steps) / len(steps))
    use = (-1 * 0.05 - 0.5 * 0.05 + 0.5 * 0.6 + 1 * 0.2) / 1.0
    assert seg.score == pytest.approx(seq + 0.5 * use)


# -- limits (6.3) ---------------------------------------------------------------------------------------------------


def test_a_segment_cut_by_max_new_tokens_goes_on_with_the_same_passage():
    engine = ScriptedEngine().decide(BASE, RETRIEVE)
    steps = segment("Alpacas are smaller than llamas and were bred for fibre.", "great", eos())
    engine.on(BASE + passage_block_text(A), steps)
    result, events = run(engine, KeyedRetriever({Q: [A]}), k=1, max_new_tokens=8)

    assert len(steps) > 16  # three calls of at most 8 tokens
    assert engine.generate_max_new_tokens == [8, 8, 8]
    assert engine.generate_calls[1] == [BASE + passage_block_text(A) + "".join(s.token for s in steps[:8])]
    assert len([e for e in events if isinstance(e, DecisionMade)]) == 1  # no new decision inside a segment
    (seg,) = result.segments
    assert seg.text == "Alpacas are smaller than llamas and were bred for fibre."
    assert seg.critique.support_token == "[Fully supported]" and seg.critique.utility_token == "[Utility:5]"
    assert seg.candidates[0].finish_reason == "eos" and not seg.cut and not result.cut
    assert result.cut_segment is None and result.cut_reason is None


def test_an_answer_that_runs_out_of_its_token_budget_is_marked_cut():
    """A [No Retrieval] answer longer than max_segments x max_new_tokens: returned, streamed, and marked cut."""
    engine = ScriptedEngine().decide(BASE, SKIP)
    long_text = " ".join(f"word{i}" for i in range(20))
    engine.on(BASE + "[No Retrieval]", reply(words(long_text), eos()))
    result, events = run(engine, KeyedRetriever({}), max_new_tokens=5, max_segments=3)

    assert engine.generate_max_new_tokens == [5, 5, 5]
    (seg,) = result.segments
    assert seg.retrieval == "no_retrieval" and seg.cut
    assert result.text == "word0 word1 word2 word3 word4 word5 word6 word7"
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == result.text
    assert result.cut and result.cut_segment == 0
    assert "15 generated tokens" in result.cut_reason and "decoding.max_new_tokens" in result.cut_reason
    data = result.to_dict()
    assert (data["cut"], data["cut_segment"], data["segments"][0]["cut"]) == (True, 0, True)


def test_a_passage_too_long_for_the_context_is_cut_for_its_own_candidate_only():
    """Even a title longer than the room left is shortened: the other candidates and the answer go on."""
    engine = ScriptedEngine(max_context=120).decide(BASE, RETRIEVE)
    huge = Passage(id="notes.md#0", title=" ".join(["llama"] * 60), text="Alpacas are smaller.", source="notes.md")
    engine.on(lambda prompt: prompt.endswith("</paragraph>"), segment("Alpacas are smaller.", "good", eos()))
    result, events = run(engine, KeyedRetriever({Q: [huge, A]}), k=2, max_new_tokens=40)

    (prompts,) = engine.generate_calls
    assert len(prompts) == 2 and prompts[1] == BASE + passage_block_text(A)
    assert prompts[0].startswith(BASE + "[Retrieval]<paragraph>llama llama") and prompts[0].endswith("</paragraph>")
    huge_candidate, a_candidate = scored(events, 0)
    assert huge_candidate.passage_truncated and not a_candidate.passage_truncated
    assert not result.cut


def test_a_beam_whose_next_segment_does_not_fit_ends_cut_and_the_others_go_on():
    """Beam A's long first segment leaves no room for another segment in a small context; beam B goes on. The
    answer is returned, and when A's path wins it is marked cut after its segment."""
    engine = ScriptedEngine(max_context=200).decide(BASE, RETRIEVE)
    long_text = " ".join(f"fact{i}" for i in range(55))
    a0 = segment(long_text, "great", more())
    b0 = segment("Llamas are larger.", "fair", more())
    engine.on(BASE + passage_block_text(A), a0).on(BASE + passage_block_text(B), b0)
    engine.on(BASE + context(B, b0) + passage_block_text(C), segment("Fleece.", "weak", eos()))
    retriever = KeyedRetriever({Q: [A, B], Q + " Llamas are larger.": [C]})
    result, events = run(engine, retriever, k=2, max_new_tokens=60, max_segments=3)

    assert retriever.queries == [Q, Q + " Llamas are larger."]  # A's path could not take a next segment
    assert [s.passage for s in result.segments] == [A]
    assert result.text == long_text and not result.segments[0].cut
    assert result.cut and result.cut_segment == 0
    assert "does not fit the 200-token context" in result.cut_reason
    assert len([e for e in events if isinstance(e, DecisionMade) and e.segment_index == 1]) == 2


def test_an_answer_whose_budget_ends_where_the_model_asks_for_more_is_marked_cut_after_that_segment():
    engine = ScriptedEngine().decide(BASE, SKIP)
    engine.on(BASE + "[No Retrieval]", reply(words("w0 w1 w2 w3 w4"), tok("[No Retrieval]", math.log(0.9), SKIP)))
    result, _ = run(engine, KeyedRetriever({}), max_new_tokens=5, max_segments=2)

    assert engine.generate_max_new_tokens == [5, 5]  # the segment used the whole budget of 10, stop token included
    (seg,) = result.segments
    assert result.text == "w0 w1 w2 w3 w4" and not seg.cut
    assert result.cut and result.cut_segment == 0
    assert result.cut_reason.startswith("The answer stops after segment 1, unfinished")
