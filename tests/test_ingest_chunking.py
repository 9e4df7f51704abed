"""Chunks are sentence-aware windows of ~100-200 words with overlap, located by page range or heading path."""

from __future__ import annotations

from ingest.chunking import chunk_document, split_sentences
from ingest.loaders import LoadedDocument, Section


def sentences(prefix: str, count: int, words: int = 12) -> str:
    filler = " ".join(["word"] * (words - 3))
    return " ".join(f"{prefix} sentence {i} {filler}." for i in range(count))


def test_windows_are_sized_sentence_aligned_and_overlap() -> None:
    doc = LoadedDocument(path="a.txt", title="A", sections=[Section(sentences("Alpha", 60))], kind="text")
    chunks = chunk_document(doc, chunk_words=150, overlap_words=30)
    assert len(chunks) >= 5
    for chunk in chunks:
        assert 100 <= chunk.words <= 200, chunk.words
        assert chunk.text.startswith("Alpha sentence") and chunk.text.endswith(".")
    for before, after in zip(chunks, chunks[1:]):
        first_of_next = after.text.split(". ")[0] + "."
        assert first_of_next in before.text  # the next window repeats the previous one's last sentences
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    joined = " ".join(c.text for c in chunks)
    assert all(f"Alpha sentence {i} " in joined for i in range(60))  # nothing dropped


def test_pdf_chunks_span_pages_and_keep_the_range() -> None:
    doc = LoadedDocument(path="p.pdf", title="Manual", kind="pdf", pages=3, sections=[
        Section(sentences("One", 8), page=1), Section(sentences("Two", 8), page=2),
        Section(sentences("Three", 8), page=3)])
    chunks = chunk_document(doc, chunk_words=150, overlap_words=30)
    assert chunks[0].page_start == 1 and chunks[0].page_end == 2
    assert chunks[-1].page_end == 3
    assert all(c.title == "Manual" and c.heading is None for c in chunks)


def test_markdown_chunks_never_cross_headings_and_carry_the_path_in_the_title() -> None:
    doc = LoadedDocument(path="n.md", title="Camelids", kind="markdown", sections=[
        Section(sentences("Llama", 5), heading="Llamas"), Section(sentences("Diet", 5), heading="Llamas > Diet")])
    chunks = chunk_document(doc)
    assert [(c.heading, c.title) for c in chunks] == [
        ("Llamas", "Camelids > Llamas"), ("Llamas > Diet", "Camelids > Llamas > Diet")]
    assert "Diet" not in chunks[0].text and "Llama sentence" not in chunks[1].text
    assert chunks[1].embedding_text() == f"Camelids > Llamas > Diet\n{chunks[1].text}"


def test_a_run_on_line_without_punctuation_is_cut() -> None:
    doc = LoadedDocument(path="t.txt", title="T", kind="text", sections=[Section(" ".join(["token"] * 1000))])
    chunks = chunk_document(doc, chunk_words=150, overlap_words=30)
    assert all(c.words <= 200 for c in chunks) and sum(c.words for c in chunks) >= 1000


def test_sentence_splitter_handles_decimals_list_items_and_paragraphs() -> None:
    text = "Llamas hum. Alpacas spit!\n\n- first item\n- second item\n  continues here\n\nIs it 3.5 kg? Yes."
    assert split_sentences(text) == ["Llamas hum.", "Alpacas spit!", "- first item",
                                     "- second item continues here", "Is it 3.5 kg?", "Yes."]
