"""A PDF whose metadata title names nothing (markup, an SEC accession number) is titled by its file name, with a
date in the name written out, so questions that name the period find its passages."""

from __future__ import annotations

from pathlib import Path

import pytest
from fpdf import FPDF

from ingest.loaders import load_file


def pdf_with_title(path: Path, title: str | None) -> Path:
    pdf = FPDF()
    if title is not None:
        pdf.set_title(title)
    pdf.add_page()
    pdf.set_font("Helvetica", size=11)
    pdf.multi_cell(0, 5, "Results of operations. The Company reported net income for the quarter.")
    pdf.output(str(path))
    return path


@pytest.mark.parametrize("metadata_title", ["<submission><type>  10-Q", "0000320193-22-000070", None, ""])
def test_an_unusable_metadata_title_gives_way_to_the_file_name(tmp_path: Path, metadata_title) -> None:
    doc = load_file(pdf_with_title(tmp_path / "pati-20230630-10q.pdf", metadata_title))
    assert doc.title == "pati 10q, June 30, 2023"


def test_a_real_metadata_title_is_kept(tmp_path: Path) -> None:
    doc = load_file(pdf_with_title(tmp_path / "0000320193-23-000064.pdf", "Apple 10-Q, Q3 2023"))
    assert doc.title == "Apple 10-Q, Q3 2023"


def test_a_file_name_without_a_date_stays_as_it_is(tmp_path: Path) -> None:
    assert load_file(pdf_with_title(tmp_path / "annual_report.pdf", None)).title == "annual_report"
