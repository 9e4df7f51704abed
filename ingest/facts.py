"""What a report or filing is, read from its first page and file name: who issued it, what kind of document it is
and the period it covers. Shown beside each passage (so "Patriot Transportation · 10-Q · quarter ended
2022-06-30" tells two near-identical filings apart) and used by search to prefer the documents a question names.

Only what is written plainly is taken: the SEC cover page's "(Exact name of registrant as specified in its
charter)" line, a "FORM 10-Q" heading or a known report name, a "period ended <date>" or a date in the file name.
Anything else yields no fact rather than a guess.
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

    def as_metadata(self) -> dict[str, str]:
        """The facts as document properties (what `docs` and the source panel show)."""
        out: dict[str, str] = {}
        if self.issuer:
            out["issuer"] = self.issuer
        if self.kind:
            out["document type"] = self.kind
        if self.period:
            out["period ended"] = self.period.isoformat()
        return out

    def label(self) -> str:
        """One line: "Patriot Transportation Holding, Inc. · 10-Q · period ended 2022-06-30"."""
        parts = [self.issuer, self.kind, f"period ended {self.period.isoformat()}" if self.period else None]
        return " · ".join(p for p in parts if p)


def label_from_metadata(metadata: dict[str, str]) -> str:
    """The `DocumentFacts.label` of a document from its stored metadata ("" when it has none)."""
    parts = [metadata.get("issuer"), metadata.get("document type"),
             f"period ended {metadata['period ended']}" if metadata.get("period ended") else None]
    return " · ".join(p for p in parts if p)


def read_facts(path: str | Path, first_text: str) -> DocumentFacts:
    """The facts of the document at `path` whose first page (or first few thousand characters) is `first_text`."""
    head = (first_text or "")[:6000]
    return DocumentFacts(issuer=_issuer(head), kind=_kind(Path(path).name, head), period=_period(Path(path).name,
                                                                                                   head))


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
