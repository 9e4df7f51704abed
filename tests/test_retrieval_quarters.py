"""Quarters named the way filings and analysts name them ("Q2 FY2023", "1Q23", "the third quarter of fiscal 2021",
"calendar Q1 2023") pick the filing that covers them, by the company's own fiscal calendar where the filings
reveal it; and the company a question names is known from the cover page even when the first passage stops
before the company's name."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from ingest import retrieval
from ingest.facts import DocumentFacts, name_quarter, read_facts, text_quarter
from ingest.pipeline import ingest_paths
from ingest.store import DocumentStore
from pdf_factory import text_pdf


@pytest.mark.parametrize("question, expected", [
    ("What was revenue in Q3 2022?", [(2022, 3, "either")]),
    ("revenue in Q3, 2022", [(2022, 3, "either")]),
    ("net income for Q2 FY2023", [(2023, 2, "fiscal")]),
    ("Q4'21 sales", [(2021, 4, "either")]),
    ("What happened in 3Q22?", [(2022, 3, "either")]),
    ("2023 Q1 results", [(2023, 1, "either")]),
    ("the third quarter of fiscal 2021", [(2021, 3, "fiscal")]),
    ("the first fiscal quarter of 2024", [(2024, 1, "fiscal")]),
    ("fiscal 2022's second quarter", [(2022, 2, "fiscal")]),
    ("the second quarter of 2023", [(2023, 2, "either")]),
    ("calendar Q1 2023", [(2023, 1, "calendar")]),
    ("Q2 of calendar 2022", [(2022, 2, "calendar")]),
    ("compare Q1 2022 with Q1 2023", [(2022, 1, "either"), (2023, 1, "either")]),
    ("net income for the quarter ended June 30, 2022", []),
    ("In 2022, how many drivers left?", []),
    ("What does the 10-Q say about fuel?", []),
])
def test_named_quarters_in_questions(question: str, expected: list) -> None:
    assert retrieval.query_quarters(question) == expected


def test_quarters_in_file_names_and_report_text() -> None:
    assert name_quarter("2023 Q1 AAPL") == (2023, 1)
    assert name_quarter("acme_q3_fy22") == (2022, 3)
    assert name_quarter("1Q23-results") == (2023, 1)
    assert name_quarter("FY2024Q2 deck") == (2024, 2)
    assert name_quarter("pati-20210630-10q") is None
    assert name_quarter("form 10-Q1 draft") is None
    # A report's own running period, not the prior-year comparison or a plan for next year.
    text = ("During the first nine months of fiscal 2021, revenue rose. Compared with the first nine months of "
            "fiscal 2020, miles fell. During the first nine months of fiscal 2021 ten customers gave 60%.")
    assert text_quarter(text, date(2021, 6, 30)) == (2021, 3)
    assert text_quarter("the first nine months of fiscal 2019", date(2021, 6, 30)) is None
    assert text_quarter("the first three months of fiscal 2023", date(2022, 12, 31)) == (2023, 1)
    assert read_facts("/x/2023 Q1 AAPL.pdf", "").fiscal_quarter == (2023, 1)


def test_the_fiscal_quarter_of_a_filing_that_does_not_say_it_comes_from_its_companys_other_filings() -> None:
    facts = {
        "k-dec": DocumentFacts("Kestrel", "10-Q", date(2022, 12, 31), (2023, 1)),  # fiscal year ends September
        "k-mar": DocumentFacts("Kestrel", "10-Q", date(2023, 3, 31)),
        "a-10k": DocumentFacts("Apricot", "10-K", date(2022, 9, 24)),  # an annual report dates the year's end
        "a-apr": DocumentFacts("Apricot", "10-Q", date(2023, 4, 1)),
        "m-dec": DocumentFacts("Maple", "10-Q", date(2022, 12, 31)),  # nothing tells Maple's fiscal year
        "n-oct": DocumentFacts("Nimbus", "10-Q", date(2023, 10, 29), (2024, 3)),  # fiscal year ends in January
        "n-jul": DocumentFacts("Nimbus", "10-Q", date(2023, 7, 30)),
    }
    filled = retrieval.with_fiscal_quarters(facts)

    assert filled["k-mar"].fiscal_quarter == (2023, 2)
    assert filled["a-apr"].fiscal_quarter == (2023, 2)
    assert filled["a-10k"].fiscal_quarter == (2022, 4)
    assert filled["m-dec"].fiscal_quarter is None
    assert filled["n-jul"].fiscal_quarter == (2024, 2)
    # "Q2 2023": Kestrel's and Apricot's fiscal second quarters; Maple's by the calendar, which puts its
    # December quarter in Q4 2022. "calendar Q1 2023" is January to March (Apricot's quarter ends April 1).
    assert retrieval.quarter_documents(filled, [(2023, 2, "either")]) == {"k-mar", "a-apr"}
    assert retrieval.quarter_documents(filled, [(2022, 4, "either")]) == {"m-dec", "a-10k"}
    assert retrieval.quarter_documents(filled, [(2023, 1, "calendar")]) == {"k-mar", "a-apr"}
    assert retrieval.quarter_documents(filled, [(2023, 1, "fiscal")]) == {"k-dec"}


COVER = """UNITED STATES SECURITIES AND EXCHANGE COMMISSION
Washington, D.C. 20549
FORM 10-Q
For the quarterly period ended {period}
{boilerplate}
{name}
(Exact name of registrant as specified in its charter)
"""
BOILERPLATE = " ".join(["[X] QUARTERLY REPORT PURSUANT TO SECTION 13 OR 15(d) OF THE SECURITIES EXCHANGE ACT OF "
                        "1934. Indicate by check mark whether the registrant has filed all reports required."] * 8)


def results(income: str, running: str) -> str:
    return (f"Results of operations. The Company reported net income of {income} for the quarter, as loads "
            f"and freight rates rose. {running}")


def test_quarter_and_company_questions_pick_the_filing(tmp_path: Path, store: DocumentStore, store_env) -> None:
    folder = tmp_path / "filings"
    folder.mkdir()
    filings = {  # file: (period, company, net income, the report's own words on its running period)
        "k-1.pdf": ("December 31, 2022", "KESTREL LOGISTICS, INC.", "$1,100,000",
                    "During the first three months of fiscal 2023 ten customers gave 40% of revenue."),
        "k-2.pdf": ("March 31, 2023", "KESTREL LOGISTICS, INC.", "$1,200,000", "Ten customers gave 41% of revenue."),
        "k-3.pdf": ("June 30, 2023", "KESTREL LOGISTICS, INC.", "$1,300,000",
                    "During the first nine months of fiscal 2023 ten customers gave 42% of revenue."),
        "h-1.pdf": ("March 31, 2023", "HARROW FREIGHT CORPORATION", "$2,100,000", "Ten customers gave 30%."),
        "h-2.pdf": ("June 30, 2023", "HARROW FREIGHT CORPORATION", "$2,200,000", "Ten customers gave 31%."),
    }
    for name, (period, company, income, running) in filings.items():
        cover = COVER.format(period=period, boilerplate=BOILERPLATE, name=company)
        text_pdf(folder / name, [cover, results(income, running)])
    assert ingest_paths(store, [folder]).ok
    first = {Path(path).name: text for _, path, text in store.first_passages()}
    assert "KESTREL" not in first["k-1.pdf"], "the premise: the first passage ends before the company's name"
    facts = {Path(store.document(d).path).name: f for d, f in retrieval.document_facts(store).items()}
    assert facts["k-1.pdf"].issuer == "Kestrel Logistics, Inc."
    assert facts["k-1.pdf"].fiscal_quarter == (2023, 1) and facts["k-2.pdf"].fiscal_quarter == (2023, 2)
    assert facts["h-1.pdf"].fiscal_quarter is None
    assert store.document(str(folder / "k-3.pdf")).metadata["fiscal quarter"] == "Q3 FY2023"

    def top(question: str) -> str:
        hits = retrieval.search(store, question, k=3)
        return Path(hits[0].path).name

    assert top("What net income did Kestrel report for Q2 FY2023?") == "k-2.pdf"
    assert top("Kestrel's net income in the first quarter of fiscal 2023?") == "k-1.pdf"
    assert top("What net income did Kestrel report in calendar Q2 2023?") == "k-3.pdf"
    assert top("Harrow's net income in Q1 2023?") == "h-1.pdf"
    assert top("What net income did Harrow report in its latest quarterly report?") == "h-2.pdf"
    assert top("What net income did Kestrel report in its latest quarterly report?") == "k-3.pdf"

    # The source panel and `search` show each filing's fiscal quarter, the learnt one (k-2) like the stated ones.
    from selfrag_tui.application.session import Session
    from selfrag_tui.application.settings import Settings

    session = Session(Settings(), store=store)
    notes = {Path(p.source).name: p.notes for p in session.retrieve("Kestrel net income for the quarter", 5)}
    assert notes["k-2.pdf"][0] == "Kestrel Logistics, Inc. · 10-Q · period ended 2023-03-31 · Q2 FY2023"
    assert notes["k-3.pdf"][0].endswith("· Q3 FY2023")
