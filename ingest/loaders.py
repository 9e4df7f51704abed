"""Read one file into sections of text that remember where they came from (PDF page, Markdown heading path).

Loaders raise a `LoadError` subclass whose `reason` tells the user what is wrong and what to do; the pipeline
records it and goes on with the other files.
"""

from __future__ import annotations

import io
import logging
import os
import re
import threading
import time
import unicodedata
from typing import Callable
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

from ingest.formats import MARKDOWN_SUFFIXES, PDF_SUFFIXES, SUPPORTED_SUFFIXES, TEXT_SUFFIXES  # noqa: F401

# Bump when the text a loader gives for the same bytes changes: failed files are tried again, and stores
# re-read their documents (the version is part of each document's recipe).
LOADER_VERSION = 4

# A PDF whose pages give fewer characters than this in total (after dropping whitespace) is treated as a scan.
# Short real text ("Hello, world!") is still text; a scan's text layer is empty or a few stray marks.
MIN_PDF_TEXT_CHARS = 3
HEADING_SEPARATOR = " > "

PDF_TIME_BUDGET_S = 60.0
"""Seconds a PDF may take to parse, plus `PDF_TIME_PER_PAGE_S` per page: a 500-page filing fits; a file built to
make the parser spin fails as "too slow to parse" instead of stalling the whole ingest."""
PDF_TIME_PER_PAGE_S = 1.0
PDF_PAGE_CONTENT_MAX_BYTES = 24 * 1048576
"""A page whose drawing instructions exceed this is not text-extracted (the reader would hold many times this in
memory); it is read by OCR from its rendering instead, or skipped with its reason when OCR is off."""
OCR_TIME_PER_PAGE_S = 20.0
"""Extra budget per page read by OCR (a dense A4 page takes a few seconds on one laptop core)."""

# pypdf's defaults guard against decompression bombs but reject big genuine documents (dense annual reports,
# filings with large embedded forms). These give ~4x headroom; the time budget above bounds what is left.
PDF_LIMITS = {
    "zlib_maximum_output_length": 300_000_000,
    "lzw_maximum_output_length": 300_000_000,
    "run_length_maximum_output_length": 300_000_000,
    "array_based_stream_maximum_output_length": 300_000_000,
    "maximum_declared_stream_length": 300_000_000,
    "stream_decoding_work_maximum_length": 1_200_000_000,
    "stream_parsing_work_maximum_count": 20_000_000,
    "xform_maximum_invocations_per_extraction": 50_000,
    "page_tree_maximum_page_entries": 8_000_000,
}

# Magic numbers of formats users rename or save with a text extension by mistake.
_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
    (b"PK\x03\x04", "a ZIP archive (or a Word/Excel/ePub file, which are ZIP archives)"),
    (b"%PDF-", "a PDF (rename it to .pdf)"), (b"\x1f\x8b", "a gzip archive"), (b"\x7fELF", "a program"),
    (b"BZh", "a bzip2 archive"), (b"\xfd7zXZ\x00", "an xz archive"), (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\xd0\xcf\x11\xe0", "an old Word/Excel file (save it as PDF or text)"), (b"SQLite format 3", "a database"),
    (b"RIFF", "a media file"), (b"ID3", "an MP3 file"), (b"OggS", "an audio file"), (b"\x00\x00\x00", "binary data"),
)


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
    unreadable_pages: dict[int, str] = field(default_factory=dict)
    """PDF pages (1-based) that could not be parsed -> why, in words; the other pages are indexed."""
    metadata: dict[str, str] = field(default_factory=dict)
    """Note properties (YAML front matter, Logseq `key:: value` lines): kept apart from the prose."""
    ocr_pages: list[int] = field(default_factory=list)
    """PDF pages (1-based) without a text layer whose text was read by OCR."""


def load_file(path: str | Path, *, password: str | None = None, data: bytes | None = None,
              time_budget_s: float | None = None, ocr: bool = True,
              on_ocr_page: Callable[[int, int], None] | None = None) -> LoadedDocument:
    """Load a PDF, Markdown or plain-text file. `data` may carry the file's bytes when the caller already read
    them (the pipeline does, to hash them), so the file is read once. `time_budget_s` overrides the PDF parse
    budget (tests use a tiny one). With `ocr`, PDF pages without a text layer are read by OCR (`ingest.ocr`),
    `on_ocr_page(done, total)` called before each."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise UnsupportedFile(str(path), f"unsupported file type '{path.suffix}' (supported: PDF, Markdown, plain "
                                         f"text: {', '.join(sorted(s for s in SUPPORTED_SUFFIXES if s))})")
    if data is None:
        data = read_bytes(path)
    if not data.strip():
        raise EmptyDocument(str(path), "empty file: nothing to index")
    if suffix in PDF_SUFFIXES:
        return _load_pdf(path, data, password, time_budget_s, ocr, on_ocr_page)
    text, warnings = decode_text(path, data)
    if not text.strip():
        raise EmptyDocument(str(path), "empty file: nothing to index")
    if suffix in MARKDOWN_SUFFIXES:
        return _load_markdown(path, text, warnings)
    metadata, text = _property_lines(text)
    if not text.strip():
        raise EmptyDocument(str(path), "no text besides properties: nothing to index")
    return LoadedDocument(path=str(path), title=metadata.get("title") or path.stem,
                          sections=[Section(text.strip())], kind="text", warnings=warnings, metadata=metadata)


def read_bytes(path: Path) -> bytes:
    """Read a regular file, turning OS errors into a reason the user can act on. FIFOs, sockets and devices are
    refused before opening: reading one would block forever or never end."""
    import errno
    import stat

    try:
        info = path.stat()
    except OSError as exc:
        raise _os_error(path, exc) from exc
    if stat.S_ISDIR(info.st_mode):
        raise UnreadableFile(str(path), "is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        kind = ("a named pipe (FIFO)" if stat.S_ISFIFO(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode)
                else "a device" if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode) else "not a regular file")
        raise UnreadableFile(str(path), f"is {kind}, not a regular file: skipped")
    try:
        with open(path, "rb", opener=lambda name, flags: os.open(name, flags | getattr(os, "O_NONBLOCK", 0))) as f:
            return f.read()
    except OSError as exc:
        if exc.errno == errno.EISDIR:
            raise UnreadableFile(str(path), "is a folder, not a file") from exc
        raise _os_error(path, exc) from exc


def _os_error(path: Path, exc: OSError) -> UnreadableFile:
    import errno

    if isinstance(exc, PermissionError):
        return UnreadableFile(str(path), "permission denied: cannot read the file (check its permissions)")
    if exc.errno == errno.ELOOP:
        return UnreadableFile(str(path), "symbolic link loop: the link points (through other links) back to "
                                         "itself; fix or delete the link")
    if isinstance(exc, FileNotFoundError):
        return UnreadableFile(str(path), "file not found (a broken link, or it was deleted while ingesting)")
    return UnreadableFile(str(path), f"cannot read the file: {exc.strerror or exc}")


# --- text --------------------------------------------------------------------------------------------------------


def sniff_binary(data: bytes) -> str | None:
    """What a file is when its first bytes say it is not text ("a PNG image"), else None."""
    for magic, what in _MAGIC:
        if data.startswith(magic):
            return what
    return None


def looks_like_text(data: bytes) -> bool:
    """Whether a file without an extension is a note worth reading: no known binary signature, no NUL bytes,
    and it decodes to mostly printable characters."""
    head = data[:8192]
    if not head.strip() or sniff_binary(head) or b"\x00" in head:
        return False
    text = head.decode("utf-8", errors="replace")
    return _noise_ratio(text) < 0.02


def _noise_ratio(text: str) -> float:
    """Share of characters that are control characters, replacement marks or private-use code points: near 0
    in any real text, high in binary data decoded as text."""
    if not text:
        return 0.0
    noise = sum(1 for ch in text if (unicodedata.category(ch) in ("Cc", "Co", "Cs", "Cn") and ch not in "\t\n\r\f")
                or ch == "\ufffd")
    return noise / len(text)


def decode_text(path: Path, data: bytes) -> tuple[str, list[str]]:
    """Decode a note: UTF-8 (with or without BOM), UTF-16 (with a BOM, or recognised by its zero bytes), else
    Windows-1252 / Latin-1 with a warning. Binary data under a text name is refused, never indexed as noise.

    Notes written on older systems are often Windows-1252; refusing them would lose the whole file over a few
    accented letters, so they load and the summary says which encoding was assumed.
    """
    what = sniff_binary(data)
    if what is not None:
        raise UnsupportedFile(str(path), f"not text: the file is {what} with a text file name")
    warnings: list[str] = []
    text = None
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            pass
    if text is None:
        utf16 = _utf16_without_bom(data)
        if utf16 is not None:
            text = data.decode(utf16, errors="replace")
            warnings.append(f"no byte-order mark; read as {utf16.upper()} from its zero bytes")
    if text is None:
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            first_bad = exc.start
            head = data[:8192]
            if head.count(b"\x00") > len(head) // 10:
                raise UnsupportedFile(str(path), "looks like a binary file, not text") from None
            try:
                text, label = data.decode("cp1252"), "Windows-1252"
            except UnicodeDecodeError:
                text, label = data.decode("latin-1"), "Latin-1"
            warnings.append(f"not valid UTF-8 (first bad byte at offset {first_bad}); read as {label}: check "
                            f"accented characters, or convert the file to UTF-8")
            if _looks_like_other_encoding(text):
                warnings.append(f"looks like mojibake when read as {label}: the file is probably in another "
                                f"encoding (e.g. Shift-JIS, GBK, KOI8-R); convert it to UTF-8 and ingest again")
    repaired = _undo_double_encoding(text)
    if repaired is not None:
        text = repaired
        warnings.append("double-encoded text repaired (UTF-8 once read as Windows-1252 and saved again, "
                        "'CafÃ©' for 'Café'); re-save the file as UTF-8")
    noise = _noise_ratio(text)
    if noise > 0.05:
        fell_back = any(w.startswith("not valid UTF-8") for w in warnings)
        raise UnsupportedFile(str(path), f"not text: {noise:.0%} of it are control characters or undecodable bytes "
                                         + ("(binary data, or text in an encoding other than UTF-8 and "
                                            "Windows-1252, e.g. Shift-JIS or GBK: convert it to UTF-8)"
                                            if fell_back else "(binary data, or a damaged file)"))
    if noise > 0.001:
        warnings.append(f"{noise:.1%} control characters or undecodable bytes (a damaged file?); they are dropped")
    if noise:
        text = "".join(ch for ch in text if not ((unicodedata.category(ch) in ("Cc", "Co", "Cs", "Cn")
                                                  and ch not in "\t\n\r\f") or ch == "\ufffd"))
    return text, warnings


_DOUBLE_ENCODED = re.compile("[ÃÂâ][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc"
                             "\u2013-\u2026\u2030\u2039\u203a\u20ac\u2122]")


def _undo_double_encoding(text: str) -> str | None:
    """The text behind mojibake such as 'CafÃ©' or 'donâ€™t' (UTF-8 bytes once decoded as Windows-1252),
    or None when the text shows no such pairs or does not decode back cleanly."""
    if len(_DOUBLE_ENCODED.findall(text)) < 2:
        return None
    try:
        fixed = text.encode("cp1252").decode("utf-8")
    except UnicodeError:
        return None
    return fixed if fixed != text else None


def _looks_like_other_encoding(text: str) -> bool:
    """A text in another 8-bit or multi-byte encoding read as Windows-1252 shows either mostly symbols among its
    non-ASCII characters (Shift-JIS, GBK) or words made almost wholly of accented letters (Cyrillic KOI8-R or
    Windows-1251: 'Ïðèâåò'). A Western text's accented letters are a small share of its letters."""
    high = [ch for ch in text if ord(ch) > 127]
    if len(high) < 20:
        return False
    high_letters = sum(1 for ch in high if unicodedata.category(ch).startswith("L"))
    letters = sum(1 for ch in text if ch.isalpha())
    return high_letters < len(high) * 0.6 or high_letters > letters * 0.5


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 text saved without a byte-order mark: every other byte is zero for Latin-script text."""
    head = data[:4096]
    if len(head) < 8 or len(head) % 2:
        return None
    even, odd = head[0::2], head[1::2]
    if odd.count(0) > len(odd) * 0.7 and even.count(0) < len(even) * 0.1:
        encoding = "utf-16-le"
    elif even.count(0) > len(even) * 0.7 and odd.count(0) < len(odd) * 0.1:
        encoding = "utf-16-be"
    else:
        return None
    sample = head.decode(encoding, errors="replace")
    # Text has spaces or line breaks between its words; binary data with a zero byte every other byte has not.
    if sum(ch.isspace() for ch in sample) < len(sample) * 0.02 or _noise_ratio(sample) > 0.01:
        return None
    return encoding


# `key:: value` (a space after the colons, so C++'s `std::vector` is prose, not a property).
_LOGSEQ_PROPERTY = re.compile(r"^\s*(?:-\s+)?([A-Za-z][\w-]*)::(?:[ \t]+(.*?))?[ \t]*$")


def _property_lines(text: str) -> tuple[dict[str, str], str]:
    """Logseq/Org-roam style `key:: value` lines are note metadata, not prose: lifted out into a dict. Lines
    inside fenced code blocks stay."""
    metadata: dict[str, str] = {}
    kept: list[str] = []
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else _LOGSEQ_PROPERTY.match(line)
        if match:
            metadata.setdefault(match.group(1).lower(), match.group(2) or "")
            continue
        kept.append(line)
    return metadata, "\n".join(kept) if metadata else text


# --- PDF ---------------------------------------------------------------------------------------------------------


class _ParseTimeout(Exception):
    """Raised inside the parsing thread when a PDF runs past its time budget."""


class _Deadline:
    """Interrupts the current thread with `_ParseTimeout` once `seconds` pass. pypdf is pure Python, so the
    asynchronous exception lands between two bytecodes of whatever loop a hostile file drives it into. It is
    raised again every 50 ms until the parse stops: one landing in a finalizer is swallowed by Python."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._thread_id = threading.get_ident()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._done = False
        self.fired = False
        self._started = time.monotonic()
        self._watcher = threading.Thread(target=self._watch, name="pdf-deadline", daemon=True)

    def extend_to(self, seconds: float) -> None:
        """Make the whole budget `seconds`, counted from the start."""
        with self._lock:
            if not self.fired:
                self.seconds = seconds
                self._wake.notify()

    def _watch(self) -> None:
        import ctypes

        attempts = 0
        with self._lock:
            while not self._done:
                left = self.seconds - (time.monotonic() - self._started)
                if left > 0 and not self.fired:
                    self._wake.wait(left)
                    continue
                if attempts >= 100:  # 5 s of retries: the thread is stuck in C code; leave it be
                    self._done = True
                    break
                self.fired = True
                attempts += 1
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._thread_id),
                                                           ctypes.py_object(_ParseTimeout))
                self._wake.wait(0.05)

    def __enter__(self) -> "_Deadline":
        import sys

        self._started = time.monotonic()
        self._previous_hook = sys.unraisablehook

        def quiet(unraisable) -> None:  # the swallowed interruptions are retried; not worth a traceback
            if unraisable.exc_type is not _ParseTimeout:
                self._previous_hook(unraisable)

        sys.unraisablehook = quiet
        self._watcher.start()
        return self

    def stop(self) -> None:
        """No more interruptions, and none left pending. Safe to call more than once."""
        import ctypes

        self._done = True
        with self._lock:
            self._done = True
            self._wake.notify()
            if self.fired:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self._thread_id), None)
        previous = getattr(self, "_previous_hook", None)
        if previous is not None:
            import sys

            sys.unraisablehook = previous
            self._previous_hook = None

    def __exit__(self, exc_type, exc, tb) -> None:
        self.stop()


def _stop(deadline: "_Deadline | None") -> None:
    """Stop the deadline even if its last interruption lands while stopping."""
    while deadline is not None:
        try:
            deadline.stop()
            return
        except _ParseTimeout:
            continue


class _PypdfLog(logging.Handler):
    """Collects what pypdf logs while it reads a page: it repairs or skips broken content with a log line and
    returns empty text, which would otherwise pass for a blank page."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _load_pdf(path: Path, data: bytes, password: str | None, time_budget_s: float | None, ocr: bool = True,
              on_ocr_page: Callable[[int, int], None] | None = None) -> LoadedDocument:
    from pypdf import PdfReader, apply_configuration
    from pypdf.errors import FileNotDecryptedError, LimitReachedError, WrongPasswordError

    pypdf_logger = logging.getLogger("pypdf")
    pypdf_logger.setLevel(logging.ERROR)  # pypdf logs every repaired xref; the reasons we give suffice
    header = data.find(b"%PDF-", 0, 65536)
    if header < 0:
        what = sniff_binary(data)
        raise CorruptFile(str(path), "not a PDF (no %PDF header): " + (
            f"the file is {what} renamed .pdf" if what else "damaged file, or a different format renamed .pdf"))
    data = data[header:]  # a mail or download wrapper before the header; offsets count from the header
    budget = time_budget_s
    sections: list[Section] = []
    unreadable: dict[int, str] = {}
    textless: list[int] = []
    oversized: dict[int, str] = {}
    ocr_pages: list[int] = []
    ocr_problem: str | None = None
    page_count = 0
    log = _PypdfLog()
    deadline: _Deadline | None = None
    pypdf_logger.addHandler(log)
    pypdf_logger.setLevel(logging.WARNING)  # heard by `log` only: pypdf's warnings name a page's damage
    pypdf_logger.propagate = False
    try:
        deadline = _Deadline(budget if budget is not None else PDF_TIME_BUDGET_S)
        with apply_configuration(**PDF_LIMITS), deadline:
            try:
                reader = PdfReader(io.BytesIO(data))
                if reader.is_encrypted:
                    _decrypt(reader, path, password)
                page_count = len(reader.pages)
                if budget is None:  # a big document gets time in proportion to its pages
                    deadline.extend_to(PDF_TIME_BUDGET_S + PDF_TIME_PER_PAGE_S * page_count)
            except LoadError:
                raise
            except (FileNotDecryptedError, WrongPasswordError) as exc:
                raise _encrypted(path, password) from exc
            except _ParseTimeout:
                raise
            except LimitReachedError as exc:
                raise CorruptFile(str(path), f"too large to parse: over a safety limit of the PDF reader "
                                             f"({_short(exc)})") from exc
            except RecursionError as exc:
                raise CorruptFile(str(path), "damaged PDF: its structure nests too deep to parse") from exc
            except Exception as exc:  # pypdf raises assorted errors on malformed input
                raise CorruptFile(str(path), f"damaged or truncated PDF, cannot be parsed "
                                             f"({_describe(exc)})") from exc
            for number in range(1, page_count + 1):
                del log.messages[:]
                try:
                    size = _content_size(reader.pages[number - 1])
                    if size > PDF_PAGE_CONTENT_MAX_BYTES:
                        # Extracting text from it would take many times its size in memory; rendered, it costs
                        # a bitmap. With OCR off it is skipped, the reason kept.
                        oversized[number] = (f"too large to read: {size / 1048576:.0f} MB of drawing instructions "
                                             f"on one page (limit {PDF_PAGE_CONTENT_MAX_BYTES // 1048576} MB)")
                        if ocr:
                            textless.append(number)
                        else:
                            unreadable[number] = oversized[number] + "; turn OCR on to read it as an image"
                        continue
                    text = _clean_pdf_text(reader.pages[number - 1].extract_text() or "")
                except _ParseTimeout:
                    raise
                except (FileNotDecryptedError, WrongPasswordError) as exc:
                    raise _encrypted(path, password) from exc
                except Exception as exc:  # one bad page costs that page, not the document
                    unreadable[number] = _page_reason(exc)
                    continue
                if text.strip():
                    sections.append(Section(text, page=number))
                elif log.messages:
                    unreadable[number] = _page_reason(None, log.messages[0])
                else:
                    textless.append(number)
            if ocr and textless:
                deadline.extend_to(deadline.seconds + OCR_TIME_PER_PAGE_S * len(textless))
                ocr_problem = _ocr_pages(data, password, textless, sections, unreadable, ocr_pages, on_ocr_page)
                sections.sort(key=lambda section: section.page or 0)
            title = _pdf_title(reader, path)
            sections.extend(_form_fields(reader, page_count))
    except _ParseTimeout as exc:
        _stop(deadline)
        done = f" (stopped at page {len(sections) + len(unreadable) + 1} of {page_count})" if page_count else ""
        raise CorruptFile(str(path), f"too slow to parse: over the {deadline.seconds:g} s budget for a PDF of "
                                     f"this size{done}; the file may be built to stall readers") from exc
    finally:
        _stop(deadline)
        pypdf_logger.removeHandler(log)
        pypdf_logger.setLevel(logging.ERROR)
        pypdf_logger.propagate = True
    if page_count == 0:
        raise CorruptFile(str(path), "PDF with no pages (damaged or truncated)")
    if unreadable and not sections:
        raise CorruptFile(str(path), f"no page could be read: {_pages_text(unreadable)}")
    if sum(len("".join(s.text.split())) for s in sections) < MIN_PDF_TEXT_CHARS:
        pages = f"{page_count} page{'s' if page_count != 1 else ''}"
        if not ocr:
            reason = (f"no extractable text in {pages}: looks scanned, and OCR is off; turn it on (setting "
                      f"ingest.ocr, flag --ocr, or SELFRAG_INGEST__OCR=true) to read it")
        elif ocr_problem:
            reason = f"no extractable text in {pages}: looks scanned, and OCR could not run: {ocr_problem}"
        else:
            reason = (f"no text found in {pages}, neither in a text layer nor by OCR: the pages are blank, or the "
                      f"scan is too faint or small to read")
        raise NoExtractableText(str(path), reason)
    warnings = []
    if ocr_pages:
        big = [n for n in ocr_pages if n in oversized]
        plain = [n for n in ocr_pages if n not in oversized]
        if plain:
            warnings.append(f"{_ranges(plain)} read by OCR (no text layer); check citations against the page")
        if big:
            warnings.append(f"{_ranges(big)} read by OCR: {oversized[big[0]]}")
    elif ocr_problem and textless:
        warnings.append(f"{_ranges(textless)} without a text layer not read: OCR could not run ({ocr_problem})")
    if unreadable:
        rest = page_count - len(unreadable)
        warnings.append(f"partial: {_pages_text(unreadable)}; "
                        + ("the other page is indexed" if rest == 1 else f"the other {rest} pages are indexed"))
    if header:
        warnings.append(f"{header} bytes of something else before the PDF header were ignored")
    return LoadedDocument(path=str(path), title=title, sections=sections, kind="pdf", pages=page_count,
                          warnings=warnings, unreadable_pages=unreadable, ocr_pages=ocr_pages)


def _content_size(page) -> int:
    """Bytes of a page's decoded drawing instructions (0 when it has none)."""
    contents = page.get_contents()
    return len(contents.get_data()) if contents is not None else 0


def _ocr_pages(data: bytes, password: str | None, pages: list[int], sections: list[Section],
               unreadable: dict[int, str], done: list[int],
               on_page: Callable[[int, int], None] | None) -> str | None:
    """Read `pages` (1-based, without a text layer) by OCR into `sections`; a page that fails is recorded in
    `unreadable`. Returns why OCR could not run at all, or None."""
    from ingest import ocr

    try:
        document = ocr.open_pdf(data, password)
    except ocr.OcrUnavailable as exc:
        return str(exc)
    except Exception as exc:  # PDFium refused a file pypdf read
        return f"the PDF renderer could not open the file ({_describe(exc)})"
    try:
        for position, number in enumerate(pages):
            if on_page is not None:
                on_page(position, len(pages))
            try:
                text = ocr.read_image(ocr.render_page(document, number - 1))
            except _ParseTimeout:
                raise
            except ocr.OcrUnavailable as exc:
                return str(exc)
            except MemoryError:
                unreadable[number] = "too large to render for OCR"
                continue
            except Exception as exc:
                unreadable[number] = f"OCR failed ({_describe(exc)})"
                continue
            text = _clean_pdf_text(text)
            if text.strip():
                sections.append(Section(text, page=number))
                done.append(number)
        if on_page is not None:
            on_page(len(pages), len(pages))
    finally:
        document.close()
    return None


def _ranges(pages: list[int]) -> str:
    """`page 3`, `pages 1-3, 7`."""
    runs: list[list[int]] = []
    for number in sorted(pages):
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    text = ", ".join(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]) for run in runs)
    return ("page " if len(pages) == 1 else "pages ") + text


def _pages_text(unreadable: dict[int, str]) -> str:
    """`pages 12, 40 unreadable (page 12: ...; page 40: ...)`, grouping pages that fail for the same reason."""
    by_reason: dict[str, list[int]] = {}
    for number, reason in sorted(unreadable.items()):
        by_reason.setdefault(reason, []).append(number)
    numbers = sorted(unreadable)
    shown = ", ".join(str(n) for n in numbers[:20]) + (f" and {len(numbers) - 20} more" if len(numbers) > 20 else "")
    label = "page" if len(numbers) == 1 else "pages"
    reasons = "; ".join(reason if len(by_reason) == 1 else f"{_numbers(pages)}: {reason}"
                        for reason, pages in by_reason.items())
    return f"{label} {shown} unreadable ({reasons})"


def _numbers(pages: list[int]) -> str:
    text = ", ".join(str(n) for n in pages[:10]) + ("…" if len(pages) > 10 else "")
    return ("page " if len(pages) == 1 else "pages ") + text


def _page_reason(exc: BaseException | None, logged: str | None = None) -> str:
    """Why a page could not be read, in words (the library's own message kept short in brackets)."""
    from pypdf.errors import LimitReachedError

    if exc is None:
        detail = _printable(logged or "")
        if "decompress" in detail.lower():
            return f"its content is damaged compressed data ({_short(detail, 80)})"
        return f"its content is damaged ({_short(detail, 80)})"
    if isinstance(exc, LimitReachedError):
        return f"too large to parse (PDF reader limit: {_short(str(exc).rstrip('.'), 80)})"
    if isinstance(exc, RecursionError):
        return "its structure nests too deep to parse"
    if isinstance(exc, (KeyError, IndexError)):
        return f"it refers to parts missing from the file ({_describe(exc)})"
    if isinstance(exc, (UnicodeDecodeError, LookupError)):
        return f"its text uses a broken or unknown font encoding ({_describe(exc)})"
    return f"its content cannot be parsed ({_describe(exc)})"


def _printable(text: str) -> str:
    """A library message without the file bytes it may quote (`... starting with b'\\x8f...'`)."""
    for marker in (" b'", ' b"', "b'\\x"):
        if marker in text:
            text = text[:text.index(marker)].rstrip(" :@") + " …"
    return "".join(ch if ch.isprintable() else "?" for ch in text)


def _describe(exc: BaseException) -> str:
    """`TypeName: message`, short and printable (the raw message of a parser may hold binary bytes)."""
    message = _short(exc, 100)
    printable = _printable(message)
    return f"{type(exc).__name__}: {printable}" if printable != type(exc).__name__ else printable


def _form_fields(reader, page_count: int) -> list[Section]:
    """Text typed into the PDF's form fields (AcroForm): not part of any page's content stream, so page text
    extraction misses it. Filed under the last page, as one section."""
    try:
        fields = reader.get_fields() or {}
    except Exception:  # a broken form must not cost the pages
        return []
    lines = []
    for name, value in fields.items():
        filled = value.get("/V") if hasattr(value, "get") else None
        if filled is None:
            continue
        text = str(filled).strip()
        if text and text not in ("/Off", "/Yes") and not text.startswith("/"):
            label = str(value.get("/TU") or name).strip() if hasattr(value, "get") else str(name)
            lines.append(f"{label}: {text}")
    if not lines:
        return []
    return [Section("Form fields:\n" + "\n".join(lines), page=page_count or None)]


def _decrypt(reader, path: Path, password: str | None) -> None:
    from pypdf import PasswordType
    from pypdf.errors import DependencyError

    # Many PDFs are "encrypted" with an empty user password (to set permissions) and open without one.
    for candidate in ([password] if password else []) + [""]:
        try:
            if reader.decrypt(candidate) != PasswordType.NOT_DECRYPTED:
                return
        except DependencyError as exc:
            raise EncryptedPdf(str(path), f"AES-encrypted PDF and the cryptography package is missing "
                                          f"(pip install cryptography) ({_short(exc)})") from exc
        except NotImplementedError as exc:
            raise EncryptedPdf(str(path), f"encrypted with an unsupported method ({exc})") from exc
    raise _encrypted(path, password)


def _encrypted(path: Path, password: str | None) -> EncryptedPdf:
    if password:
        return EncryptedPdf(str(path), "wrong password: the password given does not open this encrypted PDF "
                                       "(check --password or its entry in the password file)")
    return EncryptedPdf(str(path), "encrypted PDF: needs a password; run again with --password PASSWORD, or "
                                   "list it in a password file (--password-file)")


def _pdf_title(reader, path: Path) -> str:
    try:
        title = (reader.metadata or {}).get("/Title")
    except Exception:  # broken metadata must not cost the document
        title = None
    title = " ".join(str(title).split()) if title else ""
    if (not title or title.lower() in {"untitled", "title"} or title.lower().endswith((".doc", ".docx", ".pdf"))
            or _not_a_name(title)):
        return readable_file_title(path)
    return title


def _not_a_name(title: str) -> bool:
    """Metadata that names no document: markup (`<submission><type> 10-Q`), or an identifier such as an SEC
    accession number (0000320193-22-000070) with hardly a letter in it."""
    letters = sum(ch.isalpha() for ch in title)
    return "<" in title or ">" in title or letters < 3 or letters < len(title.replace(" ", "")) * 0.4


_STEM_DATE = re.compile(r"(?<!\d)(19\d{2}|20\d{2})[-_]?(0[1-9]|1[0-2])[-_]?(0[1-9]|[12]\d|3[01])(?!\d)")
_MONTH_NAMES = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
                "November", "December"]


def readable_file_title(path: Path) -> str:
    """A title from the file name, with a date in it written out ("pati-20230630-10q" -> "pati 10q, June 30,
    2023"), so a question that names the date in words finds the document's passages."""
    stem = path.stem
    found = _STEM_DATE.search(stem)
    if not found:
        return stem
    year, month, day = int(found.group(1)), int(found.group(2)), int(found.group(3))
    rest = " ".join((stem[:found.start()] + " " + stem[found.end():]).replace("_", " ").replace("-", " ").split())
    written = f"{_MONTH_NAMES[month - 1]} {day}, {year}"
    return f"{rest}, {written}" if rest else written


_HYPHEN_BREAK = re.compile(r"(\w)-\n(\w)")
_SPACES = re.compile(r"[ \t\u00a0]+")


def _clean_pdf_text(text: str) -> str:
    """Join words hyphenated across lines and squeeze runs of spaces; line breaks stay for sentence splitting."""
    text = _HYPHEN_BREAK.sub(r"\1\2", text)
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.splitlines())


def _short(exc: BaseException | str, limit: int = 160) -> str:
    message = str(exc) or type(exc).__name__
    return message if len(message) < limit else message[:limit - 3] + "..."


# --- Markdown ----------------------------------------------------------------------------------------------------

_ATX = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n(?:---|\.\.\.)[ \t]*\n", re.DOTALL)


def _load_markdown(path: Path, text: str, warnings: list[str]) -> LoadedDocument:
    metadata: dict[str, str] = {}
    match = _FRONT_MATTER.match(text)
    if match:
        # YAML front matter: flat `key: value` pairs are kept as metadata; nested YAML is kept as its lines.
        for line in match.group(1).splitlines():
            key, colon, value = line.partition(":")
            if colon and key.strip() and not key.startswith((" ", "\t", "-")):
                metadata.setdefault(key.strip().lower(), value.strip().strip("\"'"))
        text = text[match.end():]
    properties, text = _property_lines(text)
    for key, value in properties.items():
        metadata.setdefault(key, value)
    title_from_meta = metadata.get("title") or None

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
    return LoadedDocument(path=str(path), title=title, sections=sections, kind="markdown", warnings=warnings,
                          metadata=metadata)


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
