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


COVER = """UNITED STATES
SECURITIES AND EXCHANGE COMMISSION
Washington, D.C. 20549
_________________
FORM 10-Q
_________________
[X] QUARTERLY REPORT PURSUANT TO SECTION 13 OR 15(d)
For the quarterly period ended {period}
Commission File Number: 001-36605
_____________________
{name}
(Exact name of registrant as specified in its charter)
_____________________
"""


def test_cover_page_facts() -> None:
    from ingest.facts import DocumentFacts, read_facts

    facts = read_facts("/x/filing.pdf", COVER.format(period="June 30, 2022", name="PATRIOT TRANSPORTATION HOLDING, INC."))
    assert facts == DocumentFacts("Patriot Transportation Holding, Inc.", "10-Q", date(2022, 6, 30))
    assert facts.label() == "Patriot Transportation Holding, Inc. · 10-Q · period ended 2022-06-30"
    assert read_facts("/x/acme-20221231-10k.pdf", "Annual report of Acme Freight") == \
        DocumentFacts(None, "10-K", date(2022, 12, 31))
    assert read_facts("/x/garden.md", "Water the tomatoes twice a day in July.") == DocumentFacts()
    assert read_facts("/x/bank.pdf", "Annual Report 2023\nfor the fiscal year ended December 31, 2023") == \
        DocumentFacts(None, "annual report", date(2023, 12, 31))


def test_a_named_company_picks_its_filing(tmp_path: Path, store: DocumentStore) -> None:
    """Two companies' filings for the same quarter read alike; the company the question names decides, and
    "latest" means that company's newest."""
    folder = tmp_path / "filings"
    folder.mkdir()
    filings = {
        "a-2022q2.txt": ("June 30, 2022", "KESTREL LOGISTICS, INC.", "$4,100,000"),
        "b-2022q2.txt": ("June 30, 2022", "HARROW FREIGHT CORPORATION", "$7,300,000"),
        "b-2022q1.txt": ("March 31, 2022", "HARROW FREIGHT CORPORATION", "$6,900,000"),
    }
    filler = " ".join(f"Item {i}. The registrant has nothing further to disclose under this item." for i in range(40))
    for name, (period, company, income) in filings.items():
        # As in real filings, the company is named on the cover page only; the figures come pages later.
        (folder / name).write_text(COVER.format(period=period, name=company) + "\n\n" + filler + "\n\n"
                                   + report(period, income).replace("Acme Freight", "Quarterly"), encoding="utf-8")
    assert ingest_paths(store, [folder]).ok
    assert all(company.split()[0] not in hit.text for hit in store.search("net income", k=9, mode="fts")
               for company in ("KESTREL", "HARROW") if "net income" in hit.text)
    facts = {Path(store.document(d).path).name: f for d, f in retrieval.document_facts(store).items()}
    assert facts["b-2022q1.txt"].issuer == "Harrow Freight Corporation"

    for company, expected in (("Kestrel", "a-2022q2.txt"), ("Harrow", "b-2022q2.txt")):
        hits = retrieval.search(store, f"What net income did {company} report for the quarter ended June 30, 2022?",
                                k=3)
        assert Path(hits[0].path).name == expected, [Path(h.path).name for h in hits]
        # The passage with the figure comes from that company's filing, not the other's.
        figures = [Path(h.path).name for h in hits if "net income of" in h.text]
        assert figures and figures[0] == expected, [Path(h.path).name for h in hits]
    latest = retrieval.search(store, "What net income did Kestrel report in its latest quarterly report?", k=3)
    assert Path(latest[0].path).name == "a-2022q2.txt"
    march = retrieval.search(store, "Harrow net income for the quarter ended March 31, 2022", k=3)
    assert Path(march[0].path).name == "b-2022q1.txt"
    # A question naming no company (or every company) gets no preference from it.
    assert retrieval.query_issuers("net income in the quarter", retrieval.document_facts(store)) == set()
    assert retrieval.query_issuers("Kestrel or Harrow?", retrieval.document_facts(store)) == set()
