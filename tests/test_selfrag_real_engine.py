"""The decoder's limits on the real transformers engine with the tiny demo model (SELFRAG_SPEC 6.3).

A segment cut by `max_new_tokens` goes on from the ids it generated; on a real tokenizer and model that must give
exactly the answer one long call gives, and an answer that runs out of its budget must say it was cut.
"""

from __future__ import annotations

import pytest

from selfrag_tui.application.locations import sample_docs_path
from selfrag_tui.selfrag.decoder import SelfRagDecoder
from selfrag_tui.selfrag.settings import DecodingSettings
from selfrag_tui.selfrag.types import Passage

QUESTION = "Can you tell me the difference between llamas and alpacas?"
ANSWER = (
    "Alpacas are considerably smaller than llamas, and unlike llamas, they were not bred to be working animals, "
    "but were bred specifically for their fiber."
)


@pytest.fixture(scope="module")
def camelid_passages() -> list[Passage]:
    """The alpaca passage and the one before it, chunked as the store chunks them (the ingest defaults)."""
    from ingest.chunking import chunk_document
    from ingest.loaders import load_file

    path = sample_docs_path() / "camelids.md"
    chunks = list(chunk_document(load_file(path), chunk_words=150, overlap_words=30))
    gold = next(i for i, c in enumerate(chunks) if "Alpacas are considerably smaller" in c.text)
    return [
        Passage(id=f"camelids.md#{i}", title=chunks[i].title, text=chunks[i].text, source=str(path))
        for i in (gold, gold - 1)
    ]


def test_a_segment_continued_after_max_new_tokens_is_the_answer_of_one_long_call(tiny_engine, camelid_passages):
    decoder = SelfRagDecoder(tiny_engine, lambda query, k: camelid_passages[:k])
    whole = decoder.answer(QUESTION, settings=DecodingSettings(k=2))
    stepped = decoder.answer(QUESTION, settings=DecodingSettings(k=2, max_new_tokens=8))

    assert whole.text == ANSWER and whole.segments[0].candidates[0].finish_reason == "eos"
    assert len(whole.segments[0].candidates[0].token_ids) > 2 * 8  # so the stepped answer took several calls
    assert stepped.text == whole.text and not stepped.cut
    assert stepped.segments[0].candidates[0].token_ids == whole.segments[0].candidates[0].token_ids
    assert stepped.score == pytest.approx(whole.score, abs=1e-4)
    assert stepped.segments[0].critique.support_token == "[Fully supported]"


def test_an_answer_past_its_token_budget_on_the_real_model_is_marked_cut(tiny_engine, camelid_passages):
    decoder = SelfRagDecoder(tiny_engine, lambda query, k: camelid_passages[:k])
    cut = decoder.answer(QUESTION, settings=DecodingSettings(k=2, max_new_tokens=8, max_segments=2))

    assert ANSWER.startswith(cut.text) and len(cut.text) < len(ANSWER)
    assert cut.cut and cut.cut_segment == 0 and cut.segments[0].cut
    assert len(cut.segments[0].candidates[0].token_ids) == 16
    assert "16 generated tokens" in cut.cut_reason
