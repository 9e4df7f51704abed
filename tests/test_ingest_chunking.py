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


def test_pdf_chunks_stay_on_their_page() -> None:
    doc = LoadedDocument(path="p.pdf", title="Manual", kind="pdf", pages=3, sections=[
        Section(sentences("One", 8), page=1), Section(sentences("Two", 8), page=2),
        Section(sentences("Three", 8), page=3)])
    chunks = chunk_document(doc, chunk_words=150, overlap_words=30)
    assert [(c.page_start, c.page_end) for c in chunks] == [(1, 1), (2, 2), (3, 3)]
    assert all(c.text.startswith(("One", "Two", "Three")[i]) for i, c in enumerate(chunks))
    assert all(c.title == "Manual" and c.heading is None for c in chunks)


def test_a_sentence_across_a_page_break_stays_whole_and_keeps_both_pages() -> None:
    doc = LoadedDocument(path="p.pdf", title="Fleece", kind="pdf", pages=2, sections=[
        Section(sentences("One", 8) + " An adult alpaca yields between 2.3 and", page=1),
        Section("about 4.5 kilograms of fleece a year. " + sentences("Two", 8), page=2)])
    chunks = chunk_document(doc, chunk_words=150, overlap_words=30)
    assert [(c.page_start, c.page_end) for c in chunks] == [(1, 1), (1, 2)]
    assert "An adult alpaca yields between 2.3 and about 4.5 kilograms of fleece a year." in chunks[1].text
    assert "2.3 and" not in chunks[0].text


def test_a_page_too_short_to_stand_alone_joins_the_next() -> None:
    doc = LoadedDocument(path="p.pdf", title="Guide", kind="pdf", pages=3, sections=[
        Section("Chapter two.", page=1), Section(sentences("Two", 8), page=2), Section(sentences("Three", 8), page=3)])
    chunks = chunk_document(doc, chunk_words=150, overlap_words=30)
    assert [(c.page_start, c.page_end) for c in chunks] == [(1, 2), (3, 3)]
    assert chunks[0].text.startswith("Chapter two. Two sentence 0")


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


def test_a_page_footer_is_not_carried_onto_the_next_page() -> None:
    doc = LoadedDocument(path="p.pdf", title="Guide", kind="pdf", pages=2, sections=[
        Section(sentences("One", 8) + "\n\nPage 1", page=1), Section("Tyres. " + sentences("Two", 8), page=2)])
    chunks = chunk_document(doc, chunk_words=150, overlap_words=30)
    assert [(c.page_start, c.page_end) for c in chunks] == [(1, 1), (2, 2)]
    assert chunks[1].text.startswith("Tyres.")


def test_code_blocks_keep_their_lines() -> None:
    from ingest.loaders import LoadedDocument, Section

    code = "```python\ndef water(plant):\n    if plant.dry:\n        plant.soak()\n```"
    text = f"Water the plants daily. Use this helper:\n\n{code}\n\nIt checks first."
    assert split_sentences(text) == ["Water the plants daily.", "Use this helper:", code, "It checks first."]
    doc = LoadedDocument(path="x.md", title="Garden", sections=[Section(text, heading="Care")], kind="markdown")
    (chunk,) = chunk_document(doc)
    assert chunk.text == f"Water the plants daily. Use this helper:\n\n{code}\n\nIt checks first."
    # A code block longer than a passage is cut between its lines' words, its line breaks kept.
    long_code = "```\n" + "\n".join(f"step_{i} = run({i})" for i in range(200)) + "\n```"
    doc = LoadedDocument(path="y.md", title="Script", sections=[Section(long_code)], kind="markdown")
    chunks = chunk_document(doc, chunk_words=60, overlap_words=10)
    assert len(chunks) > 3 and all("\n" in c.text for c in chunks)
    assert all(f"step_{i} = run({i})" in "\n".join(c.text for c in chunks) for i in range(200))


def test_paragraphs_lists_and_tables_keep_their_line_breaks() -> None:
    from ingest.loaders import LoadedDocument, Section

    text = ("Soak the beans overnight. Drain them in the morning.\n\n"
            "Cook them slowly;\nthe skins stay whole.\n\n"
            "You need:\n- 500 g beans\n- 2 bay leaves\n1. soak\n2. simmer\n\n"
            "| bean | hours |\n|------|-------|\n| pinto | 2 |\n| kidney | 3 |")
    doc = LoadedDocument(path="beans.md", title="Beans", sections=[Section(text, heading="Method")], kind="markdown")
    (chunk,) = chunk_document(doc)
    assert chunk.text == (
        "Soak the beans overnight. Drain them in the morning.\n\n"
        "Cook them slowly; the skins stay whole.\n\n"  # a wrapped line inside a paragraph is a space
        "You need:\n- 500 g beans\n- 2 bay leaves\n1. soak\n2. simmer\n\n"
        "| bean | hours |\n|------|-------|\n| pinto | 2 |\n| kidney | 3 |")
    # A passage cut to fit the embedder keeps the breaks of each half.
    from ingest.chunking import fit_to_window

    halves = fit_to_window([chunk], lambda texts: [len(t.split()) for t in texts], 30)
    assert len(halves) >= 2 and "\n".join(h.text for h in halves).count("\n- ") == 2
    assert any(h.text.startswith("| bean | hours |\n|------|") or "\n| bean | hours |\n" in h.text for h in halves)
