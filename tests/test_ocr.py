"""Built-in OCR: PDF pages without a text layer are rendered (PDFium) and read (RapidOCR) during ingest, offline;
their passages are found by search and marked as read by OCR in `docs`, `search` and the app's passages. Scans are
made here: text typeset into an A4 image at 200 dpi, embedded in a PDF with no text layer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.errors import NoExtractableText
from ingest.loaders import load_file
from ingest.pipeline import OCR_PAGES_KEY, ingest_paths
from ingest.store import DocumentStore
from pdf_factory import image_scan_pdf, text_pdf
from selfrag_tui.cli import main

HERON = "The grey heron nests on the north bank of the Valder river every spring."
RANGERS = "Rangers counted forty two nests in April."
# Pages long enough to stand as passages of their own (shorter pages are joined with the next).
OCELOT = "Field notes, summer. The ocelot was seen twice near the road. " + "Tracks were measured and drawn. " * 12
KINKAJOU = ("The kinkajou sleeps in hollow trees by day. At night it climbs to feed on figs and nectar, using its "
            "tail to hold on. " + "It was heard calling from the canopy. " * 6)


@pytest.fixture(scope="module")
def scans(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("scans")
    return {
        "heron": image_scan_pdf(folder / "heron.pdf", [f"{HERON}\n\n{RANGERS}"]),
        # Page 1 has real text, page 2 is a scan, page 3 is blank paper.
        "mixed": image_scan_pdf(folder / "mixed.pdf", ["", KINKAJOU, ""], text_layer={0: OCELOT}),
    }


def words(text: str) -> set[str]:
    return {w.strip(".,").lower() for w in text.split()}


def test_a_scanned_page_is_read_by_ocr_with_its_words_in_order(scans) -> None:
    calls: list[tuple[int, int]] = []
    document = load_file(scans["heron"], on_ocr_page=lambda done, total: calls.append((done, total)))
    assert document.ocr_pages == [1] and document.pages == 1
    text = " ".join(section.text for section in document.sections)
    assert {"heron", "valder", "rangers", "april"} <= words(text)
    assert text.index("heron") < text.index("Rangers")  # reading order, top to bottom
    assert calls == [(0, 1), (1, 1)]
    assert document.warnings == ["page 1 read by OCR (no text layer); check citations against the page"]


def test_only_pages_without_a_text_layer_are_read_by_ocr(scans, tmp_path: Path) -> None:
    document = load_file(scans["mixed"])
    assert document.ocr_pages == [2]  # the blank page is not counted as read
    assert [s.page for s in document.sections] == [1, 2]
    assert "ocelot" in words(document.sections[0].text) and "kinkajou" in words(document.sections[1].text)

    calls: list[tuple[int, int]] = []
    hello = load_file(text_pdf(tmp_path / "hello.pdf", ["Hello, world!"]), on_ocr_page=lambda *a: calls.append(a))
    assert hello.sections[0].text.strip() == "Hello, world!" and hello.ocr_pages == [] and calls == []


def test_with_ocr_off_a_scan_fails_naming_the_setting(scans) -> None:
    with pytest.raises(NoExtractableText) as failure:
        load_file(scans["heron"], ocr=False)
    assert "OCR is off" in failure.value.reason and "ingest.ocr" in failure.value.reason
    assert load_file(scans["mixed"], ocr=False).ocr_pages == []


def test_ingest_reports_ocr_progress_and_records_the_pages(scans, store: DocumentStore) -> None:
    updates = []
    report = ingest_paths(store, [scans["mixed"]], on_progress=updates.append)
    assert report.ok and report.warnings[str(scans["mixed"])][0].startswith("page 2 read by OCR")
    notes = [u.note for u in updates if u.phase == "OCR"]
    assert notes == ["page 1/2", "page 2/2"]  # the scan and the blank page: both without a text layer
    assert updates[-1].phase != "OCR"
    record = store.document(str(scans["mixed"]))
    assert record.metadata[OCR_PAGES_KEY] == "2"
    (hit,) = store.search("kinkajou hollow trees", k=1, mode="fts")
    assert hit.path == str(scans["mixed"]) and hit.page_start == 2


def test_a_scan_failed_with_ocr_off_is_read_once_ocr_is_on(scans, store: DocumentStore) -> None:
    failed = ingest_paths(store, [scans["heron"]], ocr=False)
    assert "OCR is off" in failed.failed[str(scans["heron"])]
    again = ingest_paths(store, [scans["heron"]], ocr=False)  # same bytes, same program: not parsed again
    assert "OCR is off" in again.failed[str(scans["heron"])]
    read = ingest_paths(store, [scans["heron"]])
    assert read.ok and [Path(p).name for p in read.updated] == ["heron.pdf"]
    assert store.search("Valder heron", k=1, mode="fts")[0].path == str(scans["heron"])


def test_cli_setting_search_and_docs_mark_ocr(scans, store_env: Path, embedder, capsys, monkeypatch) -> None:
    monkeypatch.setenv("SELFRAG_INGEST__OCR", "false")
    capsys.readouterr()
    assert main(["ingest", str(scans["heron"]), "--json"]) == 1
    assert "SELFRAG_INGEST__OCR" in json.loads(capsys.readouterr().out)["failed"][str(scans["heron"])]
    monkeypatch.delenv("SELFRAG_INGEST__OCR")
    assert main(["ingest", str(scans["heron"]), str(scans["mixed"]), "--json"]) == 0
    capsys.readouterr()

    assert main(["search", "kinkajou", "--k", "1", "--json"]) == 0
    (hit,) = json.loads(capsys.readouterr().out)["hits"]
    assert any(note.startswith("read by OCR (p. 2)") for note in hit["notes"])
    assert main(["search", "ocelot road", "--k", "1", "--mode", "fts", "--json"]) == 0
    (hit,) = json.loads(capsys.readouterr().out)["hits"]
    assert hit["page_start"] == 1 and hit["notes"] == []  # the page with a text layer is not marked
    assert main(["search", "kinkajou", "--k", "1"]) == 0
    assert "read by OCR (p. 2)" in capsys.readouterr().out
    assert main(["docs", "--json"]) == 0
    listing = {Path(d["path"]).name: d for d in json.loads(capsys.readouterr().out)["documents"]}
    assert listing["heron.pdf"]["warnings"][0].startswith("page 1 read by OCR")
    assert listing["mixed.pdf"]["metadata"][OCR_PAGES_KEY] == "2"
    assert main(["docs"]) == 0
    assert "OCR" in capsys.readouterr().out


def test_the_apps_passages_say_which_text_was_read_by_ocr(scans, store: DocumentStore, tmp_path: Path,
                                                           monkeypatch) -> None:
    """The Session's retriever (what the decoder and the app's source panel get) carries the mark; a report's
    cover-page facts ride along the same way."""
    from selfrag_tui.application.session import Session
    from selfrag_tui.application.settings import Settings
    from selfrag_tui.tui.markers import source_line

    monkeypatch.setenv("SELFRAG_DATA_DIR", str(tmp_path / "data"))
    assert ingest_paths(store, [scans["mixed"]]).ok
    session = Session(Settings(), store=store)
    by_page = {p.page_start: p for p in session.retrieve("kinkajou ocelot tracks canopy", 3)}
    assert by_page[2].ocr and by_page[2].notes[0].startswith("read by OCR (p. 2)")
    assert not by_page[1].ocr and by_page[1].notes == ()
    shown = source_line(1, by_page[2], None).plain
    assert "read by OCR (p. 2): may hold misread words" in shown


    # A filing's cover page gives its passages the issuer, form and period.
    cover = ("FORM 10-Q\nFor the quarterly period ended June 30, 2022\n_____\nKESTREL LOGISTICS, INC.\n"
             "(Exact name of registrant as specified in its charter)\n")
    filing = text_pdf(tmp_path / "kestrel-q2.pdf", [cover, "Net income of the quarter was $4,100,000. " * 8])
    assert ingest_paths(store, [filing]).ok
    assert store.document(str(filing)).metadata["issuer"] == "Kestrel Logistics, Inc."
    (passage,) = [p for p in session.retrieve("net income of the quarter", 5) if p.source == str(filing)][:1]
    assert passage.notes[0] == "Kestrel Logistics, Inc. · 10-Q · period ended 2022-06-30"
