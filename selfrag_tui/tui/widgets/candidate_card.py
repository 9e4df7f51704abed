"""One candidate of a segment, its text and its ISREL / ISSUP / ISUSE / sequence / final scores."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from selfrag_tui.selfrag.types import Candidate
from selfrag_tui.tui.markers import candidate_heading, candidate_scores, literal


class CandidateCard(VerticalScroll):
    def __init__(self, candidate: Candidate, *, citation: int | None, winner: bool, w_rel: float, w_sup: float,
                 w_use: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.candidate = candidate
        self.citation = citation
        self.winner = winner
        self.weights = (w_rel, w_sup, w_use)
        self.set_class(winner, "-winner")

    def compose(self) -> ComposeResult:
        w_rel, w_sup, w_use = self.weights
        yield Static(candidate_heading(self.candidate, self.citation, self.winner), classes="card-title")
        yield Static(candidate_scores(self.candidate, w_rel=w_rel, w_sup=w_sup, w_use=w_use), classes="card-scores")
        yield Static(literal(self.candidate.text.strip() or "(empty)"), classes="card-text")
