"""Compare two engines on the same token-id prompts the way the decoder reads them: the retrieval decision on a
base prompt, and the generated tokens and ISREL/ISSUP/ISUSE critiques of passage candidates."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from selfrag_tui.selfrag import scoring
from selfrag_tui.selfrag.decision import decide_from_logprobs
from selfrag_tui.selfrag.prompts import format_prompt
from selfrag_tui.selfrag.vocab import ReflectionVocab

ROOT = Path(__file__).resolve().parents[1]
PROBABILITY_TOLERANCE = 1e-3


def sample_cases(limit: int = 4) -> list[tuple[str, str, str]]:
    """(question, passage title, passage text) from the demo question set, plus an unrelated passage."""
    data = json.loads((ROOT / "scripts" / "sample_qa.json").read_text(encoding="utf-8"))
    cases = []
    for item in data["factual"][:limit]:
        cases.append((item["question"], item["location"], item["evidence"]))
    first = data["factual"][0]
    cases.append((first["question"], "Garden > Watering", "Water tomatoes deeply twice a week in dry weeks."))
    return cases


@dataclass
class Reading:
    retrieve: bool
    p_retrieval: float
    candidate_tokens: list[list[int]]
    critique_tokens: list[tuple[str | None, str | None, str | None]]
    probabilities: list[dict[str, float]]
    finish: list[str]


def build_prompts(encode, cases) -> tuple[list[list[int]], list[list[int]]]:
    base = [encode(format_prompt(q)) for q, _, _ in cases]
    passages = [
        encode(format_prompt(q) + f"[Retrieval]<paragraph>{title}\n{text}</paragraph>") for q, title, text in cases
    ]
    return base, passages


def read(engine, vocab: ReflectionVocab, base: list[list[int]], passages: list[list[int]]) -> Reading:
    decisions = engine.next_token_logprobs(base, [vocab.retrieval, vocab.no_retrieval])
    first = decide_from_logprobs(decisions[0][vocab.retrieval], decisions[0][vocab.no_retrieval], threshold=0.2)
    generations = engine.generate(
        passages, max_new_tokens=40, stop_token_ids=vocab.retrieve_ids, score_ids=vocab.score_ids
    )
    critiques = [scoring.critique(g, vocab, with_passage=True) for g in generations]
    retrieve_probabilities = []
    for d in decisions:
        r = decide_from_logprobs(d[vocab.retrieval], d[vocab.no_retrieval], threshold=0.2)
        retrieve_probabilities.append({"p_retrieval": r.p_retrieval, "retrieve": float(r.retrieve)})
    return Reading(
        retrieve=first.retrieve,
        p_retrieval=first.p_retrieval,
        candidate_tokens=[g.token_ids for g in generations],
        critique_tokens=[(c.relevance_token, c.support_token, c.utility_token) for c in critiques],
        probabilities=[
            {**c.probabilities, "relevance": c.relevance or 0.0, "support": c.support or 0.0,
             "utility": c.utility or 0.0}
            for c in critiques
        ]
        + retrieve_probabilities,
        finish=[g.finish_reason for g in generations],
    )


def assert_agree(reference: Reading, other: Reading) -> None:
    assert other.retrieve == reference.retrieve
    assert other.candidate_tokens == reference.candidate_tokens
    assert other.critique_tokens == reference.critique_tokens
    assert other.finish == reference.finish
    for ref_probs, other_probs in zip(reference.probabilities, other.probabilities, strict=True):
        assert ref_probs.keys() == other_probs.keys()
        for key, value in ref_probs.items():
            assert abs(other_probs[key] - value) <= PROBABILITY_TOLERANCE, (key, value, other_probs[key])


