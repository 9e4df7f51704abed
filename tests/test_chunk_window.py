"""Passages fit the embedding model's window: no words past its 256 tokens go unembedded."""

from __future__ import annotations

from pathlib import Path

from ingest.chunking import Chunk, chunk_document, fit_to_window
from ingest.loaders import load_file
from ingest.pipeline import ingest_paths

# Numbers and symbols cost several tokens per word: 150 such words run far past 256 tokens.
TABLE_ROW = "Q3 FY2022 revenue $23,501,000 (+12.7%) vs. $20,855,000; EPS $0.22/$0.09; miles 5,334k/5,869k."


def test_long_passages_are_split_until_each_fits(tmp_path: Path, embedder) -> None:
    note = tmp_path / "figures.md"
    note.write_text("# Figures\n\n## Quarter\n\n" + " ".join([TABLE_ROW] * 40) + "\n", encoding="utf-8")
    chunks = chunk_document(load_file(note))
    before = embedder.count_tokens([c.embedding_text() for c in chunks])
    assert max(before) > embedder.max_tokens  # the case this is for
    fitted = fit_to_window(chunks, embedder.count_tokens, embedder.max_tokens)
    after = embedder.count_tokens([c.embedding_text() for c in fitted])
    assert max(after) <= embedder.max_tokens
    assert [c.ordinal for c in fitted] == list(range(len(fitted)))
    assert all(c.title == "Figures > Quarter" and c.heading == "Quarter" for c in fitted)
    # Nothing lost or repeated: the parts, in order, hold exactly the words of the passages they came from.
    assert " ".join(c.text for c in fitted).split() == " ".join(c.text for c in chunks).split()


def test_a_passage_that_fits_is_left_alone(embedder) -> None:
    short = [Chunk("Notes", "Alpacas are shorn once a year.", None, None, None, 0)]
    assert fit_to_window(short, embedder.count_tokens, embedder.max_tokens) == short


def test_ingest_stores_only_passages_that_fit(tmp_path: Path, store) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "figures.txt").write_text(" ".join([TABLE_ROW] * 40), encoding="utf-8")
    assert ingest_paths(store, [folder]).ok
    texts = [f"{h.title}\n{h.text}" for h in store.chunks_of(str(folder / "figures.txt"))]
    assert len(texts) > 1 and max(store.embedder.count_tokens(texts)) <= store.embedder.max_tokens
