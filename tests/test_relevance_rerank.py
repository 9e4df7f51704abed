"""The model as relevance judge: one [Relevant]/[Irrelevant] step per passage reorders the search's candidates,
and the session's retriever uses it only when `decoding.rerank_candidates` asks for it."""

from __future__ import annotations

from selfrag_tui.application.session import Session
from selfrag_tui.application.settings import Settings
from selfrag_tui.reflection import ReflectionVocab
from selfrag_tui.selfrag.relevance import relevance_scores, rerank
from selfrag_tui.selfrag.types import Passage
from tests.scripted_engine import ScriptedEngine

QUESTION = "How often are alpacas shorn?"
PASSAGES = [
    Passage(id="p-bread", title="Bread", text="Sourdough needs a lively starter.", source="bread.md"),
    Passage(id="p-alpaca", title="Alpacas", text="Alpacas are shorn once every year.", source="alpacas.md"),
    Passage(id="p-bike", title="Bicycle", text="Check tyre pressure weekly.", source="bike.md"),
]


def scripted() -> ScriptedEngine:
    engine = ScriptedEngine()
    engine.decide(lambda p: "Sourdough" in p, {"[Relevant]": -2.0, "[Irrelevant]": -0.2})
    engine.decide(lambda p: "shorn once" in p, {"[Relevant]": -0.1, "[Irrelevant]": -3.0})
    engine.decide(lambda p: "tyre" in p, {"[Relevant]": -4.0, "[Irrelevant]": -0.05})
    return engine


def test_scores_are_the_relevant_share_and_rerank_keeps_the_best() -> None:
    engine = scripted()
    vocab = ReflectionVocab.from_engine(engine)
    scores = relevance_scores(engine, vocab, QUESTION, PASSAGES)
    assert scores[1] > scores[0] > scores[2] and all(s <= 0 for s in scores)
    assert [p.id for p in rerank(engine, vocab, QUESTION, PASSAGES, keep=2)] == ["p-alpaca", "p-bread"]
    # One batched call per judgement, each prompt the question then the passage in the trained format.
    assert len(engine.next_token_calls) == 2
    call = engine.next_token_calls[-1]
    assert len(call) == 3
    assert call[1].endswith("[Retrieval]<paragraph>Alpacas\nAlpacas are shorn once every year.</paragraph>")
    assert QUESTION in call[1]


def test_session_reranks_only_when_the_setting_asks(tmp_path) -> None:
    engine = scripted()
    asked: list[int] = []

    def retriever(query: str, k: int) -> list[Passage]:
        asked.append(k)
        return PASSAGES[:k]

    off = Session(Settings(), engine=engine, retriever=retriever)
    assert [p.id for p in off.retrieve(QUESTION, 1)] == ["p-bread"] and asked == [1]
    assert engine.next_token_calls == []
    on = Session(Settings().with_updates({"decoding": {"rerank_candidates": 3}}, source="test"), engine=engine,
                 retriever=retriever)
    assert [p.id for p in on.retrieve(QUESTION, 1)] == ["p-alpaca"] and asked[-1] == 3


def test_retrieved_passages_keep_their_search_rank_through_the_models_rerank() -> None:
    """The source panel says where search put each passage: 1, 2, 3 in its order, and a passage the model
    promoted keeps the place search gave it."""
    def retriever(query: str, k: int) -> list[Passage]:
        return PASSAGES[:k]

    plain = Session(Settings(), engine=scripted(), retriever=retriever)
    assert [(p.id, p.rank) for p in plain.retrieve(QUESTION, 3)] == [("p-bread", 1), ("p-alpaca", 2), ("p-bike", 3)]
    judged = Session(Settings().with_updates({"decoding": {"rerank_candidates": 3}}, source="test"),
                     engine=scripted(), retriever=retriever)
    assert [(p.id, p.rank) for p in judged.retrieve(QUESTION, 2)] == [("p-alpaca", 2), ("p-bread", 1)]


def test_the_tiny_model_judges_relevance(tiny_engine) -> None:
    vocab = ReflectionVocab.from_engine(tiny_engine)
    scores = relevance_scores(tiny_engine, vocab, QUESTION, PASSAGES)
    assert len(scores) == 3 and all(-50 < s <= 0 for s in scores)
    kept = rerank(tiny_engine, vocab, QUESTION, PASSAGES, keep=2)
    assert len(kept) == 2 and {p.id for p in kept} <= {p.id for p in PASSAGES}
    best = max(range(3), key=lambda i: scores[i])
    assert kept[0].id == PASSAGES[best].id
