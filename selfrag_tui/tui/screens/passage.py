"""A passage in full, with the passages before and after it in its document, and where the file is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Static

from selfrag_tui.selfrag.types import OCR_NOTE, Critique, Passage
from selfrag_tui.tui.markers import CITATION_STYLE, literal, verdict_text, with_match
from selfrag_tui.application.verdicts import clean_text, relevance_verdict

if TYPE_CHECKING:
    from ingest.store import DocumentStore
    from ingest.types import SearchHit


class PassageScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q", "close", "Close", show=True)]

    @dataclass
    class NeighboursLoaded(Message):
        hits: list["SearchHit"]
        error: str | None = None

    def __init__(self, passage: Passage, citation: int, verdict: Critique | None,
                 store: "DocumentStore | None") -> None:
        super().__init__()
        self.passage = passage
        self.citation = citation
        self.verdict = verdict
        self.store = store

    def compose(self) -> ComposeResult:
        passage = self.passage
        head = Text()
        head.append(f"[{self.citation}] ", style=CITATION_STYLE)
        head.append(clean_text(passage.title or passage.doc_title), style="bold")
        info = Text()
        info.append("File: ", style="bold")
        info.append(clean_text(passage.source))
        if passage.location:
            info.append("   Location: ", style="bold")
            info.append(clean_text(passage.location))
        if passage.heading and passage.page_start is not None:
            info.append("   Section: ", style="bold")
            info.append(clean_text(passage.heading))
        for note in passage.notes:
            info.append("\n")
            info.append(clean_text(note), style="yellow" if note.startswith(OCR_NOTE) else "")
        if passage.rank is not None:
            info.append("\nSearch rank: ", style="bold")
            info.append(f"{passage.rank} (score {passage.score:.3f})")
        else:
            info.append("\nSearch score: ", style="bold")
            info.append(f"{passage.score:.3f}")
        verdict = relevance_verdict(self.verdict) if self.verdict is not None else None
        info.append("   Model verdict: ", style="bold")
        if verdict is None:
            info.append("not judged", style="dim")
        else:
            info.append_text(verdict_text(verdict, "full"))
            if verdict.numbers():
                info.append(f" ({verdict.numbers()})", style="dim")
        with Vertical(id="passage-dialog", classes="dialog"):
            yield Static(head, classes="dialog-title")
            yield Static(info, id="passage-info")
            with VerticalScroll(id="passage-body"):
                yield Static(with_match(passage.text, passage.match), classes="chunk -current")
            yield Static(Text("Esc closes", style="dim"), classes="dialog-hint")

    def on_mount(self) -> None:
        if self.store is not None:
            self._load_neighbours(self.store, self.passage.id)

    @work(thread=True, exclusive=True, exit_on_error=False)
    def _load_neighbours(self, store: "DocumentStore", chunk_id: str) -> None:
        try:
            hits = store.neighbours(chunk_id, window=1)
        except Exception as exc:  # the passage itself is already on screen
            self.post_message(self.NeighboursLoaded([], f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(self.NeighboursLoaded(hits))

    @on(NeighboursLoaded)
    async def _neighbours_loaded(self, message: NeighboursLoaded) -> None:
        body = self.query_one("#passage-body", VerticalScroll)
        if message.error is not None:
            await body.mount(Static(Text(f"Neighbouring passages unavailable: {message.error}", style="dim")))
            return
        if not message.hits:
            return
        await body.remove_children()
        current = None
        for hit in message.hits:
            is_current = hit.chunk_id == self.passage.id
            where = "" if hit.page_start is None else (
                f"p. {hit.page_start}" if hit.page_end in (None, hit.page_start) else
                f"pp. {hit.page_start}-{hit.page_end}")
            label = Text(("▶ this passage" if is_current else "  neighbouring passage") +
                         (f" · {where}" if where else "") +
                         (f" · {clean_text(hit.heading)}" if hit.heading else ""),
                         style="bold" if is_current else "dim")
            body_text = with_match(hit.text, self.passage.match) if is_current else literal(hit.text)
            widget = Static(label + Text("\n") + body_text,
                            classes="chunk -current" if is_current else "chunk")
            await body.mount(widget)
            if is_current:
                current = widget
        if current is not None:
            body.scroll_to_widget(current, animate=False, top=True)

    def action_close(self) -> None:
        self.dismiss(None)
