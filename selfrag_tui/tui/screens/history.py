"""Saved conversations: reopen one to read or continue it, delete it, or export it."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from selfrag_tui.application.history import ConversationSummary
from selfrag_tui.application.verdicts import clean_text
from selfrag_tui.tui import messages as msg
from selfrag_tui.tui.actions import bindings_for
from selfrag_tui.tui.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from selfrag_tui.application.session import Session


def summary_line(summary: ConversationSummary) -> Text:
    line = Text(clean_text(summary.title), style="bold")
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(summary.updated_at))
    line.append(f"\n  {summary.turn_count} turn(s) · last used {stamp}", style="dim")
    return line


class HistoryScreen(Screen):
    BINDINGS = bindings_for("history")

    def __init__(self, session: "Session") -> None:
        super().__init__()
        self.session = session
        self.summaries: list[ConversationSummary] = []

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with Vertical(id="history-body"):
            yield Static(Text("Enter reopens a conversation (new questions continue it); Delete removes it; "
                              "Ctrl+S exports it as Markdown and JSON.", style="dim"), id="history-hint")
            yield OptionList(id="conversations")
        yield Footer()

    def on_screen_resume(self) -> None:
        self.reload()

    def on_mount(self) -> None:
        self.reload()

    def reload(self) -> None:
        options = self.query_one("#conversations", OptionList)
        highlighted = options.highlighted
        self.summaries = self.session.conversations()
        options.clear_options()
        if not self.summaries:
            options.add_option(Option(Text("No saved conversations yet.", style="dim"), disabled=True))
            return
        options.add_options([Option(summary_line(s), id=f"conversation-{s.id}") for s in self.summaries])
        options.highlighted = min(highlighted or 0, len(self.summaries) - 1)
        options.focus()

    def selected(self) -> ConversationSummary | None:
        index = self.query_one("#conversations", OptionList).highlighted
        if index is None or not self.summaries or index >= len(self.summaries):
            return None
        return self.summaries[index]

    @on(OptionList.OptionSelected, "#conversations")
    async def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        await self.action_open_conversation()

    async def action_open_conversation(self) -> None:
        summary = self.selected()
        if summary is None:
            return
        self.post_message(msg.OpenConversation(summary.id))

    def action_delete_conversation(self) -> None:
        summary = self.selected()
        if summary is None:
            return
        self.session.delete_conversation(summary.id)
        self.post_message(msg.ConversationDeleted(summary.id))
        self.notify(f"Deleted “{summary.title}”.", markup=False)
        self.reload()

    def action_export_selected(self) -> None:
        summary = self.selected()
        if summary is None:
            return
        try:
            md_path, json_path = self.session.export_conversation(summary.id)
        except OSError as exc:
            self.notify(str(exc), title="Export failed", severity="error", markup=False)
            return
        self.notify(f"{md_path}\n{json_path}", title="Conversation exported", timeout=10, markup=False)
