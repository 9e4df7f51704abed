"""The candidates of each segment side by side, with ISREL, ISSUP, ISUSE, sequence and final scores; the
chosen one is marked. Shows how the model picked its answer among the passages."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from selfrag_tui.selfrag.types import Answer
from selfrag_tui.application.settings import Settings
from selfrag_tui.tui.markers import literal
from selfrag_tui.application.verdicts import decision_summary
from selfrag_tui.tui.widgets.candidate_card import CandidateCard


class CandidatesScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q", "close", "Close", show=True)]

    def __init__(self, answer: Answer, settings: Settings) -> None:
        super().__init__()
        self.answer = answer
        self.settings = settings

    def compose(self) -> ComposeResult:
        answer = self.answer
        citations = {p.id: n for n, p in enumerate(answer.passages, start=1)}
        w = self.settings.decoding
        head = Text("Candidates for: ", style="bold") + literal(answer.question)
        weights = Text(
            f"final = {'seq + ' if w.use_seqscore else ''}{w.w_rel:g}·ISREL + {w.w_sup:g}·ISSUP + {w.w_use:g}·ISUSE"
            "   (weights of the current settings)",
            style="dim",
        )
        with Vertical(id="candidates-dialog", classes="dialog"):
            yield Static(head, classes="dialog-title")
            yield Static(weights)
            with VerticalScroll(id="candidates-body"):
                shown = False
                for segment in answer.segments:
                    title = Text(f"Segment {segment.index + 1}", style="bold")
                    title.append(f" — {decision_summary(segment.decision)}", style="dim")
                    yield Static(title, classes="candidates-segment")
                    if not segment.candidates:
                        yield Static(Text("  one continuation, nothing to compare", style="dim"))
                        continue
                    shown = True
                    with Horizontal(classes="candidate-row"):
                        for candidate in segment.candidates:
                            winner = candidate.text == segment.text and (
                                (candidate.passage is None and segment.passage is None)
                                or (candidate.passage is not None and segment.passage is not None
                                    and candidate.passage.id == segment.passage.id)
                            )
                            citation = citations.get(candidate.passage.id) if candidate.passage else None
                            yield CandidateCard(candidate, citation=citation, winner=winner, w_rel=w.w_rel,
                                                w_sup=w.w_sup, w_use=w.w_use, classes="candidate")
                if not shown and not answer.segments:
                    yield Static(Text("This answer has no segments.", style="dim"))
            yield Static(Text("★ marks the candidate the decoder kept. Esc closes.", style="dim"),
                         classes="dialog-hint")

    def action_close(self) -> None:
        self.dismiss(None)
