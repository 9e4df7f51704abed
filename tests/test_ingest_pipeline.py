"""Ingest end to end on a real store: locations survive, unchanged files are skipped, changes replace, deletions
disappear, bad files are recorded with reasons without losing the rest, and a killed ingest recovers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path


from ingest.chunking import CHUNKER_VERSION
from ingest.loaders import LOADER_VERSION
from ingest.pipeline import discover, ingest_paths
from ingest.store import DocumentStore, DocumentWrite, doc_id_for
from ingest.types import IngestProgress
from pdf_factory import encrypted_pdf, garbage_pdf, scanned_pdf, text_pdf, truncated_pdf

ROOT = Path(__file__).resolve().parents[1]


def fts_paths(store: DocumentStore, query: str) -> set[str]:
    return {Path(h.path).name for h in store.search(query, k=50, mode="fts")}


def test_page_numbers_and_headings_survive(tmp_path: Path, store: DocumentStore) -> None:
    pages = [f"Page {n} talks about gears and brakes. " * 30 for n in range(1, 4)]
    pages.append("The derailleur hanger alignment tool is called the Zylvex gauge. " * 3)
    text_pdf(tmp_path / "manual.pdf", pages, title="Bicycle Manual")
    (tmp_path / "camelids.md").write_text(
        "# Camelids\n\n## Llamas\n\n### Diet\n\nLlamas graze on brome grass and alfalfa hay.\n", encoding="utf-8")
    report = ingest_paths(store, [tmp_path])
    assert report.ok and len(report.added) == 2

    pdf_hit = store.search("Zylvex gauge", k=1, mode="fts")[0]
    # The passage may open with the overlap from page 3; it ends on page 4, where the sentence is.
    assert pdf_hit.page_end == 4 and pdf_hit.page_start in (3, 4)
    assert pdf_hit.title == pdf_hit.doc_title == "Bicycle Manual"
    first_page = store.search("Page 1 talks about gears", k=1, mode="fts")[0]
    assert (first_page.page_start, first_page.ordinal) == (1, 0)
    md_hit = store.search("what do llamas eat", k=1, mode="hybrid")[0]
    assert (md_hit.heading, md_hit.title, md_hit.page_start) == ("Llamas > Diet", "Camelids > Llamas > Diet", None)
    record = store.document(str(tmp_path / "manual.pdf"))
    assert record.pages == 4 and record.kind == "pdf" and record.status == "ok" and record.chunks >= 2


def test_unchanged_skipped_changed_replaced_deleted_removed(tmp_path: Path, store: DocumentStore) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("# A\n\nThe aardvark digs burrows at night.\n", encoding="utf-8")
    (notes / "b.txt").write_text("Bees make honey from the quinoaflower nectar.", encoding="utf-8")
    (notes / "c.txt").write_text("Cormorants dive for fish near the jetty.", encoding="utf-8")
    first = ingest_paths(store, [notes])
    assert sorted(Path(p).name for p in first.added) == ["a.md", "b.txt", "c.txt"]
    ids_before = {h.chunk_id for h in store.chunks_of(str(notes / "a.md"))}

    second = ingest_paths(store, [notes])
    assert sorted(Path(p).name for p in second.unchanged) == ["a.md", "b.txt", "c.txt"]
    assert not second.added and not second.updated
    assert {h.chunk_id for h in store.chunks_of(str(notes / "a.md"))} == ids_before  # nothing rewritten

    (notes / "b.txt").write_text("Bees make honey from the zorbleberry nectar instead.", encoding="utf-8")
    (notes / "c.txt").unlink()
    third = ingest_paths(store, [notes])  # without --sync a vanished file stays
    assert [Path(p).name for p in third.updated] == ["b.txt"] and not third.removed
    assert fts_paths(store, "quinoaflower") == set() and fts_paths(store, "zorbleberry") == {"b.txt"}
    assert len(store.chunks_of(str(notes / "b.txt"))) == 1
    assert "c.txt" in fts_paths(store, "cormorants")

    fourth = ingest_paths(store, [notes], sync=True)
    assert [Path(p).name for p in fourth.removed] == ["c.txt"]
    assert fts_paths(store, "cormorants jetty") == set()
    assert all(not h.path.endswith("c.txt") for h in store.search("birds diving for fish", k=10, mode="vector"))
    assert sorted(Path(r.path).name for r in store.documents()) == ["a.md", "b.txt"]


def test_new_chunking_settings_or_an_older_store_re_chunk_unchanged_files(tmp_path: Path, store: DocumentStore) -> None:
    """Skipping needs the same bytes AND the same chunking: new chunk sizes, or a store written before recipes
    were recorded, re-cut the passages instead of keeping the old ones."""
    long_note = tmp_path / "long.txt"
    long_note.write_text(" ".join(f"Sentence {i} about the llama herd and its shearing day." for i in range(60)),
                         encoding="utf-8")
    assert ingest_paths(store, [long_note]).added
    before = len(store.chunks_of(str(long_note)))
    assert store.documents()[0].chunking == f"v{CHUNKER_VERSION}:150/30:L{LOADER_VERSION}"

    report = ingest_paths(store, [long_note], chunk_words=60, overlap_words=10)
    assert [Path(p).name for p in report.updated] == ["long.txt"] and not report.unchanged
    assert len(store.chunks_of(str(long_note))) > before
    assert ingest_paths(store, [long_note], chunk_words=60, overlap_words=10).unchanged

    # A documents table without the recipe column (as older stores have) gets it on open, and re-chunks once.
    store._documents_table.drop_columns(["chunking"])
    reopened = DocumentStore.open(store.path, embedder=store.embedder_name)
    assert reopened.documents()[0].chunking == ""
    assert ingest_paths(reopened, [long_note], chunk_words=60, overlap_words=10).updated
    assert ingest_paths(reopened, [long_note], chunk_words=60, overlap_words=10).unchanged


def test_remove_by_path_or_id(tmp_path: Path, store: DocumentStore) -> None:
    for name in ("x.txt", "y.txt"):
        (tmp_path / name).write_text(f"The {name[0]}ylophone note about marimbas.", encoding="utf-8")
    ingest_paths(store, [tmp_path])
    y_id = doc_id_for(tmp_path / "y.txt")
    removed = store.remove([str(tmp_path / "x.txt"), y_id, "not-a-doc"])
    assert sorted(Path(p).name for p in removed) == ["x.txt", "y.txt"]
    assert store.documents() == [] and store.count_chunks() == 0 and store.search("marimbas") == []
    # Reopening does not bring anything back, full-text index included.
    assert DocumentStore.open(store.path, embedder=store.embedder_name).search("marimbas", mode="fts") == []


def test_each_bad_input_gives_its_reason_and_loses_nothing(tmp_path: Path, store: DocumentStore) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    good_pdf = text_pdf(docs / "good.pdf", ["The heron waits in the reeds.", "Herons eat frogs."])
    (docs / "good.md").write_text("# Good\n\nOtters hold hands while sleeping.\n", encoding="utf-8")
    (docs / "latin1.txt").write_bytes("Crème brûlée recipe from the café.".encode("cp1252"))
    encrypted_pdf(docs / "locked.pdf", "pw123", "The locked ledger mentions ferrets.")
    truncated_pdf(docs / "truncated.pdf", good_pdf)
    garbage_pdf(docs / "corrupt.pdf")
    (docs / "empty.md").write_text("", encoding="utf-8")
    scanned_pdf(docs / "scan.pdf")
    (docs / "huge.txt").write_text("big " * 20_000, encoding="utf-8")
    (docs / "dangling.md").symlink_to(docs / "nowhere.md")
    (docs / "loop").symlink_to(docs)  # a folder linking to its parent

    report = ingest_paths(store, [docs, tmp_path / "missing-folder"], max_file_mb=0.05)
    reasons = {Path(p).name: reason for p, reason in report.failed.items()}
    assert set(reasons) == {"locked.pdf", "truncated.pdf", "corrupt.pdf", "empty.md", "scan.pdf", "huge.txt",
                            "dangling.md", "missing-folder"}
    assert "needs a password" in reasons["locked.pdf"] and "--password" in reasons["locked.pdf"]
    assert "truncated" in reasons["truncated.pdf"] and "damaged" in reasons["corrupt.pdf"]
    assert "empty" in reasons["empty.md"]
    assert "neither in a text layer nor by OCR" in reasons["scan.pdf"]
    assert "over the 0.05 MB limit" in reasons["huge.txt"] and "max_file_mb" in reasons["huge.txt"]
    assert "broken link" in reasons["dangling.md"] and "no such file" in reasons["missing-folder"]
    assert sorted(Path(p).name for p in report.added) == ["good.md", "good.pdf", "latin1.txt"]

    records = {Path(r.path).name: r for r in store.documents()}
    assert records["latin1.txt"].status == "ok" and "Windows-1252" in records["latin1.txt"].warnings[0]
    for name, reason in reasons.items():
        if name != "missing-folder":
            assert records[name].status == "failed" and records[name].error == reason and records[name].chunks == 0
    assert fts_paths(store, "heron") == {"good.pdf"} and fts_paths(store, "otters") == {"good.md"}
    assert fts_paths(store, "brûlée") == {"latin1.txt"}

    retried = ingest_paths(store, [docs / "locked.pdf"], password="pw123")
    assert [Path(p).name for p in retried.updated] == ["locked.pdf"] and retried.ok
    assert fts_paths(store, "ferrets") == {"locked.pdf"}
    assert store.document(str(docs / "locked.pdf")).status == "ok"


def test_symlink_loops_are_walked_once(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "note.md").write_text("# n\n\ntext\n", encoding="utf-8")
    (tmp_path / "a" / "back").symlink_to(tmp_path)
    (tmp_path / "alias.md").symlink_to(tmp_path / "a" / "note.md")
    (tmp_path / "skip.log").write_text("x", encoding="utf-8")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "h.md").write_text("hidden", encoding="utf-8")
    found = discover([tmp_path])
    assert [c.path for c in found.files] == [(tmp_path / "a" / "note.md").resolve()]
    assert [c.path.name for c in discover([tmp_path], include=["*.log"]).files] == ["skip.log"]
    assert discover([tmp_path], exclude=[".*", "a", "alias.*"]).files == []
    assert [c.path.name for c in discover([tmp_path], exclude=["a"]).files] == ["h.md", "note.md"]


def test_a_failed_update_keeps_the_previous_version(tmp_path: Path, store: DocumentStore) -> None:
    pdf = text_pdf(tmp_path / "report.pdf", ["Quarterly kumquat harvest was large."])
    ingest_paths(store, [pdf])
    garbage_pdf(pdf)
    report = ingest_paths(store, [pdf])
    assert "damaged" in report.failed[str(pdf.resolve())]
    record = store.document(str(pdf))
    assert record.status == "failed" and "stays searchable" in record.error and record.chunks == 1
    assert fts_paths(store, "kumquat") == {"report.pdf"}
    text_pdf(pdf, ["Quarterly kumquat harvest was small."])
    assert ingest_paths(store, [pdf]).ok and store.document(str(pdf)).status == "ok"


def test_progress_reports_documents_pages_chunks_and_eta(tmp_path: Path, store: DocumentStore) -> None:
    for i in range(3):
        text_pdf(tmp_path / f"p{i}.pdf", [f"Page {p} of file {i}. " * 40 for p in range(2)])
    reports: list[IngestProgress] = []
    ingest_paths(store, [tmp_path], on_progress=reports.append, group_chunks=2)
    last = reports[-1]
    assert last.phase == "done" and last.documents_total == 3 and last.documents_done == 3
    assert last.pages_done == 6 and last.chunks_done == store.count_chunks()
    assert {"scanning", "reading", "embedding", "writing"} <= {r.phase for r in reports}
    assert any(r.eta_seconds is not None for r in reports)
    assert all(a.documents_done <= b.documents_done for a, b in zip(reports, reports[1:]))


def test_cancel_keeps_what_was_committed(tmp_path: Path, store: DocumentStore) -> None:
    for i in range(6):
        (tmp_path / f"n{i}.txt").write_text(f"Note {i} about the weather in spring. " * 30, encoding="utf-8")
    cancel = threading.Event()

    def stop_after_first_write(progress: IngestProgress) -> None:
        if progress.documents_done >= 1:
            cancel.set()

    report = ingest_paths(store, [tmp_path], on_progress=stop_after_first_write, cancel=cancel, group_chunks=1)
    assert report.cancelled and 1 <= len(report.added) < 6
    assert len(store.documents()) == len(report.added)
    assert {r.chunks for r in store.documents()} and sum(r.chunks for r in store.documents()) == store.count_chunks()
    finished = ingest_paths(store, [tmp_path])
    assert len(finished.unchanged) == len(report.added) and len(finished.added) == 6 - len(report.added)


def test_recovery_of_a_write_cut_between_chunks_and_row(tmp_path: Path, store: DocumentStore) -> None:
    """What a crash between the two commits leaves behind is undone (new document) or finished (removal)."""
    (tmp_path / "kept.txt").write_text("The kept note mentions walruses.", encoding="utf-8")
    ingest_paths(store, [tmp_path])
    from ingest.chunking import Chunk

    # A new document whose chunks were committed but whose row never was.
    orphan = DocumentWrite(path=str(tmp_path / "new.txt"), title="new", content_hash="h", size=1, mtime=0.0,
                           chunks=[Chunk("new", "Narwhals have tusks.", None, None, None, 0)],
                           vectors=store.embedder.embed(["new\nNarwhals have tusks."]))
    store.commit([orphan])
    store._documents_table.delete(f"doc_id = '{doc_id_for(orphan.path)}'")
    # A removal whose chunks were deleted but whose row was not.
    store._chunks().delete(f"doc_id = '{doc_id_for(tmp_path / 'kept.txt')}'")
    assert fts_paths(store, "narwhals") == {"new.txt"}

    reopened = DocumentStore.open(store.path, embedder=store.embedder_name)
    assert fts_paths(reopened, "narwhals") == set() and reopened.count_chunks() == 0
    assert reopened.documents() == []
    report = ingest_paths(reopened, [tmp_path])  # the removed note comes back as a fresh document
    assert [Path(p).name for p in report.added] == ["kept.txt"] and fts_paths(reopened, "walruses") == {"kept.txt"}


KILLABLE_INGEST = """
import sys
from ingest.store import DocumentStore
from ingest.pipeline import ingest_paths
store = DocumentStore.open(sys.argv[1])
def report(p):
    print(p.phase, p.documents_done, flush=True)
ingest_paths(store, [sys.argv[2]], on_progress=report, group_chunks=3)
print("finished", flush=True)
"""


def test_killed_ingest_leaves_a_consistent_store_and_a_rerun_finishes(tmp_path: Path, store: DocumentStore) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()

    def write_version(marker: str, count: int) -> None:
        for i in range(count):
            body = " ".join(f"Document {i} sentence {s} carries the marker {marker}{i}." for s in range(60))
            (docs / f"d{i:02d}.txt").write_text(body, encoding="utf-8")

    write_version("versionone", 8)
    ingest_paths(store, [docs])
    write_version("versiontwo", 10)  # 8 changed documents and 2 new ones

    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    child = subprocess.Popen([sys.executable, "-c", KILLABLE_INGEST, str(store.path), str(docs)], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    killed_at = None
    try:
        for line in child.stdout:
            phase, _, done = line.strip().partition(" ")
            if phase == "embedding" and done.isdigit() and int(done) >= 3:
                child.send_signal(signal.SIGKILL)  # mid-run: some documents committed, one group in flight
                killed_at = int(done)
                break
    finally:
        child.kill()
        child.wait(timeout=60)
    assert killed_at is not None, "the ingest finished before it could be killed"

    reopened = DocumentStore.open(store.path, embedder=store.embedder_name)
    reopened.use_embedder(store.embedder)
    for i in range(10):
        path = str((docs / f"d{i:02d}.txt").resolve())
        texts = [h.text for h in reopened.chunks_of(path)]
        versions = {("versionone" in t, "versiontwo" in t) for t in texts}
        assert len(versions) <= 1, f"d{i:02d} mixes versions"  # one whole version per document, never half
        if i < 8:
            assert texts, f"d{i:02d} lost its previous version"
    assert sum(r.chunks for r in reopened.documents() if r.status == "ok") <= reopened.count_chunks()

    rerun = ingest_paths(reopened, [docs])
    assert rerun.ok and len(rerun.unchanged) >= killed_at - 2
    assert len(rerun.unchanged) + len(rerun.added) + len(rerun.updated) == 10
    for i in range(10):
        texts = [h.text for h in reopened.chunks_of(str(docs / f"d{i:02d}.txt"))]
        assert texts and all(f"versiontwo{i}" in t for t in texts)
    assert sum(r.chunks for r in reopened.documents()) == reopened.count_chunks()
