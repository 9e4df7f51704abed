"""The Self-RAG model as a relevance judge: it was trained to say [Relevant] or [Irrelevant] right after
`[Retrieval]<paragraph>...</paragraph>`, so one next-token step per passage scores it for the question.

Used to rerank the search's top candidates before the decoder sees K of them: no extra model is needed, and the
judge is the one that will read the passages. One forward pass per candidate (batched), so it is off by default
on a CPU (`decoding.rerank_candidates`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

from selfrag_tui.selfrag.prompts import format_prompt, passage_block_text

if TYPE_CHECKING:
    from selfrag_tui.engines.base import Engine
    from selfrag_tui.reflection import ReflectionVocab
    from selfrag_tui.selfrag.types import Passage


def relevance_scores(engine: "Engine", vocab: "ReflectionVocab", question: str,
                     passages: Sequence["Passage"]) -> list[float]:
    """log P([Relevant]) among {[Relevant], [Irrelevant]} after each passage, in the order given."""
    if not passages:
        return []
    prompts = [engine.encode(format_prompt(question) + passage_block_text(p)) for p in passages]
    rows = engine.next_token_logprobs(prompts, [vocab.relevant, vocab.irrelevant])
    scores = []
    for row in rows:
        relevant, irrelevant = row[vocab.relevant], row[vocab.irrelevant]
        top = max(relevant, irrelevant)
        scores.append(relevant - (top + math.log(math.exp(relevant - top) + math.exp(irrelevant - top))))
    return scores


def rerank(engine: "Engine", vocab: "ReflectionVocab", question: str, passages: Sequence["Passage"],
           keep: int) -> list["Passage"]:
    """The `keep` passages the model judges most relevant, best first; ties keep the search's order."""
    scores = relevance_scores(engine, vocab, question, passages)
    order = sorted(range(len(passages)), key=lambda i: (-scores[i], i))
    return [passages[i] for i in order[:keep]]


__all__ = ["relevance_scores", "rerank"]
