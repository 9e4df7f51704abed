"""Rich `Text` for answers, markers, badges and sources.

Everything from a document or the model goes in through `Text.append` after `clean_text`, never through markup
parsing: Self-RAG's own tokens (`[Relevant]`, `[Utility:5]`) look like Rich markup, and a PDF may contain
`[bold]` or escape sequences that must show as written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from rich.console import Group
from rich.padding import Padding
from rich.text import Text

from selfrag_tui.selfrag.types import OCR_NOTE, Answer, Candidate, Critique, Passage, RetrievalDecision, Segment
from selfrag_tui.application.verdicts import Level, Verdict, clean_text, decision_summary, relevance_verdict, verdicts

MarkerStyle = Literal["full", "compact", "plain"]
MARKER_STYLES: tuple[MarkerStyle, ...] = ("full", "compact", "plain")

LEVEL_STYLE: dict[Level, str] = {"good": "bold green", "mid": "bold yellow", "bad": "bold red", "none": "dim"}
CITATION_STYLE = "bold cyan"


def literal(text: str, style: str = "") -> Text:
    """Document or model text, shown exactly as written (minus control characters)."""
    return Text(clean_text(text), style=style)


MATCH_STYLE = "bold underline"


def with_match(text: str, match: str | None) -> Text:
    """A passage's text with the sentence that matched the question best underlined."""
    from ingest.retrieval import match_span

    out = literal(text)
    span = match_span(out.plain, clean_text(match)) if match else None
    if span is not None:
        out.stylize(MATCH_STYLE, *span)
    return out


def verdict_text(verdict: Verdict, style: MarkerStyle) -> Text:
    words = f"{verdict.symbol} {verdict.label}" if style == "full" else f"{verdict.symbol}{verdict.short}"
    return Text(words, style=LEVEL_STYLE[verdict.level])


def markers(segment: Segment, style: MarkerStyle) -> Text:
    """The markers after a segment: citation, relevance, support, utility. Empty in plain style."""
    out = Text()
    if style == "plain":
        return out
    if segment.citation is not None:
        out.append(f"[{segment.citation}]", style=CITATION_STYLE)
    for number, verdict in enumerate(verdicts(segment.critique, with_passage=segment.passage is not None)):
        if out:
            out.append(" · " if style == "full" and number else " ", style="dim")
        out.append_text(verdict_text(verdict, style))
    return out


def segment_text(segment: Segment, style: MarkerStyle) -> Text:
    out = literal(segment.text.strip())
    tail = markers(segment, style)
    if tail:
        out.append("  ")
        out.append_text(tail)
    return out


def display_path(path: str) -> str:
    """A file path as short as it stays unambiguous: relative to the working folder when inside it, else with
    the home folder written `~`."""
    target = Path(path)
    try:
        return str(target.relative_to(Path.cwd()))
    except ValueError:
        pass
    try:
        return "~/" + str(target.relative_to(Path.home()))
    except ValueError:
        return path


def fit_path(path: str, width: int) -> str:
    """`display_path(path)` in at most `width` characters, cut where it costs least: the folders give way first
    ("sample_docs/andean_textile_fibres.pdf" → "sam…/andean_textile_fibres.pdf"), then the middle of the file
    name, keeping its start and its extension ("quarterly_report_of_…_2023.pdf"). A table column cut at its end
    would show the same folder on every row and hide the names."""
    shown = display_path(path)
    if len(shown) <= width or width < 4:
        return shown[:max(width, 0)]
    folder, _, name = shown.rpartition("/")
    if folder and len(name) + 2 <= width:
        room = width - len(name) - 2
        return (folder[:room] + "…/" if room else "…/") + name
    stem, dot, extension = name.rpartition(".")
    end = (dot + extension) if stem and len(extension) <= 5 else ""
    tail = min(len(name) - 1, width - 2, max(len(end) + 4, (width - 1) // 3))
    return name[:width - 1 - tail] + "…" + name[len(name) - tail:]


def passage_label(passage: Passage) -> str:
    where = passage.location
    name = passage.source.rsplit("/", 1)[-1]
    return f"{name}, {where}" if where else name


def critique_details(critique: Critique, *, score: float | None = None, passage: Passage | None = None,
                     citation: int | None = None) -> Text:
    """Every number behind the markers, for the tooltip and the detail line."""
    out = Text()
    found = verdicts(critique, with_passage=passage is not None)
    for verdict in found:
        if out:
            out.append("\n")
        out.append(f"{verdict.symbol} ", style=LEVEL_STYLE[verdict.level])
        out.append(clean_text(verdict.describe()))
        group = _group_probabilities(critique, verdict)
        if group:
            out.append(f"  [{group}]", style="dim")
    if not found:
        out.append("No critique tokens for this segment.", style="dim")
    if passage is None:
        out.append("\nno passage: written without retrieval", style="dim")
    if score is not None:
        out.append(f"\nsegment score {score:.3f}", style="dim")
    if passage is not None:
        out.append("\nsource ")
        if citation is not None:
            out.append(f"[{citation}] ", style=CITATION_STYLE)
        out.append(clean_text(passage_label(passage)))
    return out


_GROUPS = {
    "relevance": ("[Relevant]", "[Irrelevant]"),
    "support": ("[Fully supported]", "[Partially supported]", "[No support / Contradictory]"),
    "utility": tuple(f"[Utility:{k}]" for k in range(5, 0, -1)),
}


def _group_probabilities(critique: Critique, verdict: Verdict) -> str:
    shown = [
        f"{token.strip('[]')} {critique.probabilities[token]:.2f}"
        for token in _GROUPS[verdict.kind]
        if critique.probabilities.get(token, 0.0) >= 0.005  # the rest round to 0.00 and only add noise
    ]
    return ", ".join(shown)


def badge(decision: RetrievalDecision) -> Text:
    """The retrieval decision of a turn, in words and colour."""
    out = Text()
    if decision.retrieve:
        out.append(" ⟳ RETRIEVED ", style="bold black on green")
    else:
        out.append(" ∅ NO RETRIEVAL ", style="bold black on yellow")
    out.append(" ")
    out.append(decision_summary(decision).split(": ", 1)[1])
    return out


def cut_note(answer: Answer) -> Text:
    """Says that the answer stops where the model was cut off, not where it finished."""
    note = Text("✂ Cut off: ", style="bold yellow")
    note.append(clean_text(answer.cut_reason or "the answer stopped before the model finished it."))
    return note


def abstention(answer: Answer) -> Text:
    reason = answer.abstain_reason or "the best answer the model found is not supported by your documents"
    out = Text("⚠ Not answered with confidence: ", style="bold red")
    out.append(clean_text(reason).rstrip(". "))
    out.append(". The draft below is shown for inspection, not as fact.", style="italic")
    return out


def source_line(citation: int, passage: Passage, verdict_critique: Critique | None) -> Text:
    """One row of the source panel: number, title, file, location, search rank (or score), verdict with
    probability."""
    verdict = relevance_verdict(verdict_critique) if verdict_critique is not None else None
    irrelevant = verdict is not None and verdict.level == "bad"
    base = "dim" if irrelevant else ""
    out = Text(style=base)
    out.append(f"[{citation}] ", style=CITATION_STYLE if not irrelevant else "dim cyan")
    out.append(clean_text(passage.doc_title or passage.title or passage.source), style="bold")
    out.append("\n    ")
    out.append(clean_text(passage_label(passage)))
    if passage.heading and passage.page_start is not None:
        out.append(f" · {clean_text(passage.heading)}")
    for note in passage.notes:
        out.append("\n    ")
        out.append(clean_text(note), style="yellow" if note.startswith(OCR_NOTE) else "dim")
    out.append(f"\n    {passage.search_place} · ")
    if verdict is None:
        out.append("not judged", style="dim")
    else:
        out.append_text(verdict_text(verdict, "full"))
        if verdict.probability is not None:
            out.append(f" {verdict.probability:.2f}")
    return out


def hanging(text: Text, indent: int = 4) -> Group:
    """`text` with each line that starts with `indent` spaces wrapped at that indent, not at the left edge: a long
    heading or note in the narrow source panel stays under its entry instead of reading as a new one."""
    rows = []
    for line in text.split("\n"):
        if line.plain.startswith(" " * indent):
            rows.append(Padding(line[indent:], (0, 0, 0, indent)))
        else:
            rows.append(line)
    return Group(*rows)


def candidate_heading(candidate: Candidate, citation: int | None, winner: bool) -> Text:
    out = Text()
    if winner:
        out.append("★ chosen ", style="bold green")
    if candidate.passage is None:
        out.append("no passage", style="italic")
    else:
        if citation is not None:
            out.append(f"[{citation}] ", style=CITATION_STYLE)
        out.append(clean_text(passage_label(candidate.passage)))
    return out


def candidate_scores(candidate: Candidate, *, w_rel: float, w_sup: float, w_use: float) -> Text:
    critique = candidate.critique
    out = Text()

    def row(name: str, value: float | None, verdict: Verdict | None, weight: float | None = None) -> None:
        out.append(f"{name:<6}", style="bold")
        out.append("   –  " if value is None else f"{value:+.3f}" if name == "ISUSE" else f" {value:.3f}")
        if weight is not None:
            out.append(f" ×{weight:g}", style="dim")
        if verdict is not None:
            out.append("  ")
            out.append_text(verdict_text(verdict, "compact"))
        out.append("\n")

    with_passage = candidate.passage is not None
    found = {v.kind: v for v in verdicts(critique, with_passage=with_passage)}
    row("ISREL", critique.relevance if with_passage else None, found.get("relevance"), w_rel)
    row("ISSUP", critique.support if with_passage else None, found.get("support"), w_sup)
    row("ISUSE", critique.utility, found.get("utility"), w_use)
    row("seq", candidate.seq_score, None)
    out.append("final ", style="bold")
    out.append(f" {candidate.final_score:.3f}", style="bold")
    return out


def format_eta(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
