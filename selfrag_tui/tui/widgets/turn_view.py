"""One question and its answer in the conversation.

While the decoder runs, the turn shows the retrieval badge as soon as the decision is made, a progress line
(retrieving, judging passages, scoring candidates) and the streamed text of the no-retrieval path through a
`MarkdownStream`, which batches fast appends instead of re-rendering per token. When the answer is done the
stream is replaced once by the segments with their critique markers.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Markdown, Static
from textual.widgets.markdown import MarkdownStream

from selfrag_tui.selfrag.types import (
    Answer,
    CandidateScored,
    DecisionMade,
    DecoderEvent,
    PassagesRetrieved,
    SegmentChosen,
    TextDelta,
)
from selfrag_tui.tui.markers import MarkerStyle, abstention, cut_note, literal
from selfrag_tui.application.verdicts import clean_text
from selfrag_tui.tui.widgets.retrieval_badge import RetrievalBadge
from selfrag_tui.tui.widgets.segment_view import SegmentView


class TurnView(Vertical):
    def __init__(self, question: str, turn_key: str, answer: Answer | None = None,
                 marker_style: MarkerStyle = "full", **kwargs) -> None:
        super().__init__(**kwargs)
        self.question = question
        self.turn_key = turn_key
        self.answer = answer
        self.marker_style: MarkerStyle = marker_style
        self._stream: MarkdownStream | None = None
        self._candidates_expected = 0
        self._candidates_scored = 0
        self._streamed_text = False
        """Whether the current segment's text already arrived as deltas."""
        self._any_text = False

    def compose(self) -> ComposeResult:
        question = literal(self.question)
        question.stylize("bold")
        question = literal("❯ ", "bold cyan") + question
        yield Static(question, classes="question")
        yield RetrievalBadge(self.answer.decision if self.answer else None, classes="badge")
        if self.answer is None:
            yield Static("Deciding whether to retrieve…", classes="progress")
            yield Markdown("", classes="stream")
        yield Vertical(classes="answer")

    async def on_mount(self) -> None:
        if self.answer is not None:
            await self._mount_answer(self.answer)

    # -- while the decoder runs ------------------------------------------------------------------------------

    def show_waiting(self, words: str) -> None:
        """The question waits for the model to finish loading."""
        if self.answer is None:
            self.query_one(".progress", Static).update(words)

    async def handle_event(self, event: DecoderEvent) -> None:
        progress = self.query_one(".progress", Static) if self.answer is None else None
        if progress is None:
            return
        if isinstance(event, DecisionMade):
            if event.segment_index == 0:
                self.query_one(RetrievalBadge).show(event.decision)
            step = f"Segment {event.segment_index + 1}: "
            progress.update(step + ("retrieving passages…" if event.decision.retrieve else "writing…"))
        elif isinstance(event, PassagesRetrieved):
            self._candidates_expected = len(event.passages)
            self._candidates_scored = 0
            progress.update(
                f"Segment {event.segment_index + 1}: judging {len(event.passages)} passage(s) and writing a "
                "candidate answer for each…"
            )
        elif isinstance(event, CandidateScored):
            self._candidates_scored += 1
            total = max(self._candidates_expected, self._candidates_scored)
            progress.update(f"Segment {event.segment_index + 1}: scored {self._candidates_scored}/{total} candidates")
        elif isinstance(event, SegmentChosen):
            progress.update(f"Segment {event.segment.index + 1} chosen; continuing…")
            # Segments generated in a batch (one per passage) were not streamed: show each once it is certain.
            if not self._streamed_text and event.segment.text.strip():
                await self._write((" " if self._any_text else "") + event.segment.text.strip())
            self._streamed_text = False
        elif isinstance(event, TextDelta):
            self._streamed_text = True
            await self._write(event.text)

    async def _write(self, text: str) -> None:
        if self._stream is None:
            self._stream = Markdown.get_stream(self.query_one(".stream", Markdown))
        self._any_text = True
        await self._stream.write(clean_text(text))

    async def stop_stream(self) -> None:
        if self._stream is not None:
            stream, self._stream = self._stream, None
            await stream.stop()

    # -- finished --------------------------------------------------------------------------------------------

    async def show_answer(self, answer: Answer) -> None:
        """Replace the progress and the streamed text with the final segments, once."""
        await self.stop_stream()
        self.answer = answer
        self.query_one(RetrievalBadge).show(answer.decision)
        for widget in self.query(".progress, .stream"):
            await widget.remove()
        await self._mount_answer(answer)

    async def _mount_answer(self, answer: Answer) -> None:
        container = self.query_one(".answer", Vertical)
        widgets = []
        if answer.abstained:
            widgets.append(Static(abstention(answer), classes="abstention"))
        for segment in answer.segments:
            if segment.text.strip():
                widgets.append(SegmentView(segment, self.turn_key, self.marker_style, classes="segment"))
        if not any(isinstance(w, SegmentView) for w in widgets):
            widgets.append(Static(literal(answer.text or "(the model produced no text)"), classes="segment-empty"))
        if answer.cut:
            widgets.append(Static(cut_note(answer), classes="cut-note"))
        container.set_class(answer.abstained, "-abstained")
        await container.mount_all(widgets)

    def set_marker_style(self, style: MarkerStyle) -> None:
        self.marker_style = style
        for view in self.query(SegmentView):
            view.set_marker_style(style)

    def segment_views(self) -> list[SegmentView]:
        return list(self.query(SegmentView))
