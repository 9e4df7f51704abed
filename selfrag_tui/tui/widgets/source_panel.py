"""The passages of one turn: citation number, document, file and page or heading, where search put it, and the
model's relevance verdict with its probability. Irrelevant passages are dimmed but still open with Enter.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from selfrag_tui.selfrag.types import Answer, Critique, Passage
from selfrag_tui.tui.markers import hanging, source_line


class SourcePanel(Vertical):
    @dataclass
    class PassageOpened(Message):
        """The user asked to read a passage in full."""

        passage: Passage
        citation: int
        verdict: Critique | None

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.answer: Answer | None = None

    def compose(self) -> ComposeResult:
        yield Static(Text("Sources", style="bold"), classes="panel-title")
        yield OptionList(id="source-list")

    def show_answer(self, answer: Answer | None) -> None:
        self.answer = answer
        options = self.query_one(OptionList)
        options.clear_options()
        title = self.query_one(".panel-title", Static)
        if answer is None:
            title.update(Text("Sources", style="bold"))
            return
        if not answer.passages:
            title.update(Text.assemble(("Sources", "bold"), (" — none (answered without retrieving)", "dim")))
            return
        count = f" — {len(answer.passages)} passage(s), Enter opens"
        title.update(Text.assemble(("Sources", "bold"), (count, "dim")))
        for citation, passage in enumerate(answer.passages, start=1):
            verdict = answer.relevance_verdicts.get(passage.id)
            options.add_option(Option(hanging(source_line(citation, passage, verdict)), id=f"cite-{citation}"))
        options.highlighted = None

    def highlight(self, citation: int | None) -> None:
        options = self.query_one(OptionList)
        if citation is None or self.answer is None or not (1 <= citation <= len(self.answer.passages)):
            options.highlighted = None
            return
        options.highlighted = citation - 1
        options.scroll_to_highlight()

    def focus_list(self) -> None:
        """Focus the list, on the first passage when none is highlighted yet (so Enter opens something)."""
        options = self.query_one(OptionList)
        if options.highlighted is None and options.option_count:
            options.highlighted = 0
        options.focus()

    @property
    def highlighted_citation(self) -> int | None:
        index = self.query_one(OptionList).highlighted
        return None if index is None else index + 1

    @on(OptionList.OptionSelected, "#source-list")
    def _open(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if self.answer is None:
            return
        citation = event.option_index + 1
        passage = self.answer.passages[event.option_index]
        self.post_message(self.PassageOpened(passage, citation, self.answer.relevance_verdicts.get(passage.id)))
