"""Builds PDFs for the store tests with fpdf2: real multi-page text PDFs, and broken ones of each kind."""

from __future__ import annotations

from pathlib import Path


def text_pdf(path: Path, pages: list[str], *, title: str | None = None) -> Path:
    """A PDF with one page per string (long strings wrap onto the same page at a small font)."""
    from fpdf import FPDF

    pdf = FPDF()
    if title:
        pdf.set_title(title)
    pdf.set_font("Helvetica", size=9)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 4, text)
    pdf.output(str(path))
    return path


def encrypted_pdf(path: Path, password: str, text: str = "The vault combination is written on page one.") -> Path:
    """A PDF that needs `password` to open (RC4, which pypdf decrypts without extra packages)."""
    from pypdf import PdfReader, PdfWriter

    plain = text_pdf(path.with_suffix(".plain.pdf"), [text])
    writer = PdfWriter()
    for page in PdfReader(str(plain)).pages:
        writer.add_page(page)
    writer.encrypt(user_password=password, owner_password=password + "-owner", algorithm="RC4-128")
    with open(path, "wb") as handle:
        writer.write(handle)
    plain.unlink()
    return path


def scanned_pdf(path: Path, pages: int = 2) -> Path:
    """Pages with drawings and no text layer: what a scan without OCR looks like to a text extractor."""
    from fpdf import FPDF

    pdf = FPDF()
    for _ in range(pages):
        pdf.add_page()
        pdf.set_fill_color(80, 80, 80)
        for row in range(20):
            pdf.rect(20, 20 + row * 12, 170, 6, style="F")
    pdf.output(str(path))
    return path


def truncated_pdf(path: Path, source: Path) -> Path:
    """The first third of a valid PDF, as left by an interrupted download."""
    data = source.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def garbage_pdf(path: Path) -> Path:
    """A file named .pdf whose body is damaged after the header."""
    path.write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 8 + b"\n%%EOF\n")
    return path
