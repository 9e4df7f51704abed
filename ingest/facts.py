"""What a report or filing is, read from its first page and file name: who issued it, what kind of document it is
and the period it covers. Shown beside each passage (so "Patriot Transportation · 10-Q · quarter ended
2022-06-30" tells two near-identical filings apart) and used by search to prefer the documents a question names.

Only what is written plainly is taken: the SEC cover page's "(Exact name of registrant as specified in its
charter)" line, a "FORM 10-Q" heading or a known report name, a "period ended <date>" or a date in the file name,
and the fiscal quarter a file name ("2023 Q1") or the report's own running period ("the first nine months of
fiscal 2021") names. Anything else yields no fact rather than a guess.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path

_MONTHS = {m: i for i, m in enumerate(["january", "february", "march", "april", "may", "june", "july", "august",
                                        "september", "october", "november", "december"], start=1)}
_MONTH = "(" + "|".join(_MONTHS) + ")"
_NAME_DATE = re.compile(r"(?<!\d)(20\d{2}|19\d{2})-?(0[1-9]|1[0-2])-?(0[1-9]|[12]\d|3[01])(?!\d)")
_PERIOD_ENDED = re.compile(r"(?:period|year|quarter)\s+ended\s+" + _MONTH + r"\s+(\d{1,2}),?\s+(\d{4})",
                           re.IGNORECASE)
_REGISTRANT = re.compile(r"\(\s*exact name of (?:the )?registrant", re.IGNORECASE)
_BEFORE_NAME = re.compile(r"\n|_{3,}|-{3,}|file number:?\s*[\d-]+|\(mark one\)", re.IGNORECASE)
_CAPS_RUN = re.compile(r"(?:[A-Z0-9&][A-Z0-9&.,'\-]*\s+)*[A-Z0-9&][A-Z0-9&.,'\-]*$")
_FORM = re.compile(r"\bFORM\s+(10-K|10-Q|8-K|20-F|40-F|6-K|S-1|DEF\s*14A)(?:/A)?\b", re.IGNORECASE)
_FORM_IN_NAME = re.compile(r"(?<![a-z0-9])(10-?k|10-?q|8-?k|20-?f)(?![a-z0-9])", re.IGNORECASE)
_REPORT = re.compile(r"\b(annual report|quarterly report|half-year(?:ly)? report|interim report|"
                     r"sustainability report|prospectus)\b", re.IGNORECASE)
_QUARTERLY = re.compile(r"\bquarterly period ended\b", re.IGNORECASE)
_ANNUAL = re.compile(r"\bfiscal year ended\b", re.IGNORECASE)
_MONTHS_OF_FISCAL = re.compile(r"\bfirst\s+(three|six|nine)\s+months\s+of\s+fiscal\s+(?:year\s+)?(\d{4})\b",
                               re.IGNORECASE)
"""A quarterly report's own running period: "During the first nine months of fiscal 2021" (the third quarter)."""
_QUARTERS_OF_MONTHS = {"three": 1, "six": 2, "nine": 3}
_YEAR = r"(20\d{2}|\d{2})"
_FY = r"(?:fy[\s_'-]*)?"
_QUARTER_IN_NAME = (
    (re.compile(r"(?<![a-z0-9])" + _FY + _YEAR + r"[\s_-]*q([1-4])(?![0-9a-z])", re.IGNORECASE), 1, 2),  # 2023 Q1
    (re.compile(r"(?<![a-z0-9])q([1-4])[\s_'-]*" + _FY + _YEAR + r"(?![0-9])", re.IGNORECASE), 2, 1),  # Q1 FY23
    (re.compile(r"(?<![a-z0-9])([1-4])q[\s_'-]*" + _FY + _YEAR + r"(?![0-9])", re.IGNORECASE), 2, 1),  # 1Q23
)
"""A quarter written into a file name or title: (pattern, group of the year, group of the quarter)."""
_LABEL = re.compile(r"^Q([1-4]) FY(\d{4})$")

LEGAL_WORDS = frozenset("""
    inc incorporated corp corporation co company companies ltd limited llc lp plc sa ag nv se gmbh holding holdings
    group the and of trust bancorp international industries
""".split())
"""Words of a company name that do not tell one company from another."""


@dataclass(frozen=True)
class DocumentFacts:
    issuer: str | None = None
    kind: str | None = None
    """"10-Q", "10-K", "annual report", ..."""
    period: date | None = None
    """The end of the period the document covers."""
    fiscal_quarter: tuple[int, int] | None = None
    """(fiscal year, quarter 1-4) as the document names it: "2023 Q1" in its file name, or "the first nine months
    of fiscal 2021" in its text (the third quarter of fiscal 2021)."""

    def as_metadata(self) -> dict[str, str]:
        """The facts as document properties (what `docs` and the source panel show)."""
        out: dict[str, str] = {}
        if self.issuer:
            out["issuer"] = self.issuer
        if self.kind:
            out["document type"] = self.kind
        if self.period:
            out["period ended"] = self.period.isoformat()
        if self.fiscal_quarter:
            out["fiscal quarter"] = quarter_label(self.fiscal_quarter)
        return out

    def label(self) -> str:
        """One line: "Patriot Transportation Holding, Inc. · 10-Q · period ended 2022-06-30"."""
        parts = [self.issuer, self.kind, f"period ended {self.period.isoformat()}" if self.period else None,
                 quarter_label(self.fiscal_quarter) if self.fiscal_quarter else None]
        return " · ".join(p for p in parts if p)


def label_from_metadata(metadata: dict[str, str]) -> str:
    """The `DocumentFacts.label` of a document from its stored metadata ("" when it has none)."""
    parts = [metadata.get("issuer"), metadata.get("document type"),
             f"period ended {metadata['period ended']}" if metadata.get("period ended") else None,
             metadata.get("fiscal quarter")]
    return " · ".join(p for p in parts if p)


def facts_from_metadata(metadata: dict[str, str], fallback: DocumentFacts | None = None) -> DocumentFacts:
    """The facts stored with a document at ingest (`as_metadata`), each missing one taken from `fallback`."""
    fallback = fallback or DocumentFacts()
    try:
        period = date.fromisoformat(metadata["period ended"]) if metadata.get("period ended") else None
    except ValueError:
        period = None
    return DocumentFacts(issuer=metadata.get("issuer") or fallback.issuer,
                         kind=metadata.get("document type") or fallback.kind,
                         period=period or fallback.period,
                         fiscal_quarter=parse_quarter_label(metadata.get("fiscal quarter")) or fallback.fiscal_quarter)


def quarter_label(quarter: tuple[int, int]) -> str:
    """(2021, 3) -> "Q3 FY2021"."""
    return f"Q{quarter[1]} FY{quarter[0]}"


def parse_quarter_label(label: str | None) -> tuple[int, int] | None:
    found = _LABEL.match((label or "").strip())
    return (int(found.group(2)), int(found.group(1))) if found else None


def full_year(text: str) -> int:
    """"2023" or "23" (this century) -> 2023."""
    return int(text) if len(text) == 4 else 2000 + int(text)


def name_quarter(name: str) -> tuple[int, int] | None:
    """The (fiscal year, quarter) a file name or title names: "2023 Q1 AAPL.pdf", "acme_q3_fy22.pdf", "1Q23"."""
    for pattern, year_group, quarter_group in _QUARTER_IN_NAME:
        for found in pattern.finditer(name):
            year = found.group(year_group)
            if len(year) == 2 and year_group == 1 and "fy" not in found.group().lower():
                continue  # "10-Q1" is a form, not 2010: a two-digit year comes after the quarter or after "FY"
            return full_year(year), int(found.group(quarter_group))
    return None


def text_quarter(text: str, period: date | None = None) -> tuple[int, int] | None:
    """The (fiscal year, quarter) a quarterly report's text gives its own running period ("the first six months
    of fiscal 2022": the second quarter of fiscal 2022). Comparisons with other years are set aside: with the
    period end known, only a fiscal year ending within twelve months of it counts; the most frequent wins."""
    counts: dict[tuple[int, int], int] = {}
    for found in _MONTHS_OF_FISCAL.finditer(text):
        quarter = (int(found.group(2)), _QUARTERS_OF_MONTHS[found.group(1).lower()])
        if period is not None and quarter[0] not in (period.year, period.year + 1):
            continue
        counts[quarter] = counts.get(quarter, 0) + 1
    if not counts:
        return None
    return max(counts, key=lambda q: (counts[q], q))


def read_facts(path: str | Path, first_text: str, full_text: str | None = None) -> DocumentFacts:
    """The facts of the document at `path` whose first page (or first few thousand characters) is `first_text`;
    `full_text` (the whole document, where at hand) is searched for the fiscal quarter it reports on."""
    head = (first_text or "")[:6000]
    name = Path(path).name
    period = _period(name, head)
    quarter = name_quarter(Path(path).stem) or text_quarter(full_text if full_text is not None else head, period)
    return DocumentFacts(issuer=_issuer(head), kind=_kind(name, head), period=period, fiscal_quarter=quarter)


def issuer_words(issuer: str) -> set[str]:
    """The words of a company name that identify it ("patriot", "transportation" of "Patriot Transportation
    Holding, Inc.")."""
    return {w for w in re.findall(r"[a-z0-9&]+", issuer.lower()) if len(w) > 2 and w not in LEGAL_WORDS}


def _issuer(head: str) -> str | None:
    """The line above "(Exact name of registrant ...)"; in a passage whose line breaks were joined, the text
    after the last rule (____), file number or line break before it, or its trailing run of capitals."""
    found = _REGISTRANT.search(head)
    if not found:
        return None
    before = head[max(0, found.start() - 200):found.start()].rstrip(" \t\n_-")
    name = _BEFORE_NAME.split(before)[-1].strip(" \t_-")
    if len(name) > 80:
        caps = _CAPS_RUN.search(name)
        name = caps.group().strip() if caps else name
    if not re.search(r"[A-Za-z]", name) or len(name) > 100:
        return None
    if name.isupper():  # cover pages set the name in capitals; "PATRIOT TRANSPORTATION HOLDING, INC."
        name = " ".join(_title_word(w) for w in name.split())
    return name


def _title_word(word: str) -> str:
    if word in {"LLC", "LP", "PLC", "SA", "AG", "NV", "SE", "USA", "US"} or (len(word) <= 3 and "." in word):
        return word
    return word[:1] + word[1:].lower()


def _kind(name: str, head: str) -> str | None:
    found = _FORM.search(head)
    if found:
        return re.sub(r"\s+", " ", found.group(1).upper())
    found = _FORM_IN_NAME.search(name)
    if found:
        form = found.group(1).upper()
        return form if "-" in form else f"{form[:-1]}-{form[-1]}"
    found = _REPORT.search(head[:1500])
    if found:
        return found.group(1).lower()
    if _QUARTERLY.search(head):
        return "quarterly report"
    if _ANNUAL.search(head):
        return "annual report"
    return None


def _period(name: str, head: str) -> date | None:
    found = _NAME_DATE.search(name)
    if found:
        try:
            return date(int(found.group(1)), int(found.group(2)), int(found.group(3)))
        except ValueError:
            pass
    found = _PERIOD_ENDED.search(head)
    if found:
        try:
            return date(int(found.group(3)), _MONTHS[found.group(1).lower()], int(found.group(2)))
        except ValueError:
            return None
    return None
