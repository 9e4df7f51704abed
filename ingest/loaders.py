"""Read one file into sections of text that remember where they came from (PDF page, Markdown heading path).

Loaders raise a `LoadError` subclass whose `reason` tells the user what is wrong and what to do; the pipeline
records it and goes on with the other files.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from ingest.errors import (
    CorruptFile,
    EmptyDocument,
    EncryptedPdf,
    LoadError,
    NoExtractableText,
    UnreadableFile,
    UnsupportedFile,
)

PDF_SUFFIXES = {".pdf"}
MARKDOWN_SUFFIXES = {".md", ".markdown", ".mdown", ".mkd"}
TEXT_SUFFIXES = {".txt", ".text", ".rst", ".org", ".adoc", ""}
SUPPORTED_SUFFIXES = PDF_SUFFIXES | MARKDOWN_SUFFIXES | TEXT_SUFFIXES

# A PDF whose pages give fewer characters than this in total is treated as a scan.
MIN_PDF_TEXT_CHARS = 20
HEADING_SEPARATOR = " > "


@dataclass(frozen=True)
class Section:
    """A run of text with one location: a PDF page (1-based) or a Markdown heading path ("A > B")."""

    text: str
    page: int | None = None
    heading: str | None = None


@dataclass
class LoadedDocument:
    path: str
    title: str
    sections: list[Section]
    kind: str
    """"pdf", "markdown" or "text"."""
    pages: int = 0
    """Pages of a PDF (including pages without text); 0 for notes."""
    warnings: list[str] = field(default_factory=list)
    """Things the user should know although the file loaded, e.g. a fallback text encoding."""


def load_file(path: str | Path, *, password: str | None = None, data: bytes | None = None) -> LoadedDocument:
    """Load a PDF, Markdown or plain-text file. `data` may carry the file's bytes when the caller already read
    them (the pipeline does, to hash them), so the file is read once."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnsupportedFile(str(path), f"unsupported file type '{suffix}' (supported: PDF, Markdown, plain text)")
    if data is None:
        data = read_bytes(path)
    if not data.strip():
        raise EmptyDocument(str(path), "empty file: nothing to index")
    if suffix in PDF_SUFFIXES:
        return _load_pdf(path, data, password)
    text, warnings = decode_text(path, data)
    if not text.strip():
        raise EmptyDocument(str(path), "empty file: nothing to index")
    if suffix in MARKDOWN_SUFFIXES:
        return _load_markdown(path, text, warnings)
    return LoadedDocument(
        path=str(path), title=path.stem, sections=[Section(text.strip())], kind="text", warnings=warnings
    )


def read_bytes(path: Path) -> bytes:
    """Read a file, turning OS errors into a reason the user can act on."""
    try:
        return path.read_bytes()
    except PermissionError:
        raise UnreadableFile(str(path), "permission denied: cannot read the file (check its permissions)") from None
    except FileNotFoundError:
        raise UnreadableFile(str(path), "file not found (a broken link, or it was deleted while ingesting)") from None
    except IsADirectoryError:
        raise UnreadableFile(str(path), "is a folder, not a file") from None
    except OSError as exc:
        raise UnreadableFile(str(path), f"cannot read the file: {exc.strerror or exc}") from None


def decode_text(path: Path, data: bytes) -> tuple[str, list[str]]:
    """Decode a note: UTF-8 (with or without BOM), UTF-16 with a BOM, else Windows-1252 / Latin-1 with a warning.

    Notes written on older systems are often Windows-1252; refusing them would lose the whole file over a few
    accented letters, so they load and the summary says which encoding was assumed.
    """
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return data.decode("utf-16"), []
        except UnicodeDecodeError:
            pass
    try:
        return data.decode("utf-8-sig"), []
    except UnicodeDecodeError as exc:
        first_bad = exc.start
    head = data[:8192]
    if head.count(b"\x00") > len(head) // 10:
        raise UnsupportedFile(str(path), "looks like a binary file, not text")
    for encoding, label in (("cp1252", "Windows-1252"), ("latin-1", "Latin-1")):
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        return text, [f"not valid UTF-8 (first bad byte at offset {first_bad}); read as {label}: check accented "
                      f"characters, or convert the file to UTF-8"]
    raise AssertionError("latin-1 decodes any bytes")  # pragma: no cover


# --- PDF ---------------------------------------------------------------------------------------------------------


def _load_pdf(path: Path, data: bytes, password: str | None) -> LoadedDocument:
    from pypdf import PdfReader
    from pypdf.errors import FileNotDecryptedError, PdfReadError, WrongPasswordError

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # pypdf logs every repaired xref; the reasons we give suffice
    if not data.lstrip().startswith(b"%PDF"):
        raise CorruptFile(str(path), "not a PDF (no %PDF header): damaged file, or a different format renamed .pdf")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted:
            _decrypt(reader, path, password)
        page_count = len(reader.pages)
        sections: list[Section] = []
        for number, page in enumerate(reader.pages, start=1):
            text = _clean_pdf_text(page.extract_text() or "")
            if text.strip():
                sections.append(Section(text, page=number))
        title = _pdf_title(reader, path)
    except LoadError:
        raise
    except (FileNotDecryptedError, WrongPasswordError):
        raise _encrypted(path, password) from None
    except (PdfReadError, ValueError, KeyError, TypeError, IndexError, AttributeError, EOFError, OSError) as exc:
        raise CorruptFile(str(path), f"damaged or truncated PDF, cannot be parsed ({_short(exc)})") from None
    except Exception as exc:  # pypdf raises assorted errors on malformed input; none must stop the other files
        raise CorruptFile(str(path), f"damaged PDF, cannot be parsed ({type(exc).__name__}: {_short(exc)})") from None
    if page_count == 0:
        raise CorruptFile(str(path), "PDF with no pages (damaged or truncated)")
    if sum(len(s.text.strip()) for s in sections) < MIN_PDF_TEXT_CHARS:
        raise NoExtractableText(
            str(path),
            f"no extractable text in {page_count} page{'s' if page_count != 1 else ''}: looks scanned; run OCR "
            f"first (e.g. `ocrmypdf in.pdf out.pdf`) and ingest the result",
        )
    return LoadedDocument(path=str(path), title=title, sections=sections, kind="pdf", pages=page_count)


def _decrypt(reader, path: Path, password: str | None) -> None:
    from pypdf import PasswordType

    # Many PDFs are "encrypted" with an empty user password (to set permissions) and open without one.
    for candidate in ([password] if password else []) + [""]:
        try:
            if reader.decrypt(candidate) != PasswordType.NOT_DECRYPTED:
                return
        except NotImplementedError as exc:
            raise EncryptedPdf(str(path), f"encrypted with an unsupported method ({exc})") from None
    raise _encrypted(path, password)


def _encrypted(path: Path, password: str | None) -> EncryptedPdf:
    if password:
        return EncryptedPdf(str(path), "encrypted PDF: the password given does not open it (check --password)")
    return EncryptedPdf(str(path), "encrypted PDF: needs a password; run again with --password PASSWORD")


def _pdf_title(reader, path: Path) -> str:
    try:
        title = (reader.metadata or {}).get("/Title")
    except Exception:  # broken metadata must not cost the document
        title = None
    title = str(title).strip() if title else ""
    if not title or title.lower() in {"untitled", "title"} or title.lower().endswith((".doc", ".docx", ".pdf")):
        return path.stem
    return title


_HYPHEN_BREAK = re.compile(r"(\w)-\n(\w)")
_SPACES = re.compile(r"[ \t\u00a0]+")


def _clean_pdf_text(text: str) -> str:
    """Join words hyphenated across lines and squeeze runs of spaces; line breaks stay for sentence splitting."""
    text = _HYPHEN_BREAK.sub(r"\1\2", text)
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.splitlines())


def _short(exc: BaseException) -> str:
    message = str(exc) or type(exc).__name__
    return message if len(message) < 160 else message[:157] + "..."


# --- Markdown ----------------------------------------------------------------------------------------------------

_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*\n", re.DOTALL)


def _load_markdown(path: Path, text: str, warnings: list[str]) -> LoadedDocument:
    title_from_meta = None
    match = _FRONT_MATTER.match(text)
    if match:
        for line in match.group(1).splitlines():
            key, _, value = line.partition(":")
            if key.strip().lower() == "title" and value.strip():
                title_from_meta = value.strip().strip("\"'")
        text = text[match.end():]

    blocks = _markdown_blocks(text)  # [(level, heading or None, body)]
    level_one = [b for b in blocks if b[0] == 1]
    title = title_from_meta or path.stem
    title_is_h1 = False
    if not title_from_meta and len(level_one) == 1 and blocks and blocks[0][0] in (0, 1):
        first_heading = next(b for b in blocks if b[0] > 0)
        # The single top heading names the document; it is the title, not part of every heading path.
        if first_heading[0] == 1 and not any(b[2].strip() for b in blocks if b[0] == 0):
            title, title_is_h1 = first_heading[1], True

    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    for level, heading, body in blocks:
        if level > 0:
            while stack and stack[-1][0] >= level:
                stack.pop()
            if not (title_is_h1 and level == 1):
                stack.append((level, heading))
        if body.strip():
            path_text = HEADING_SEPARATOR.join(h for _, h in stack) or None
            sections.append(Section(body.strip(), heading=path_text))
    if not sections:
        raise EmptyDocument(str(path), "no text besides headings: nothing to index")
    return LoadedDocument(path=str(path), title=title, sections=sections, kind="markdown", warnings=warnings)


def _markdown_blocks(text: str) -> list[tuple[int, str | None, str]]:
    """Split Markdown into (heading level, heading text, body) blocks; level 0 is text before the first heading.
    Headings inside fenced code blocks are code, not structure."""
    blocks: list[tuple[int, str | None, list[str]]] = [(0, None, [])]
    in_fence = False
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if _FENCE.match(line):
            in_fence = not in_fence
        if not in_fence:
            atx = _ATX.match(line)
            if atx:
                blocks.append((len(atx.group(1)), _plain_heading(atx.group(2)), []))
                continue
            body = blocks[-1][2]
            setext = _SETEXT.match(line)
            if setext and body and body[-1].strip() and not _SETEXT.match(body[-1]) and (
                len(body) == 1 or not body[-2].strip()
            ):
                heading = body.pop().strip()
                blocks.append((1 if setext.group(1)[0] == "=" else 2, _plain_heading(heading), []))
                continue
        blocks[-1][2].append(line)
    return [(level, heading, "\n".join(body)) for level, heading, body in blocks]


def _plain_heading(text: str) -> str:
    """Drop inline Markdown emphasis/code marks and links from a heading for display in titles."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[*_`]+", "", text).strip()
