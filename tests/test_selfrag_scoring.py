"""Critique scoring of one generation: the spec's hand-computed test vector and the -100 / absent-token rules."""

from __future__ import annotations

import math

import pytest

from scripted_engine import ScriptedEngine
from selfrag_tui.selfrag.settings import DecodingSettings
from selfrag_tui.engines.base import Generation
from selfrag_tui.selfrag.scoring import critique, final_score, normalise, sequence_score
from selfrag_tui.reflection import ReflectionVocab

ENGINE = ScriptedEngine()
VOCAB = ReflectionVocab.from_engine(ENGINE)
WORD = ENGINE.encode("word", add_bos=False)[0]

RELEVANCE = {"[Relevant]": -0.1, "[Irrelevant]": -2.5}
SUPPORT = {"[Fully supported]": -0.2, "[Partially supported]": -1.8, "[No support / Contradictory]": -4.0}
UTILITY = {f"[Utility:{k}]": lp for k, lp in zip(range(1, 6), (-6.0, -5.0, -3.0, -1.5, -0.3))}


def generation(tokens: list[int | str], scores: dict[int, dict[str, float]], cumulative: float) -> Generation:
    ids = [VOCAB.ids[t] if isinstance(t, str) else t for t in tokens]
    return Generation(
        token_ids=ids,
        text=ENGINE.decode(ids),
        token_logprobs=[cumulative / max(len(ids), 1)] * len(ids),
        score_logprobs=[{VOCAB.ids[t]: lp for t, lp in scores.get(i, {}).items()} for i in range(len(ids))],
        cumulative_logprob=cumulative,
        finish_reason="eos",
    )


def spec_vector() -> Generation:
    """12 tokens: [Relevant], 8 words, [Fully supported], [Utility:5], EOS; cumulative logprob -3.0."""
    tokens: list[int | str] = ["[Relevant]", *[WORD] * 8, "[Fully supported]", "[Utility:5]", ENGINE.eos_token_id]
    return generation(tokens, {0: RELEVANCE, 9: SUPPORT, 10: UTILITY}, cumulative=-3.0)


def test_spec_test_vector_components():
    review = critique(spec_vector(), VOCAB, with_passage=True)
    assert review.relevance == pytest.approx(0.916827, abs=1e-6)
    assert review.support == pytest.approx(0.899271, abs=1e-6)
    assert review.utility == pytest.approx(0.827542, abs=1e-6)
    assert sequence_score(spec_vector()) == pytest.approx(0.778801, abs=1e-6)
    assert (review.relevance_token, review.support_token, review.utility_token) == (
        "[Relevant]",
        "[Fully supported]",
        "[Utility:5]",
    )


@pytest.mark.parametrize(
    ("weights", "use_seqscore", "expected"),
    [((1.0, 1.0, 1.0), True, 3.422441), ((1.0, 1.0, 0.5), True, 3.008670), ((1.0, 1.0, 0.5), False, 2.229869)],
)
def test_spec_test_vector_final_scores(weights, use_seqscore, expected):
    gen = spec_vector()
    settings = DecodingSettings(w_rel=weights[0], w_sup=weights[1], w_use=weights[2], use_seqscore=use_seqscore)
    review = critique(gen, VOCAB, with_passage=True)
    assert final_score(review, sequence_score(gen), settings) == pytest.approx(expected, abs=1e-6)


def test_default_weights_are_the_papers():
    settings = DecodingSettings()
    assert (settings.w_rel, settings.w_sup, settings.w_use, settings.use_seqscore) == (1.0, 1.0, 0.5, True)
    assert settings.max_new_tokens >= 100


def test_group_probabilities_are_normalised_for_the_ui():
    review = critique(spec_vector(), VOCAB, with_passage=True)
    p = review.probabilities
    assert p["[Relevant]"] + p["[Irrelevant]"] == pytest.approx(1.0)
    assert sum(p[t] for t in SUPPORT) == pytest.approx(1.0)
    assert sum(p[t] for t in UTILITY) == pytest.approx(1.0)
    assert p["[Fully supported]"] == pytest.approx(math.exp(-0.2) / sum(math.exp(v) for v in SUPPORT.values()))


def test_absent_support_and_utility_tokens_score_zero():
    gen = generation(["[Relevant]", WORD, WORD], {0: RELEVANCE}, cumulative=-0.6)
    review = critique(gen, VOCAB, with_passage=True)
    assert review.support == 0.0 and review.support_token is None
    assert review.utility == 0.0 and review.utility_token is None
    expected = math.exp(-0.2) + review.relevance
    assert final_score(review, sequence_score(gen), DecodingSettings()) == pytest.approx(expected)


def test_missing_logprobs_count_as_minus_100():
    # A top-k engine returned only [Relevant] at position 0: [Irrelevant] counts as -100.
    gen = generation(["[Relevant]", WORD], {0: {"[Relevant]": -3.0}}, cumulative=-3.2)
    review = critique(gen, VOCAB, with_passage=True)
    assert review.relevance == pytest.approx(1.0 / (1.0 + math.exp(-100.0 + 3.0)), rel=1e-12)
    # Both missing: -100 against -100 is an even split.
    gen = generation([WORD, WORD], {}, cumulative=-1.0)
    assert critique(gen, VOCAB, with_passage=True).relevance == pytest.approx(0.5)


def test_support_and_utility_are_read_at_the_first_such_token():
    tokens: list[int | str] = ["[Relevant]", "[No support / Contradictory]", WORD, "[Fully supported]", "[Utility:1]", "[Utility:5]"]
    scores = {
        0: RELEVANCE,
        1: {"[No support / Contradictory]": -0.1, "[Fully supported]": -3.0},
        3: {"[Fully supported]": -0.01},
        4: {"[Utility:1]": -0.1},
        5: {"[Utility:5]": -0.01},
    }
    review = critique(generation(tokens, scores, cumulative=-1.0), VOCAB, with_passage=True)
    assert review.support_token == "[No support / Contradictory]"
    # position 1: Full -3.0, Partial -100, NoSupport -0.1
    full, nos = math.exp(-3.0), math.exp(-0.1)
    assert review.support == pytest.approx(full / (full + nos + math.exp(-100.0)))
    assert review.utility_token == "[Utility:1]"
    assert review.utility == pytest.approx(-1.0, abs=1e-9)


def test_empty_generation_scores_without_error():
    gen = generation([], {}, cumulative=0.0)
    review = critique(gen, VOCAB, with_passage=True)
    assert review.relevance == pytest.approx(0.5)
    assert review.relevance_token is None
    assert (review.support, review.utility) == (0.0, 0.0)
    assert sequence_score(gen) == 1.0  # exp(0 / max(0, 1))


def test_no_passage_means_no_relevance_and_no_support_even_when_generated():
    # SELFRAG_SPEC 6.1: a [No Retrieval] segment has no evidence, so a support token it emits counts for nothing.
    gen = generation(
        [WORD, "[Fully supported]", "[Utility:4]"],
        {1: {"[Fully supported]": -0.05}, 2: {"[Utility:4]": -0.2}},
        cumulative=-0.4,
    )
    review = critique(gen, VOCAB, with_passage=False)
    assert review.relevance is None and review.support is None and review.support_token is None
    assert "[Fully supported]" not in review.probabilities
    assert review.utility == pytest.approx(0.5, abs=1e-6)


def test_continued_evidence_gets_support_but_no_relevance():
    # SELFRAG_SPEC 6.1: after [Continue to Use Evidence] no </paragraph> precedes the text, so position 0 is not a
    # relevance judgement; the passage in context still makes support apply (0 when no support token is generated).
    gen = generation([WORD, "[Partially supported]"], {0: RELEVANCE, 1: {"[Partially supported]": -0.01}}, cumulative=-0.3)
    review = critique(gen, VOCAB, with_passage=False, evidence=True)
    assert review.relevance is None and review.relevance_token is None
    assert review.support_token == "[Partially supported]"
    assert review.support == pytest.approx(0.5, abs=1e-6)
    bare = critique(generation([WORD], {0: RELEVANCE}, cumulative=-0.1), VOCAB, with_passage=False, evidence=True)
    assert bare.support == 0.0 and bare.relevance is None


def test_normalise_is_stable_for_very_negative_logprobs():
    assert normalise([-2000.0, -2000.0 - math.log(3.0)]) == pytest.approx([0.75, 0.25])
