"""Retrieval over the store's two searches: score fusion that cannot be swamped by a weak leg, a preference for
the document whose period a question names ("the quarter ended June 30, 2022") or, for "latest", the newest, and
a rerank of the best few by the sentence that answers the question.

Reciprocal-rank fusion adds ranks, so a leg that ranks noise (vector search over tables of numbers) pulls the
other leg's right answer down. Here each leg's scores are standardised over its candidates (how far each stands
above the leg's typical candidate) and added, the vector leg at half weight: a passage one leg finds far ahead of
the rest stays ahead unless the other leg clearly disagrees.

A document's period comes from its file name (`...-20230630-...`, `2023-06-30`) or from its first passage
("for the quarterly period ended June 30, 2023"); both are common in reports and filings. Where the store holds
reports of several companies, a question naming one ("Patriot's latest quarter") prefers that company's documents
(`ingest.facts` reads the issuer from the cover page).

`SentenceReranker` then re-scores the best RERANK_CANDIDATES by their best-matching sentence (see there).
"""

from __future__ import annotations

import re
import threading
from dataclasses import replace
from datetime import date, timedelta
from typing import TYPE_CHECKING, Sequence

from ingest.facts import DocumentFacts, facts_from_metadata, full_year, issuer_words, read_facts

if TYPE_CHECKING:
    from ingest.store import DocumentStore
    from ingest.types import SearchHit

CANDIDATES = 30
"""Passages each leg hands to fusion."""
VECTOR_WEIGHT = 0.5
"""The vector leg's weight against full text's 1 (measured best on long papers and filings; at 1 the vector leg's
near-misses crowd out exact figures and dates)."""
PERIOD_BOOST = 1.0
"""Share of the best fused score added to passages of the document whose period the question names."""
RERANK_CANDIDATES = 20
"""Fused results the sentence reranker re-scores; the best `k` of them are returned."""
RERANK_WEIGHT = 1.0
"""Weight of the best sentence's similarity (standardised over the candidates) against the fused score's."""
SENTENCE_CACHE = 4096
"""Passages whose sentence vectors are kept between questions (a chat asks about the same documents)."""
_SENTENCE = re.compile(r"(?<=[.!?;])\s+(?=[\"'(\[]?[A-Z0-9])|\n+")

_MONTHS = {m: i for i, m in enumerate(["january", "february", "march", "april", "may", "june", "july", "august",
                                        "september", "october", "november", "december"], start=1)}
_MONTH = "(" + "|".join(_MONTHS) + ")"
_FULL_DATE = re.compile(_MONTH + r"\s+(\d{1,2}),?\s+(\d{4})", re.IGNORECASE)
_MONTH_YEAR = re.compile(_MONTH + r"\s+(\d{4})", re.IGNORECASE)
_LATEST = re.compile(r"\b(latest|most recent|newest|last (?:quarter|report|filing)|current (?:quarter|report))\b",
                     re.IGNORECASE)

BENCHMARK_VARIANTS = {
    "rrf (before)": {"fusion": "rrf"},
    "combsum": {"period": False, "fusion": "share", "vector_weight": 1.0},
    "combsum+period": {"period": True, "fusion": "share", "vector_weight": 1.0},
    "zsum": {"period": False, "fusion": "z", "vector_weight": 1.0},
    "zsum+period": {"period": True, "fusion": "z", "vector_weight": 1.0},
    "fts+period": {"period": True, "vector_weight": 0.0},
    "combsum-v0.5+period": {"period": True, "fusion": "share", "vector_weight": 0.5},
    "zsum-v0.5+period": {"period": True, "fusion": "z", "vector_weight": 0.5},
    "zsum-c50+period": {"period": True, "fusion": "z", "candidates": 50},
    "zsum-v0.5 (no period)": {"period": False, "fusion": "z", "vector_weight": 0.5},
    "zsum-v0.5+period1.0": {"period": True, "fusion": "z", "vector_weight": 0.5, "period_boost": 1.0},
    "reranked": {"rerank": True},
    "reranked-10": {"rerank": True, "rerank_candidates": 10},
    "reranked-w0.5": {"rerank": True, "rerank_weight": 0.5},
    "reranked-w2": {"rerank": True, "rerank_weight": 2.0},
}
"""Configurations `benchmarks/bench_retrieval.py` measures beside the store's own modes."""


def query_period(query: str) -> tuple[str, tuple[int, int] | None]:
    """("latest", None), ("month", (year, month)) for a named month or date, or ("none", None)."""
    found = _FULL_DATE.search(query)
    if found:
        return "month", (int(found.group(3)), _MONTHS[found.group(1).lower()])
    found = _MONTH_YEAR.search(query)
    if found:
        return "month", (int(found.group(2)), _MONTHS[found.group(1).lower()])
    if _LATEST.search(query):
        return "latest", None
    return "none", None


def document_period(path: str, first_text: str) -> date | None:
    """The date a document covers: a date in its file name, else "period ended <date>" on its first passage."""
    return read_facts(path, first_text).period


_FACTS: dict[tuple[str, int], dict[str, DocumentFacts]] = {}
_FACTS_LOCK = threading.Lock()


def document_facts(store: "DocumentStore") -> dict[str, DocumentFacts]:
    """doc_id -> what its cover page says (issuer, kind, period), read once per store state (its passage count
    changes when documents do)."""
    key = (str(store.path), store.count_chunks())
    with _FACTS_LOCK:
        cached = _FACTS.get(key)
    if cached is not None:
        return cached
    # A PDF's facts were read at ingest from its first two pages and its whole text; a first passage can end
    # before the cover page names the company. Documents without them (notes, older stores) are read here.
    metadata = {record.doc_id: record.metadata for record in store.documents()}
    facts = {doc_id: facts_from_metadata(metadata.get(doc_id, {}), read_facts(path, first_text))
             for doc_id, path, first_text in store.first_passages()}
    facts = with_fiscal_quarters(facts)
    with _FACTS_LOCK:
        _FACTS[key] = facts
    return facts


def _calendar_month(period: date) -> tuple[int, int]:
    """The month a period ending on `period` covers: a quarter that ends on the first days of a month (Apple's
    "April 1, 2023") belongs to the month before."""
    shifted = period - timedelta(days=7)
    return shifted.year, shifted.month


def calendar_quarter(period: date) -> tuple[int, int]:
    year, month = _calendar_month(period)
    return year, (month - 1) // 3 + 1


def fiscal_quarter_of(period: date, year_end_month: int) -> tuple[int, int]:
    """(fiscal year, quarter) of a period ending on `period`, for a fiscal year ending in `year_end_month`; the
    fiscal year is named by the calendar year it ends in (Patriot's fiscal 2021 ends September 30, 2021)."""
    year, month = _calendar_month(period)
    into = (month - year_end_month - 1) % 12 + 1  # months into the fiscal year, 1-12
    return (year if month <= year_end_month else year + 1), (into - 1) // 3 + 1


def with_fiscal_quarters(facts: dict[str, DocumentFacts]) -> dict[str, DocumentFacts]:
    """Fills in the fiscal quarter of documents that do not name it, from their period end and their issuer's
    fiscal year, which is learnt from the issuer's documents that do name theirs (a 10-Q saying "the first nine
    months of fiscal 2021" for a quarter ended June 30 puts the year's end in September) or from an annual report.
    Issuers whose fiscal year cannot be learnt keep no fiscal quarter (their calendar quarter still counts)."""
    year_ends: dict[str, dict[int, int]] = {}
    for f in facts.values():
        if not (f.issuer and f.period):
            continue
        if f.fiscal_quarter:
            _, month = _calendar_month(f.period)
            end = (month + 3 * (4 - f.fiscal_quarter[1]) - 1) % 12 + 1
        elif f.kind in ("10-K", "20-F", "annual report"):
            end = _calendar_month(f.period)[1]
        else:
            continue
        votes = year_ends.setdefault(f.issuer, {})
        votes[end] = votes.get(end, 0) + 1
    filled = dict(facts)
    for doc, f in facts.items():
        if f.fiscal_quarter is None and f.period and f.issuer in year_ends:
            votes = year_ends[f.issuer]
            end = max(votes, key=lambda month: (votes[month], -month))
            filled[doc] = replace(f, fiscal_quarter=fiscal_quarter_of(f.period, end))
    return filled


_ORDINALS = {"first": 1, "1st": 1, "second": 2, "2nd": 2, "third": 3, "3rd": 3, "fourth": 4, "4th": 4}
_QYEAR = r"((?:19|20)\d{2}|'?\d{2})"
_QUARTER_PATTERNS = (
    # "Q3 2022", "Q3 of 2022", "Q3 fiscal 2022", "Q3 FY22", "Q3'22", "calendar Q3 2022", "fiscal Q3 2022"
    (re.compile(r"(?:\b(fiscal|calendar)\s+)?\bq([1-4]),?(?:\s+of)?[\s'-]*"
                r"(fiscal\s+(?:year\s+)?|fy\s*'?|calendar\s+(?:year\s+)?)?" + _QYEAR + r"(?![\d,])", re.IGNORECASE),
     2, 4, (1, 3)),
    # "2022 Q3", "FY2022 Q3", "fiscal 2022 Q3"
    (re.compile(r"(fiscal\s+(?:year\s+)?|fy\s*|calendar\s+(?:year\s+)?)?\b" + _QYEAR + r"[\s-]*q([1-4])\b",
                re.IGNORECASE), 3, 2, 1),
    # "3Q22", "3Q 2022"
    (re.compile(r"\b([1-4])q\s*(fy\s*)?" + _QYEAR + r"\b", re.IGNORECASE), 1, 3, 2),
    # "the third quarter of (fiscal) 2022", "third fiscal quarter of 2022", "third quarter 2022"
    (re.compile(r"\b(first|1st|second|2nd|third|3rd|fourth|4th)\s+(fiscal\s+)?quarter\s+(?:of\s+)?(?:the\s+)?"
                r"(fiscal\s+(?:year\s+)?|fy\s*|calendar\s+(?:year\s+)?)?" + _QYEAR + r"(?![\d,])", re.IGNORECASE),
     1, 4, (2, 3)),
    # "fiscal 2022's third quarter", "fiscal year 2022 third quarter"
    (re.compile(r"(fiscal\s+(?:year\s+)?|fy\s*|calendar\s+(?:year\s+)?)" + _QYEAR + r"(?:'s)?\s+"
                r"(first|1st|second|2nd|third|3rd|fourth|4th)\s+quarter", re.IGNORECASE), 3, 2, 1),
)
"""(pattern, group of the quarter, group of the year, group(s) saying fiscal or calendar)."""


def query_quarters(query: str) -> list[tuple[int, int, str]]:
    """The quarters a question names, as (year, quarter, reckoning): "fiscal" ("Q3 FY2022", "the third quarter of
    fiscal 2022"), "calendar" ("Q3 calendar 2022") or "either" ("Q3 2022": the documents' own fiscal quarter where
    it is known, else the calendar quarter)."""
    found: list[tuple[int, int, str]] = []
    for pattern, quarter_group, year_group, reckoning_groups in _QUARTER_PATTERNS:
        for match in pattern.finditer(query):
            quarter_text = match.group(quarter_group).lower()
            quarter = _ORDINALS.get(quarter_text) or int(quarter_text)
            year = full_year(match.group(year_group).lstrip("'"))
            groups = reckoning_groups if isinstance(reckoning_groups, tuple) else (reckoning_groups,)
            words = " ".join((match.group(g) or "") for g in groups).lower()
            reckoning = "calendar" if "calendar" in words else "fiscal" if ("fiscal" in words or "fy" in words) \
                else "either"
            if (year, quarter, reckoning) not in found:
                found.append((year, quarter, reckoning))
    return found


def quarter_documents(facts: dict[str, DocumentFacts], quarters: list[tuple[int, int, str]]) -> set[str]:
    """The documents covering one of `quarters`: by their fiscal quarter where they have one, by the calendar
    quarter their period ends in where they do not (or where the question says "calendar")."""
    wanted = set()
    for doc, f in facts.items():
        for year, quarter, reckoning in quarters:
            if reckoning != "calendar" and f.fiscal_quarter is not None:
                if f.fiscal_quarter == (year, quarter):
                    wanted.add(doc)
            elif reckoning != "fiscal" and f.period is not None and calendar_quarter(f.period) == (year, quarter):
                wanted.add(doc)
    return wanted


def query_issuers(query: str, facts: dict[str, DocumentFacts]) -> set[str]:
    """The documents whose issuer the question names ("Patriot's fuel costs"), when the store holds documents
    of more than one issuer; empty otherwise."""
    issuers = {f.issuer for f in facts.values() if f.issuer}
    if len(issuers) < 2:
        return set()
    words = set(re.findall(r"[a-z0-9&]+", query.lower()))
    named = {issuer for issuer in issuers if issuer_words(issuer) & words}
    if not named or len(named) == len(issuers):
        return set()
    return {doc for doc, f in facts.items() if f.issuer in named}


def _scaled(hits: list["SearchHit"]) -> dict[str, float]:
    """Each passage's score as a share of this leg's best (a passage found twice keeps its best): the leg's
    winner gets 1, and a passage it ranks close behind keeps nearly as much."""
    best: dict[str, float] = {}
    for hit in hits:
        best[hit.chunk_id] = max(best.get(hit.chunk_id, hit.score), hit.score)
    if not best:
        return {}
    top = max(best.values())
    return {chunk_id: score / top if top > 0 else 0.0 for chunk_id, score in best.items()}


def _reciprocal_rank(store: "DocumentStore", query: str, k: int,
                     documents: Sequence[str] | None) -> list["SearchHit"]:
    """Reciprocal-rank fusion (Cormack et al. 2009) over 4k candidates a leg: what hybrid search did before;
    kept to measure against."""
    depth, fused, hits = max(k * 4, 20), {}, {}
    for mode in ("vector", "fts"):
        for rank, hit in enumerate(store.search(query, k=depth, mode=mode, documents=documents), start=1):
            fused[hit.chunk_id] = fused.get(hit.chunk_id, 0.0) + 1.0 / (60 + rank)
            hits.setdefault(hit.chunk_id, hit)
    best = sorted(fused, key=lambda chunk_id: fused[chunk_id], reverse=True)[:k]
    return [replace(hits[chunk_id], score=fused[chunk_id]) for chunk_id in best]


def _standardised(hits: list["SearchHit"]) -> dict[str, float]:
    """How far each passage stands above this leg's typical candidate, in standard deviations (0 at or below
    the mean): a leg whose candidates all score alike adds little, a clear winner adds much."""
    import statistics

    best: dict[str, float] = {}
    for hit in hits:
        best[hit.chunk_id] = max(best.get(hit.chunk_id, hit.score), hit.score)
    if len(best) < 3:
        return {chunk_id: 1.0 for chunk_id in best}
    mean, spread = statistics.fmean(best.values()), statistics.pstdev(best.values())
    if spread <= 0:
        return {chunk_id: 0.0 for chunk_id in best}
    return {chunk_id: max(0.0, (score - mean) / spread) for chunk_id, score in best.items()}


def sentences(text: str) -> list[str]:
    """A passage's sentences (and lines: list items, table rows), each of a few words at least."""
    parts = [" ".join(part.split()) for part in _SENTENCE.split(text)]
    kept = [part for part in parts if len(part.split()) >= 3]
    return kept or [" ".join(text.split())]


def match_span(text: str, sentence: str) -> tuple[int, int] | None:
    """Where `sentence` (one of `sentences(text)`, its spaces collapsed) stands in `text`: (start, end), or None."""
    words = sentence.split()
    if not words:
        return None
    found = re.search(r"\s+".join(re.escape(word) for word in words), text)
    return found.span() if found else None


class SentenceReranker:
    """Re-scores a search's best candidates by the sentence that matches the question best.

    A passage's single vector averages all its sentences, so the one sentence that answers a question is diluted
    by the rest of a long passage, and a passage about the same subject that never answers it can rank above.
    Here each candidate's sentences are embedded with the store's own embedding model (offline, no second model)
    and the question's cosine similarity with the best of them, standardised over the candidates, is added to the
    fused score, also standardised. Sentence vectors are cached per passage, so a chat about the same documents
    embeds each passage's sentences once."""

    def __init__(self, embedder, *, weight: float = RERANK_WEIGHT, cache_size: int = SENTENCE_CACHE) -> None:
        from collections import OrderedDict

        self.embedder, self.weight, self.cache_size = embedder, weight, cache_size
        self._cache: "OrderedDict[tuple[str, int], object]" = OrderedDict()
        self._lock = threading.Lock()

    def _vectors(self, hits: Sequence["SearchHit"]) -> list:
        keys = [(hit.chunk_id, hash(hit.text)) for hit in hits]
        with self._lock:
            found = {key: self._cache[key] for key in keys if key in self._cache}
        missing = [(key, hit) for key, hit in zip(keys, hits) if key not in found]
        if missing:
            split = [sentences(hit.text) for _, hit in missing]
            flat = self.embedder.embed([sentence for group in split for sentence in group])
            start = 0
            for (key, _), group in zip(missing, split):
                found[key] = flat[start:start + len(group)]
                start += len(group)
            with self._lock:
                for key, _ in missing:
                    self._cache[key] = found[key]
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return [found[key] for key in keys]

    def rerank(self, query: str, hits: Sequence["SearchHit"], k: int,
               weight: float | None = None) -> list["SearchHit"]:
        """The `k` best of `hits` (ranked by a search, best first) after re-scoring; their score is the new one
        and their `match` the sentence that matched best. `weight` overrides the reranker's own."""
        import statistics

        if len(hits) < 2:
            return list(hits[:k])
        question = self.embedder.embed_query(query)
        similarities = [vectors @ question for vectors in self._vectors(hits)]
        best = [float(values.max()) for values in similarities]

        def standardised(values: list[float]) -> list[float]:
            mean, spread = statistics.fmean(values), statistics.pstdev(values)
            return [(v - mean) / spread if spread > 0 else 0.0 for v in values]

        weight = self.weight if weight is None else weight
        scores = [a + weight * b for a, b in zip(standardised([h.score for h in hits]), standardised(best))]
        order = sorted(range(len(hits)), key=lambda i: (-scores[i], i))[:k]
        return [replace(hits[i], score=scores[i], match=sentences(hits[i].text)[int(similarities[i].argmax())])
                for i in order]


def search(store: "DocumentStore", query: str, *, k: int = 5, period: bool = True,
           candidates: int = CANDIDATES, fusion: str = "z", vector_weight: float = VECTOR_WEIGHT,
           documents: Sequence[str] | None = None, period_boost: float | None = None,
           rerank: bool = False, rerank_candidates: int = RERANK_CANDIDATES,
           rerank_weight: float | None = None) -> list["SearchHit"]:
    """The `k` best passages: vector and full-text candidates fused by standardised score (`fusion="z"`, or
    "share" of each leg's best), then (with `period`) those of the document whose period the question names, or
    of the newest document for "latest", moved up. `documents` (paths or ids) restricts the search. With
    `rerank`, the best `rerank_candidates` are re-scored by their best-matching sentence (the store's
    SentenceReranker) and the best `k` of those returned."""
    if rerank:
        fused = search(store, query, k=max(k, rerank_candidates), period=period, candidates=candidates,
                       fusion=fusion, vector_weight=vector_weight, documents=documents, period_boost=period_boost)
        return store.sentence_reranker().rerank(query, fused, k, weight=rerank_weight)

    if fusion == "rrf":
        return _reciprocal_rank(store, query, k, documents)
    wanted: set[str] = set()
    if period:
        facts = document_facts(store)
        by_issuer = query_issuers(query, facts)
        kind, month = query_period(query)
        # "latest" means the newest of the company named, if one is.
        periods = {doc: f.period for doc, f in facts.items()
                   if f.period is not None and (not by_issuer or doc in by_issuer)}
        if kind == "latest" and periods:
            newest = max(periods.values())
            wanted = {doc for doc, when in periods.items() if when == newest}
        elif kind == "month" and month is not None:
            wanted = {doc for doc, when in periods.items() if (when.year, when.month) == month}
        else:
            quarters = query_quarters(query)
            if quarters:
                in_scope = {doc: f for doc, f in facts.items() if not by_issuer or doc in by_issuer}
                wanted = quarter_documents(in_scope, quarters)
        if not wanted:
            wanted = by_issuer
    if documents:
        allowed = {r.doc_id for r in store.resolve_documents(list(documents))[0]}
        wanted &= allowed
    vector = store.search(query, k=candidates, mode="vector", documents=documents)
    text = store.search(query, k=candidates, mode="fts", documents=documents)
    if wanted:  # the named period's own passages compete even when other documents fill the top candidates
        vector += store.search(query, k=candidates // 3, mode="vector", documents=sorted(wanted))
        text += store.search(query, k=candidates // 3, mode="fts", documents=sorted(wanted))
    hits = {h.chunk_id: h for h in vector + text}
    fused: dict[str, float] = {}
    scale = _standardised if fusion == "z" else _scaled
    for weight, scores in ((vector_weight, scale(vector)), (1.0, scale(text))):
        for chunk_id, score in scores.items():
            fused[chunk_id] = fused.get(chunk_id, 0.0) + weight * score
    boost = (PERIOD_BOOST if period_boost is None else period_boost) * max(fused.values(), default=0.0)
    for chunk_id, hit in hits.items():
        if hit.doc_id in wanted:
            fused[chunk_id] += boost
    # On a tie the named period's passage goes first.
    best = sorted(fused, key=lambda chunk_id: (fused[chunk_id], hits[chunk_id].doc_id in wanted), reverse=True)[:k]
    return [replace(hits[chunk_id], score=fused[chunk_id]) for chunk_id in best]


__all__ = ["BENCHMARK_VARIANTS", "SentenceReranker", "calendar_quarter", "document_facts", "document_period",
           "fiscal_quarter_of", "match_span", "quarter_documents", "query_issuers", "query_period", "query_quarters",
           "search", "sentences", "with_fiscal_quarters"]
