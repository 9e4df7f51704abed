"""The sentence reranker on the real embedding model and a real store: a passage whose one sentence answers the
question moves above passages that only share its subject, and each passage's sentences are embedded once."""

from __future__ import annotations

from pathlib import Path

from ingest import retrieval
from ingest.pipeline import ingest_paths
from ingest.store import DocumentStore
from ingest.types import SearchHit

QUESTION = "At what temperature does the kiln fire stoneware glaze?"
ANSWERING = (
    "The studio opened in 2009 in a converted barn. Members share the wheels and the slab roller on weekdays. "
    "Clay is bought by the tonne from a supplier in the next county. The kiln fires stoneware glaze at 1280 "
    "degrees Celsius over about eleven hours. Tools are cleaned and hung on the pegboard after every session. "
    "Membership is renewed each January, and beginners take a six-week course first."
)
SUBJECT_ONLY = (
    "Stoneware glaze recipes in the studio book use feldspar, silica and whiting. Glaze buckets are stirred "
    "before use, and the kiln shelves are coated with kiln wash. Members label their glaze tests with the "
    "recipe number. Glaze faults such as crawling and pinholes are discussed at the monthly meeting."
)
OTHERS = [
    "The pottery studio's car park is shared with the bakery next door, so members park at the back.",
    "Raku evenings are held twice a year in the garden, weather permitting, with a waiting list.",
    "The studio newsletter lists exhibitions, new members and the cleaning rota for the month.",
]


def hit(index: int, text: str, score: float) -> SearchHit:
    return SearchHit(chunk_id=f"doc{index}-0-0", doc_id=f"doc{index}", path=f"/notes/{index}.md", doc_title="",
                     title="", text=text, ordinal=0, page_start=None, page_end=None, heading=None, score=score)


def test_sentences_splits_on_sentence_ends_and_lines() -> None:
    text = "First point here. Second point there!\n- a list item of words\nshort\nWhy is it so? Because it is."
    assert retrieval.sentences(text) == [
        "First point here.", "Second point there!", "- a list item of words", "Why is it so?", "Because it is.",
    ]
    assert retrieval.sentences("ok") == ["ok"]


def test_the_passage_with_the_answering_sentence_moves_first(embedder) -> None:
    # The search put the passage that only shares the subject just ahead: its words match the question more.
    hits = [hit(0, SUBJECT_ONLY, 1.0), hit(1, ANSWERING, 0.95)] + \
        [hit(i + 2, t, 0.7 - 0.05 * i) for i, t in enumerate(OTHERS)]
    reranker = retrieval.SentenceReranker(embedder)
    ranked = reranker.rerank(QUESTION, hits, k=3)
    assert [h.doc_id for h in ranked[:2]] == ["doc1", "doc0"]
    assert len(ranked) == 3
    assert ranked[0].score > ranked[1].score > ranked[2].score
    # Each result names the sentence that matched: the answering one, out of the passage's six.
    assert ranked[0].match == "The kiln fires stoneware glaze at 1280 degrees Celsius over about eleven hours."
    assert all(h.match in retrieval.sentences(h.text) for h in ranked)
    assert retrieval.match_span(ANSWERING, ranked[0].match) == (ANSWERING.index("The kiln"),
                                                                  ANSWERING.index("Tools are") - 1)
    assert retrieval.match_span("The kiln fires\n  stoneware", "The kiln fires stoneware") == (0, 26)
    assert retrieval.match_span(ANSWERING, "not in it") is None
    # Without the weight on sentences, the search's order stands.
    unweighted = retrieval.SentenceReranker(embedder, weight=0.0).rerank(QUESTION, hits, k=5)
    assert [h.doc_id for h in unweighted] == [h.doc_id for h in hits]


def test_sentence_vectors_are_embedded_once_per_passage(embedder, monkeypatch) -> None:
    reranker = retrieval.SentenceReranker(embedder)
    embedded: list[str] = []
    original = embedder.embed

    def counting(texts, **options):
        embedded.extend(texts)
        return original(texts, **options)

    monkeypatch.setattr(embedder, "embed", counting)  # the real model, the texts it embeds recorded
    questions = {QUESTION, "How long does a firing take?"}

    def sentences_embedded() -> list[str]:
        return [text for text in embedded if text not in questions]

    hits = [hit(0, SUBJECT_ONLY, 1.0), hit(1, ANSWERING, 0.8), hit(2, OTHERS[0], 0.5)]
    reranker.rerank(QUESTION, hits, k=2)
    first = sentences_embedded()
    assert sorted(first) == sorted(s for h in hits for s in retrieval.sentences(h.text))
    reranker.rerank("How long does a firing take?", hits, k=2)
    assert sentences_embedded() == first
    changed = [hit(2, OTHERS[1], 0.5)]  # same passage id, new text: embedded again
    reranker.rerank(QUESTION, hits[:2] + changed, k=2)
    assert sentences_embedded() == first + retrieval.sentences(OTHERS[1])


def test_store_search_reranks_its_own_candidates(tmp_path: Path, store: DocumentStore) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "studio.md").write_text(f"# Studio\n\n{ANSWERING}\n", encoding="utf-8")
    (folder / "glazes.md").write_text(f"# Glazes\n\n{SUBJECT_ONLY}\n", encoding="utf-8")
    for index, text in enumerate(OTHERS):
        (folder / f"other-{index}.md").write_text(f"# Note {index}\n\n{text}\n", encoding="utf-8")
    assert ingest_paths(store, [folder]).ok
    plain = store.search(QUESTION, k=retrieval.RERANK_CANDIDATES)
    reranked = store.search(QUESTION, k=3, rerank=True)
    assert len(reranked) == 3
    assert {h.chunk_id for h in reranked} <= {h.chunk_id for h in plain}
    assert Path(reranked[0].path).name == "studio.md"
    assert store.sentence_reranker() is store.sentence_reranker()
    assert [h.chunk_id for h in retrieval.search(store, QUESTION, k=3, rerank=True)] == \
        [h.chunk_id for h in reranked]
    assert store.search("  ", k=3, rerank=True) == []
