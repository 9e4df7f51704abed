"""Real-world files: damaged pages cost only themselves, encrypted PDFs that open for reading are read, hostile
files fail cleanly on a time budget, odd files in a folder never stop the run, and nothing readable is skipped
without a word."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.errors import CorruptFile, EncryptedPdf, UnsupportedFile
from ingest.loaders import load_file
from ingest.pipeline import discover, ingest_paths
from ingest.store import DocumentStore, doc_id_for
from pdf_factory import aes_pdf, form_heavy_pdf, form_pdf, pdf_with_bad_pages, slow_pdf, text_pdf

ROOT = Path(__file__).resolve().parents[1]
PAGES = [f"Page {n} describes the tapir number {n} in the river valley." for n in range(1, 6)]


# --- PDFs --------------------------------------------------------------------------------------------------------


def test_a_bad_page_costs_only_itself(tmp_path: Path) -> None:
    pdf = pdf_with_bad_pages(tmp_path / "report.pdf", PAGES, {2: "limit", 4: "flate"})
    doc = load_file(pdf)
    assert doc.pages == 5 and [s.page for s in doc.sections] == [1, 3, 5]
    assert set(doc.unreadable_pages) == {2, 4}
    assert "too large to parse" in doc.unreadable_pages[2] and "array element count" in doc.unreadable_pages[2]
    assert "damaged compressed data" in doc.unreadable_pages[4]
    warning = doc.warnings[0]
    assert warning.startswith("partial: pages 2, 4 unreadable (page 2: too large to parse")
    assert "page 4: its content is damaged compressed data" in warning and "other 3 pages are indexed" in warning
    assert warning.isprintable()  # words, not a byte dump


def test_a_pdf_whose_every_page_is_bad_fails_with_the_reasons(tmp_path: Path) -> None:
    pdf = pdf_with_bad_pages(tmp_path / "all-bad.pdf", PAGES[:2], {1: "limit", 2: "limit"})
    with pytest.raises(CorruptFile) as failure:
        load_file(pdf)
    assert failure.value.reason.startswith("no page could be read: pages 1, 2 unreadable (too large to parse")


def test_partial_pdf_is_searchable_and_docs_says_partial(tmp_path: Path, store: DocumentStore, capsys,
                                                        monkeypatch) -> None:
    pdf = pdf_with_bad_pages(tmp_path / "report.pdf", PAGES, {2: "limit"})
    report = ingest_paths(store, [pdf])
    assert report.ok and report.added == [str(pdf)]
    assert report.warnings[str(pdf)][0].startswith("partial: page 2 unreadable")
    record = store.document(str(pdf))
    assert record.status == "ok" and record.partial and record.pages == 5
    hits = store.search("tapir number 5", k=5, mode="fts")
    assert {h.page_start for h in hits} <= {1, 3, 4, 5} and any(h.page_end == 5 for h in hits)

    from selfrag_tui.application.session import Session
    from selfrag_tui.application.settings import resolve
    from selfrag_tui.commands import docs

    monkeypatch.setattr(Session, "require_store", lambda self: store)
    monkeypatch.setenv("COLUMNS", "250")
    assert docs.run(type("Args", (), {"json": False})(), Session(resolve())) == 0
    out = capsys.readouterr().out
    assert "partial" in out and "page 2 unreadable" in out and "too large to parse" in out


def test_aes_pdfs_open_and_a_wrong_password_says_so(tmp_path: Path) -> None:
    owner_only = aes_pdf(tmp_path / "statement.pdf", "Balance carried forward is 4711 crowns.")
    assert "4711 crowns" in load_file(owner_only).sections[0].text  # no password needed to read it
    locked = aes_pdf(tmp_path / "locked.pdf", "The gate code is 8812.", user_password="open-sesame")
    with pytest.raises(EncryptedPdf, match="needs a password"):
        load_file(locked)
    with pytest.raises(EncryptedPdf) as wrong:
        load_file(locked, password="guess")
    assert wrong.value.reason.startswith("wrong password")
    assert "8812" in load_file(locked, password="open-sesame").sections[0].text


def test_a_pdf_that_stalls_the_parser_fails_as_too_slow_with_its_cause(tmp_path: Path) -> None:
    pdf = slow_pdf(tmp_path / "stall.pdf", operators=150_000)
    with pytest.raises(CorruptFile) as failure:
        load_file(pdf, time_budget_s=0.2)
    assert failure.value.reason.startswith("too slow to parse: over the 0.2 s budget")
    assert type(failure.value.__cause__).__name__ == "_ParseTimeout"  # the real reason is kept, not hidden
    # The thread that parsed it goes on working normally afterwards.
    assert load_file(text_pdf(tmp_path / "next.pdf", ["Next file reads fine."])).sections[0].text


def test_bytes_before_the_header_and_short_real_text(tmp_path: Path) -> None:
    good = text_pdf(tmp_path / "hello.pdf", ["Hello, world!"])
    wrapped = tmp_path / "wrapped.pdf"
    wrapped.write_bytes(b"Content-Type: application/pdf\r\n\r\n" + good.read_bytes())
    doc = load_file(wrapped)
    assert doc.sections[0].text == "Hello, world!"  # short, but real text: indexed, not sent to OCR
    assert "33 bytes of something else before the PDF header were ignored" in doc.warnings


def test_form_field_values_are_read(tmp_path: Path) -> None:
    doc = load_file(form_pdf(tmp_path / "form.pdf", {"Applicant": "Zebulon Quartz", "Town": "Tromsø"}))
    text = "\n".join(s.text for s in doc.sections)
    assert "Applicant: Zebulon Quartz" in text and "Town: Tromsø" in text


def test_raised_limits_let_a_form_heavy_page_through(tmp_path: Path) -> None:
    """A page that stamps a form XObject more often than pypdf's default allows (5,000 times, as generated
    filings do with logos and boxes): with the defaults the text after them is lost; here it is read."""
    from pypdf import PdfReader, apply_configuration

    pdf = form_heavy_pdf(tmp_path / "filing.pdf", "Signed by Zebulon Quartz")
    with apply_configuration():
        assert "Zebulon" not in PdfReader(str(pdf)).pages[0].extract_text()
    assert "Signed by Zebulon Quartz" in load_file(pdf).sections[0].text


# --- notes -------------------------------------------------------------------------------------------------------


def test_binary_under_a_text_name_is_refused_with_what_it_is(tmp_path: Path) -> None:
    png = tmp_path / "diagram.md"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(2000))
    with pytest.raises(UnsupportedFile, match="not text: the file is a PNG image"):
        load_file(png)
    noise = tmp_path / "noise.txt"
    noise.write_bytes(bytes(range(1, 32)) * 40 + b"a few words")
    with pytest.raises(UnsupportedFile, match="control characters"):
        load_file(noise)


def test_utf16_without_bom_and_property_lines(tmp_path: Path) -> None:
    wide = tmp_path / "wide.txt"
    wide.write_bytes("Tapirs swim well and eat fruit.\n".encode("utf-16-le"))
    doc = load_file(wide)
    assert doc.sections[0].text == "Tapirs swim well and eat fruit." and "UTF-16-LE" in doc.warnings[0]
    logseq = tmp_path / "page.org"
    logseq.write_text("title:: Tapir care\ntags:: animals, zoo\n\nFeed tapirs twice a day.\n", encoding="utf-8")
    doc = load_file(logseq)
    assert doc.title == "Tapir care" and doc.metadata == {"title": "Tapir care", "tags": "animals, zoo"}
    assert doc.sections[0].text == "Feed tapirs twice a day."


# --- folders -----------------------------------------------------------------------------------------------------


def test_odd_files_in_a_folder(tmp_path: Path, store: DocumentStore) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "good.md").write_text("# Good\n\nCapybaras are the largest rodents.\n", encoding="utf-8")
    (docs / "LOUD.MD").write_text("# Loud\n\nUpper-case extensions count too.\n", encoding="utf-8")
    (docs / "notes.org").write_text("* Org\nOrg mode notes about okapis.\n", encoding="utf-8")
    (docs / "guide.adoc").write_text("= Guide\nAsciiDoc notes about pangolins.\n", encoding="utf-8")
    (docs / "old.mdown").write_text("Mdown notes about axolotls.\n", encoding="utf-8")
    (docs / "plain.text").write_text("Text notes about narwhals.\n", encoding="utf-8")
    (docs / "README").write_text("Extension-less notes about quolls.\n", encoding="utf-8")
    (docs / "program").write_bytes(b"\x7fELF\x02\x01\x01" + bytes(200))
    (docs / "latin1.txt").write_bytes("Crème brûlée from the café.".encode("cp1252"))
    (docs / "a.md").symlink_to(docs / "a.md")  # a link to itself
    (docs / "dangling.md").symlink_to(docs / "nowhere.md")
    os.mkfifo(docs / "pipe.md")
    (docs / "sheet.xlsx").write_bytes(b"PK\x03\x04")
    if os.geteuid() == 0:
        os.mknod(docs / "device.txt", 0o600 | stat.S_IFCHR, os.makedev(1, 3))  # like /dev/null

    report = ingest_paths(store, [docs])  # finishes: nothing here may stop it
    names = lambda paths: sorted(Path(p).name for p in paths)  # noqa: E731
    assert names(report.added) == ["LOUD.MD", "README", "good.md", "guide.adoc", "latin1.txt", "notes.org",
                                   "old.mdown", "plain.text"]
    reasons = {Path(p).name: r for p, r in report.failed.items()}
    assert set(reasons) == {"a.md", "dangling.md"}
    assert reasons["a.md"].startswith("symbolic link loop") and "broken link" in reasons["dangling.md"]
    skipped = {Path(p).name: r for p, r in report.skipped.items()}
    assert skipped["pipe.md"] == "a named pipe, not a file" and skipped["program"] == "no extension and not text"
    assert skipped["sheet.xlsx"] == "not a format the loaders read (.xlsx)"
    if os.geteuid() == 0:
        assert skipped["device.txt"] == "a device, not a file"
    assert "Windows-1252" in report.warnings[str(docs / "latin1.txt")][0]
    # The loop is recorded against its own path; the store stays consistent.
    record = store.document(str(docs / "a.md"))
    assert record is not None and record.doc_id == doc_id_for(docs / "a.md") and record.status == "failed"
    assert store.health().problems[0].problem == "2 document(s) failed to ingest" and len(store.health().problems) == 1


def test_named_fifo_and_loop_on_the_command_line(tmp_path: Path, store: DocumentStore) -> None:
    os.mkfifo(tmp_path / "pipe.txt")
    (tmp_path / "loop.md").symlink_to(tmp_path / "loop.md")
    report = ingest_paths(store, [tmp_path / "pipe.txt", tmp_path / "loop.md"])
    reasons = {Path(p).name: r for p, r in report.failed.items()}
    assert reasons["pipe.txt"] == "is a named pipe (FIFO), not a regular file: skipped"
    assert reasons["loop.md"].startswith("symbolic link loop")


def test_permission_denied_even_for_root(tmp_path: Path) -> None:
    """Root reads any file through its DAC capabilities, so the check runs in a child without them."""
    import shutil

    note = tmp_path / "private.md"
    note.write_text("secret", encoding="utf-8")
    note.chmod(0)
    code = ("from ingest.loaders import load_file\nfrom ingest.errors import UnreadableFile\n"
            f"try:\n    load_file({str(note)!r})\nexcept UnreadableFile as exc:\n    print(exc.reason)\n")
    command = [sys.executable, "-c", code]
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv to drop the capability to read any file")
        drop = "-dac_override,-dac_read_search"
        command = ["setpriv", "--bounding-set", drop, "--inh-caps", drop, *command]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.stdout.strip() == "permission denied: cannot read the file (check its permissions)", result
    note.chmod(0o600)


def test_a_failed_file_is_not_parsed_again_until_it_changes(tmp_path: Path, store: DocumentStore) -> None:
    stall = slow_pdf(tmp_path / "stall.pdf", operators=150_000)
    first = ingest_paths(store, [stall], pdf_time_budget_s=0.2)
    assert first.failed[str(stall)].startswith("too slow to parse")
    attempted = store.document(str(stall)).ingested_at
    again = ingest_paths(store, [stall], pdf_time_budget_s=0.2)
    assert again.failed == first.failed  # reported again, with its reason...
    assert store.document(str(stall)).ingested_at == attempted  # ...but not parsed or written again
    text_pdf(stall, ["Now a plain page about tapirs."])  # new bytes: tried again
    third = ingest_paths(store, [stall], pdf_time_budget_s=5)
    assert third.ok and third.updated == [str(stall)]


def test_discovery_reports_what_it_leaves_out(tmp_path: Path) -> None:
    (tmp_path / "keep.md").write_text("x", encoding="utf-8")
    (tmp_path / "photo.JPG").write_bytes(b"\xff\xd8\xff")
    (tmp_path / "build").mkdir()
    (tmp_path / "build" / "out.md").write_text("x", encoding="utf-8")
    (tmp_path / ".git").mkdir()
    found = discover([tmp_path], exclude=[".*", "build"])
    assert [c.path.name for c in found.files] == ["keep.md"]
    assert found.skipped == {str(tmp_path / "build"): "folder excluded by ingest.exclude",
                             str(tmp_path / "photo.JPG"): "not a format the loaders read (.JPG)"}
    # A narrower include: other files are listed as not matching it.
    narrowed = discover([tmp_path], include=["*.PDF"], exclude=[".*"])
    assert narrowed.files == [] and narrowed.skipped[str(tmp_path / "keep.md")] == "matches no ingest.include pattern"


# --- CJK ---------------------------------------------------------------------------------------------------------


def test_cjk_text_is_cut_at_its_sentences_and_found_by_keyword(tmp_path: Path, store: DocumentStore) -> None:
    from ingest.chunking import chunk_document, split_sentences

    assert split_sentences("東京大学は日本の大学です。研究が盛んです！「本当？」はい。") == [
        "東京大学は日本の大学です。", "研究が盛んです！", "「本当？」", "はい。"]
    long = "北京是中国的首都。" * 60  # 540 characters, no spaces: sized by characters, cut at its full stops
    doc = load_file(_write(tmp_path / "beijing.txt", long))
    chunks = chunk_document(doc, chunk_words=100, overlap_words=20)
    assert len(chunks) >= 4 and all(c.text.endswith("。") and " " not in c.text for c in chunks)

    _write(tmp_path / "tokyo.md", "# 大学\n\n東京大学は日本の大学です。研究が盛んです。\n")
    _write(tmp_path / "kyoto.md", "# 寺\n\n京都の寺はとても古い。\n")
    _write(tmp_path / "fox.md", "# Fox\n\nThe quick brown fox jumps.\n")
    ingest_paths(store, [tmp_path / "tokyo.md", tmp_path / "kyoto.md", tmp_path / "fox.md"])
    for query, expected in (("東京大学", "tokyo.md"), ("日本の大学", "tokyo.md"), ("寺", "kyoto.md"),
                            ("quick fox", "fox.md")):
        assert [Path(h.path).name for h in store.search(query, k=1, mode="fts")] == [expected], query


def test_an_older_text_index_is_rebuilt_for_cjk(tmp_path: Path, store: DocumentStore) -> None:
    from lancedb.index import FTS

    _write(tmp_path / "tokyo.md", "# 大学\n\n東京大学は日本の大学です。\n")
    ingest_paths(store, [tmp_path / "tokyo.md"])
    table = store._chunks()
    table.create_index("fts_text", config=FTS(), replace=True)  # as stores made before ICU word splitting
    assert store.search("東京大学", k=1, mode="fts") == []
    phases: list[str] = []
    store.optimize(on_phase=phases.append)
    assert "indexing" in phases and store.search("東京大学", k=1, mode="fts")[0].path.endswith("tokyo.md")


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_note_properties_are_metadata_not_prose(tmp_path: Path, store: DocumentStore) -> None:
    note = _write(tmp_path / "garden.md",
                  "---\ntitle: Garden log\ntags: [beans, squash]\n---\ntype:: journal\n- status:: done\n\n"
                  "# Spring\n\nSow beans after the frost.\n\n```cpp\nstd::vector<int> rows;\nkey:: kept in code\n```\n")
    doc = load_file(note)
    assert doc.title == "Garden log"
    assert doc.metadata == {"title": "Garden log", "tags": "[beans, squash]", "type": "journal", "status": "done"}
    body = "\n".join(s.text for s in doc.sections)
    assert "journal" not in body and "status" not in body
    assert "std::vector<int> rows;" in body and "key:: kept in code" in body  # code is never metadata
    ingest_paths(store, [note])
    assert store.document(str(note)).metadata == doc.metadata
    assert store.search("journal", k=5, mode="fts") == []  # properties are not passages


def test_a_file_the_store_cannot_take_costs_only_itself(tmp_path: Path, store: DocumentStore, embedder) -> None:
    """A group commit that fails is retried file by file: the file that cannot be written is recorded as failed
    with the store's reason, the others are written."""
    from ingest.chunking import Chunk
    from ingest.pipeline import _commit_each_on_error
    from ingest.store import DocumentWrite

    def write(name: str, text: str, vectors) -> DocumentWrite:
        chunk = Chunk(title=name, text=text, page_start=None, page_end=None, heading=None, ordinal=0)
        return DocumentWrite(path=str(tmp_path / name), title=name, content_hash=name, size=1, mtime=0.0,
                             kind="text", chunks=[chunk], vectors=vectors)

    good = write("good.txt", "Kiwis are flightless birds.", embedder.embed(["Kiwis are flightless birds."]))
    bad = write("bad.txt", "Vectors of the wrong size.", [[0.5, 0.5, 0.5]])
    committed = _commit_each_on_error(store, [good, bad])
    assert committed == {good.path}
    assert bad.status == "failed" and bad.error.startswith("could not be written to the store (")
    records = {Path(r.path).name: r for r in store.documents()}
    assert records["good.txt"].status == "ok" and records["bad.txt"].status == "failed"
    assert [Path(h.path).name for h in store.search("kiwis", k=5, mode="fts")] == ["good.txt"]
    assert [p.problem for p in store.health().problems] == ["1 document(s) failed to ingest"]


def test_mojibake_is_repaired_or_reported(tmp_path: Path) -> None:
    twice = tmp_path / "twice.txt"
    twice.write_bytes("Café crème, don’t worry.".encode("utf-8").decode("cp1252").encode("utf-8"))
    doc = load_file(twice)
    assert doc.sections[0].text == "Café crème, don’t worry." and "double-encoded text repaired" in doc.warnings[0]
    russian = tmp_path / "russian.txt"
    russian.write_bytes("Привет, как дела? Всё хорошо, спасибо большое.".encode("cp1251"))
    assert any("looks like mojibake when read as Windows-1252" in w for w in load_file(russian).warnings)
    japanese = tmp_path / "japanese.txt"
    japanese.write_bytes("これは日本語のテキストです。東京大学。".encode("shift_jis"))
    with pytest.raises(UnsupportedFile, match="encoding other than UTF-8 and Windows-1252, e.g. Shift-JIS"):
        load_file(japanese)
    french = tmp_path / "french.txt"
    french.write_bytes("Crème brûlée from the café, naïve señor, déjà vu.".encode("cp1252"))
    assert [w[:19] for w in load_file(french).warnings] == ["not valid UTF-8 (fi"]  # accents are no mojibake


def test_a_page_too_large_to_extract_is_read_by_ocr_or_skipped_with_its_reason(tmp_path: Path, monkeypatch) -> None:
    """Text extraction holds many times a page's drawing instructions in memory; past a limit the page is read
    from its rendering by OCR instead (a bitmap's worth of memory), or, with OCR off, skipped with its reason."""
    import ingest.loaders as loaders

    monkeypatch.setattr(loaders, "PDF_PAGE_CONTENT_MAX_BYTES", 1024 * 1024)
    big = slow_pdf(tmp_path / "big.pdf", operators=150_000)  # about 2.3 MB of instructions, "Slow page." on it
    doc = load_file(big)
    assert doc.ocr_pages == [1] and "Slow page" in doc.sections[0].text
    assert doc.warnings == ["page 1 read by OCR: too large to read: 2 MB of drawing instructions on one page "
                            "(limit 1 MB)"]
    with pytest.raises(CorruptFile) as failure:
        load_file(big, ocr=False)
    assert "too large to read" in failure.value.reason and "turn OCR on" in failure.value.reason
