"""Compare two engines on the same token-id prompts the way the decoder reads them: the retrieval decision on a
base prompt, and the generated tokens and ISREL/ISSUP/ISUSE critiques of passage candidates."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from selfrag_tui.selfrag import scoring
from selfrag_tui.selfrag.decision import decide_from_logprobs
from selfrag_tui.selfrag.prompts import format_prompt
from selfrag_tui.reflection import ReflectionVocab

ROOT = Path(__file__).resolve().parents[1]
# Engines run with an f32 attention cache; f16 alone moves reflection logprobs by up to ~0.01.
PROBABILITY_TOLERANCE = 1e-3


def _chunk_with(evidence: str, source: str):
    """The demo corpus chunk holding `evidence`, as the store would cut it (title and text)."""
    from ingest.chunking import chunk_document
    from ingest.loaders import load_file

    chunks = chunk_document(load_file(ROOT / source))
    return next((c for c in chunks if evidence[:60] in c.text), chunks[0])


def sample_cases(limit: int = 4) -> list[tuple[str, str, str]]:
    """(question, passage title, passage text): demo questions with the chunk holding their answer, and the first
    question with another question's chunk (what the model should judge irrelevant)."""
    data = json.loads((ROOT / "scripts" / "sample_qa.json").read_text(encoding="utf-8"))
    items = data["factual"]
    cases = []
    for item in items[:limit]:
        chunk = _chunk_with(item["evidence"], item["source"])
        cases.append((item["question"], chunk.title, chunk.text))
    other = next(i for i in items if i["source"] != items[0]["source"])
    chunk = _chunk_with(other["evidence"], other["source"])
    cases.append((items[0]["question"], chunk.title, chunk.text))
    return cases


@dataclass
class Reading:
    retrieve: list[bool]
    candidate_tokens: list[list[int]]
    critique_tokens: list[tuple[str | None, str | None, str | None]]
    probabilities: list[dict[str, float]]
    finish: list[str]


def chitchat_prompts(limit: int = 2) -> list[str]:
    data = json.loads((ROOT / "scripts" / "sample_qa.json").read_text(encoding="utf-8"))
    return [item["prompt"] for item in data["chitchat"][:limit]]


def build_prompts(encode, cases) -> tuple[list[list[int]], list[list[int]]]:
    """Base prompts (the cases' questions and two chit-chat prompts, for the retrieval decision) and one
    passage prompt per case."""
    questions = [q for q, _, _ in cases] + chitchat_prompts()
    base = [encode(format_prompt(q)) for q in questions]
    passages = [
        encode(format_prompt(q) + f"[Retrieval]<paragraph>{title}\n{text}</paragraph>") for q, title, text in cases
    ]
    return base, passages


def read(engine, vocab: ReflectionVocab, base: list[list[int]], passages: list[list[int]]) -> Reading:
    decisions = engine.next_token_logprobs(base, [vocab.retrieval, vocab.no_retrieval])
    generations = engine.generate(
        passages, max_new_tokens=40, stop_token_ids=vocab.retrieve_ids, score_ids=vocab.score_ids
    )
    critiques = [scoring.critique(g, vocab, with_passage=True) for g in generations]
    retrieval = [decide_from_logprobs(d[vocab.retrieval], d[vocab.no_retrieval], threshold=0.2) for d in decisions]
    return Reading(
        retrieve=[r.retrieve for r in retrieval],
        candidate_tokens=[g.token_ids for g in generations],
        critique_tokens=[(c.relevance_token, c.support_token, c.utility_token) for c in critiques],
        probabilities=[
            {**c.probabilities, "relevance": c.relevance or 0.0, "support": c.support or 0.0,
             "utility": c.utility or 0.0}
            for c in critiques
        ]
        + [{"p_retrieval": r.p_retrieval} for r in retrieval],
        finish=[g.finish_reason for g in generations],
    )


def assert_agree(reference: Reading, other: Reading, *, eos_dropped: int | None = None) -> None:
    """`eos_dropped`: the other engine cannot return a final EOS (llama.cpp's server leaves it out)."""
    assert other.retrieve == reference.retrieve
    expected_tokens = reference.candidate_tokens
    if eos_dropped is not None:
        expected_tokens = [t[:-1] if t and t[-1] == eos_dropped else t for t in expected_tokens]
    assert other.candidate_tokens == expected_tokens
    assert other.critique_tokens == reference.critique_tokens
    assert other.finish == reference.finish
    for ref_probs, other_probs in zip(reference.probabilities, other.probabilities, strict=True):
        assert ref_probs.keys() == other_probs.keys()
        for key, value in ref_probs.items():
            assert abs(other_probs[key] - value) <= PROBABILITY_TOLERANCE, (key, value, other_probs[key])


