"""Loaders turn files into located sections, and every kind of bad input into a reason the user can act on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ingest.errors import (
    CorruptFile,
    EmptyDocument,
    EncryptedPdf,
    NoExtractableText,
    UnreadableFile,
    UnsupportedFile,
)
from ingest.loaders import load_file
from pdf_factory import encrypted_pdf, garbage_pdf, scanned_pdf, text_pdf, truncated_pdf


def test_pdf_keeps_page_numbers_and_metadata_title(tmp_path: Path) -> None:
    pdf = text_pdf(tmp_path / "fibres.pdf", ["Alpaca fleece is fine.", "Llama fibre is coarser.", "Vicuna is rare."],
                   title="Andean Fibres")
    doc = load_file(pdf)
    assert doc.kind == "pdf" and doc.pages == 3 and doc.title == "Andean Fibres"
    assert [(s.page, s.text) for s in doc.sections] == [
        (1, "Alpaca fleece is fine."), (2, "Llama fibre is coarser."), (3, "Vicuna is rare.")]


def test_pdf_without_metadata_title_uses_the_file_name(tmp_path: Path) -> None:
    doc = load_file(text_pdf(tmp_path / "field_notes.pdf", ["Some words on a page."]))
    assert doc.title == "field_notes"


def test_blank_pages_count_but_give_no_section(tmp_path: Path) -> None:
    doc = load_file(text_pdf(tmp_path / "gaps.pdf", ["First page text here.", "", "Third page text here."]))
    assert doc.pages == 3
    assert [s.page for s in doc.sections] == [1, 3]


def test_markdown_heading_paths(tmp_path: Path) -> None:
    note = tmp_path / "camelids.md"
    note.write_text(
        "# Camelids\n\nIntro paragraph.\n\n## Llamas\n\nLlamas carry loads.\n\n### Diet\n\nThey graze.\n\n"
        "```bash\n# a comment, not a heading\necho hi\n```\n\n## Alpacas\n\nAlpacas give fleece.\n",
        encoding="utf-8",
    )
    doc = load_file(note)
    assert doc.title == "Camelids"
    assert [(s.heading, s.text.splitlines()[0]) for s in doc.sections] == [
        (None, "Intro paragraph."),
        ("Llamas", "Llamas carry loads."),
        ("Llamas > Diet", "They graze."),
        ("Alpacas", "Alpacas give fleece."),
    ]
    assert "# a comment, not a heading" in doc.sections[2].text


def test_markdown_front_matter_title_and_several_top_headings(tmp_path: Path) -> None:
    note = tmp_path / "n.md"
    note.write_text("---\ntitle: \"Garden log\"\n---\n# Spring\nSow beans.\n# Autumn\nHarvest squash.\n",
                    encoding="utf-8")
    doc = load_file(note)
    assert doc.title == "Garden log"
    assert [s.heading for s in doc.sections] == ["Spring", "Autumn"]


def test_plain_text(tmp_path: Path) -> None:
    note = tmp_path / "watering.txt"
    note.write_text("Water tomatoes at dawn.\n", encoding="utf-8")
    doc = load_file(note)
    assert (doc.kind, doc.title, doc.sections[0].text, doc.sections[0].page) == (
        "text", "watering", "Water tomatoes at dawn.", None)


def test_non_utf8_note_loads_with_a_warning(tmp_path: Path) -> None:
    note = tmp_path / "old.txt"
    note.write_bytes("Café crème for the señor, 20 €.".encode("cp1252"))
    doc = load_file(note)
    assert doc.sections[0].text == "Café crème for the señor, 20 €."
    assert len(doc.warnings) == 1 and "not valid UTF-8" in doc.warnings[0] and "Windows-1252" in doc.warnings[0]


def test_utf16_note_with_bom(tmp_path: Path) -> None:
    note = tmp_path / "wide.txt"
    note.write_bytes("Llamas hum.".encode("utf-16"))
    assert load_file(note).sections[0].text == "Llamas hum." and not load_file(note).warnings


def test_encrypted_pdf_needs_password(tmp_path: Path) -> None:
    pdf = encrypted_pdf(tmp_path / "vault.pdf", "s3cret")
    with pytest.raises(EncryptedPdf) as needs:
        load_file(pdf)
    assert "needs a password" in needs.value.reason and "--password" in needs.value.reason
    with pytest.raises(EncryptedPdf) as wrong:
        load_file(pdf, password="guess")
    assert wrong.value.reason.startswith("wrong password") and "--password" in wrong.value.reason
    assert "vault combination" in load_file(pdf, password="s3cret").sections[0].text


def test_truncated_and_damaged_pdfs(tmp_path: Path) -> None:
    good = text_pdf(tmp_path / "good.pdf", [f"Page {i} has some words on it." for i in range(5)])
    for bad in (truncated_pdf(tmp_path / "cut.pdf", good), garbage_pdf(tmp_path / "junk.pdf")):
        with pytest.raises(CorruptFile) as failure:
            load_file(bad)
        assert "damaged" in failure.value.reason or "truncated" in failure.value.reason
    renamed = tmp_path / "photo.pdf"
    renamed.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    with pytest.raises(CorruptFile, match="not a PDF"):
        load_file(renamed)


def test_a_scan_without_words_says_ocr_found_nothing_and_with_ocr_off_names_the_setting(tmp_path: Path) -> None:
    scan = scanned_pdf(tmp_path / "scan.pdf", pages=3)  # grey bars: an image, but no words in it
    with pytest.raises(NoExtractableText) as failure:
        load_file(scan)
    assert "no text found in 3 pages, neither in a text layer nor by OCR" in failure.value.reason
    with pytest.raises(NoExtractableText) as failure:
        load_file(scan, ocr=False)
    reason = failure.value.reason
    assert "looks scanned" in reason and "OCR is off" in reason and "ingest.ocr" in reason
    assert "SELFRAG_INGEST__OCR" in reason


@pytest.mark.parametrize("content", [b"", b"  \n\t\n"])
def test_empty_files(tmp_path: Path, content: bytes) -> None:
    for name in ("e.txt", "e.md", "e.pdf"):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(EmptyDocument, match="empty file"):
            load_file(tmp_path / name)


def test_markdown_with_only_headings_is_empty(tmp_path: Path) -> None:
    (tmp_path / "h.md").write_text("# Title\n## Section\n", encoding="utf-8")
    with pytest.raises(EmptyDocument):
        load_file(tmp_path / "h.md")


def test_broken_link_is_unreadable(tmp_path: Path) -> None:
    link = tmp_path / "gone.md"
    link.symlink_to(tmp_path / "missing.md")
    with pytest.raises(UnreadableFile, match="broken link"):
        load_file(link)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads files regardless of permissions")
def test_permission_denied_is_unreadable(tmp_path: Path) -> None:
    note = tmp_path / "private.md"
    note.write_text("secret", encoding="utf-8")
    note.chmod(0)
    with pytest.raises(UnreadableFile, match="permission denied"):
        load_file(note)


def test_unsupported_and_binary_files(tmp_path: Path) -> None:
    (tmp_path / "sheet.xlsx").write_bytes(b"PK\x03\x04")
    with pytest.raises(UnsupportedFile, match="unsupported file type"):
        load_file(tmp_path / "sheet.xlsx")
    (tmp_path / "blob.txt").write_bytes(b"\x00\xff\x00\xfe" * 100)
    with pytest.raises(UnsupportedFile, match="binary"):
        load_file(tmp_path / "blob.txt")
