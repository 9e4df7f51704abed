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


def _rewrite(source: Path, path: Path, change) -> Path:
    """Copy a PDF through pypdf's writer, letting `change(writer)` alter objects on the way."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(str(source)))
    change(writer)
    with open(path, "wb") as handle:
        writer.write(handle)
    return path


def pdf_with_bad_pages(path: Path, pages: list[str], bad: dict[int, str]) -> Path:
    """A text PDF whose pages named in `bad` (1-based) cannot be parsed: "limit" gives a content stream over the
    reader's array limit (an exception), "flate" one whose compressed data is garbage (pypdf logs and returns
    nothing), as damaged real-world files do."""
    from pypdf.generic import DecodedStreamObject, NameObject, StreamObject

    plain = text_pdf(path.with_suffix(".plain.pdf"), pages)

    def change(writer) -> None:
        for number, kind in bad.items():
            if kind == "limit":
                stream = DecodedStreamObject()
                stream.set_data(b"BT /F1 9 Tf [" + b"1 " * 200_001 + b"] TJ ET")
            else:
                stream = StreamObject()
                stream._data = b"garbage\x00\xff" * 50
                stream[NameObject("/Filter")] = NameObject("/FlateDecode")
            writer.pages[number - 1][NameObject("/Contents")] = writer._add_object(stream)

    _rewrite(plain, path, change)
    plain.unlink()
    return path


def aes_pdf(path: Path, text: str, *, user_password: str = "", owner_password: str = "owner-secret") -> Path:
    """AES-256 encrypted, as most encrypted PDFs are today; with an empty user password it opens for reading
    (the owner password only guards permissions)."""
    plain = text_pdf(path.with_suffix(".plain.pdf"), [text])
    _rewrite(plain, path, lambda writer: writer.encrypt(user_password=user_password, owner_password=owner_password,
                                                        algorithm="AES-256"))
    plain.unlink()
    return path


def slow_pdf(path: Path, operators: int = 400_000) -> Path:
    """A small file whose one page holds hundreds of thousands of drawing operators: compressed to a few kB,
    seconds of parsing. What a file built to stall readers looks like."""
    from pypdf.generic import DecodedStreamObject, NameObject

    plain = text_pdf(path.with_suffix(".plain.pdf"), ["Slow page."])

    def change(writer) -> None:
        stream = DecodedStreamObject()
        stream.set_data(b"BT /F1 9 Tf 10 10 Td (Slow page.) Tj ET\n" + b"1 0 0 1 0 0 cm\n" * operators)
        writer.pages[0][NameObject("/Contents")] = writer._add_object(stream.flate_encode())

    _rewrite(plain, path, change)
    plain.unlink()
    return path


def form_pdf(path: Path, fields: dict[str, str], page_text: str = "Application form.") -> Path:
    """A PDF with filled AcroForm text fields: their values live in the form, not in the page's text."""
    from fpdf import FPDF
    from pypdf.generic import NameObject, TextStringObject

    plain = text_pdf(path.with_suffix(".plain.pdf"), [page_text])

    def change(writer) -> None:
        from pypdf.generic import ArrayObject, DictionaryObject, FloatObject, NumberObject

        annotations = ArrayObject()
        for index, (name, value) in enumerate(fields.items()):
            field = DictionaryObject({
                NameObject("/FT"): NameObject("/Tx"), NameObject("/T"): TextStringObject(name),
                NameObject("/V"): TextStringObject(value), NameObject("/Type"): NameObject("/Annot"),
                NameObject("/Subtype"): NameObject("/Widget"),
                NameObject("/Rect"): ArrayObject([FloatObject(50), FloatObject(700 - 30 * index), FloatObject(300),
                                                  FloatObject(720 - 30 * index)]),
                NameObject("/F"): NumberObject(4),
            })
            annotations.append(writer._add_object(field))
        writer.pages[0][NameObject("/Annots")] = annotations
        writer._root_object[NameObject("/AcroForm")] = DictionaryObject({NameObject("/Fields"): annotations})

    del FPDF
    _rewrite(plain, path, change)
    plain.unlink()
    return path


def form_heavy_pdf(path: Path, text: str, invocations: int = 5_500) -> Path:
    """A page that draws an empty form XObject thousands of times (as generated filings stamp logos and boxes),
    then draws a second form holding `text`: a reader that stops counting forms early misses the text."""
    from pypdf.generic import ArrayObject, DecodedStreamObject, DictionaryObject, NameObject, NumberObject

    plain = text_pdf(path.with_suffix(".plain.pdf"), ["Cover."])

    def form(writer, content: bytes, resources):
        stream = DecodedStreamObject()
        stream.set_data(content)
        stream[NameObject("/Type")] = NameObject("/XObject")
        stream[NameObject("/Subtype")] = NameObject("/Form")
        stream[NameObject("/BBox")] = ArrayObject([NumberObject(0), NumberObject(0), NumberObject(600),
                                                  NumberObject(800)])
        stream[NameObject("/Resources")] = resources
        return writer._add_object(stream)

    def change(writer) -> None:
        page = writer.pages[0]
        resources = page["/Resources"].get_object()
        empty = form(writer, b"", DictionaryObject())
        filled = form(writer, b"BT /F1 9 Tf 20 400 Td (" + text.encode("latin-1") + b") Tj ET", resources)
        resources[NameObject("/XObject")] = DictionaryObject({NameObject("/Fm0"): empty, NameObject("/Fm1"): filled})
        content = DecodedStreamObject()
        content.set_data(page.get_contents().get_data() + b"\n" + b"/Fm0 Do\n" * invocations + b"/Fm1 Do\n")
        page[NameObject("/Contents")] = writer._add_object(content.flate_encode())

    _rewrite(plain, path, change)
    plain.unlink()
    return path


def image_scan_pdf(path: Path, pages: list[str], *, font_size: int = 34, text_layer: dict[int, str] | None = None
                   ) -> Path:
    """A scan: each page an A4 image at 200 dpi of `pages[i]` typeset in black on white (lines wrapped at ~60
    characters, paragraphs split on blank lines), with no text layer, except the pages (0-based) in
    `text_layer`, which carry that real text instead (a mixed document)."""
    import textwrap

    from fpdf import FPDF
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=font_size)
    pdf = FPDF(unit="mm", format="A4")
    for index, text in enumerate(pages):
        pdf.add_page()
        if text_layer and index in text_layer:
            pdf.set_font("helvetica", size=12)
            pdf.multi_cell(0, 6, text_layer[index])
            continue
        image = Image.new("L", (1654, 2339), 255)  # A4 at 200 dpi
        draw = ImageDraw.Draw(image)
        y = 160
        for paragraph in text.split("\n\n"):
            for line in textwrap.wrap(paragraph, 60):
                draw.text((140, y), line, fill=0, font=font)
                y += int(font_size * 1.5)
            y += font_size
        pdf.image(image, x=0, y=0, w=210, h=297)
    pdf.output(str(path))
    return path
