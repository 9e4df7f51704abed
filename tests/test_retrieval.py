"""Fused retrieval on a real store: reports of one company that differ only by quarter; the question's quarter or
"latest" picks the report."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from ingest import retrieval
from ingest.pipeline import ingest_paths
from ingest.store import DocumentStore

QUARTERS = {
    "acme-20220331-10q.txt": ("March 31, 2022", "$1,204,000"),
    "acme-20220630-10q.txt": ("June 30, 2022", "$2,310,000"),
    "acme-20221231-10q.txt": ("December 31, 2022", "$3,415,000"),
}


def report(period: str, income: str) -> str:
    # The period is in the file name only, as with many downloaded filings.
    return (f"Acme Freight quarterly report.\n\n"
            f"Results of operations. The Company reported net income of {income} for the quarter, as tank lines "
            f"hauled more loads and freight rates rose. Revenue miles grew over the same quarter last year.\n")


def test_query_and_document_periods() -> None:
    assert retrieval.query_period("net income for the quarter ended June 30, 2022?") == ("month", (2022, 6))
    assert retrieval.query_period("the December 2020 quarterly report") == ("month", (2020, 12))
    assert retrieval.query_period("What did the latest report say?") == ("latest", None)
    assert retrieval.query_period("What do llamas eat?") == ("none", None)
    assert retrieval.document_period("/x/pati-20230630-10q.pdf", "") == date(2023, 6, 30)
    assert retrieval.document_period("/x/report.pdf", "For the quarterly period ended March 31, 2021") == \
        date(2021, 3, 31)
    assert retrieval.document_period("/x/notes.md", "no dates here") is None


def test_the_named_quarter_and_latest_pick_their_report(tmp_path: Path, store: DocumentStore) -> None:
    folder = tmp_path / "filings"
    folder.mkdir()
    for name, (period, income) in QUARTERS.items():
        (folder / name).write_text(report(period, income), encoding="utf-8")
    assert ingest_paths(store, [folder]).ok
    for name, (period, income) in QUARTERS.items():
        question = f"What net income did Acme report for the quarter ended {period}?"
        hits = retrieval.search(store, question, k=3)
        assert Path(hits[0].path).name == name, (question, [Path(h.path).name for h in hits])
        assert income in hits[0].text
    latest = retrieval.search(store, "What net income did Acme report in its latest quarterly report?", k=3)
    assert Path(latest[0].path).name == "acme-20221231-10q.txt"
    # Without the period preference nothing in the text tells the three reports apart.
    plain = [Path(retrieval.search(store, f"net income for the quarter ended {p}", k=1, period=False)[0].path).name
             for p, _ in QUARTERS.values()]
    assert plain != list(QUARTERS)


def test_fusion_keeps_a_strong_leg_in_front(tmp_path: Path, store: DocumentStore) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "pump.md").write_text("# Pump\n\nThe replacement gasket was part QX-7731-B from the shop.\n")
    for i in range(6):
        (folder / f"codes{i}.md").write_text(f"# Bin {i}\n\nZR-44{i}0-K, MT-90{i}2-C, PL-33{i}8-A, VN-66{i}0-D.\n")
    assert ingest_paths(store, [folder]).ok
    hits = retrieval.search(store, "QX-7731-B", k=3)
    assert Path(hits[0].path).name == "pump.md"
