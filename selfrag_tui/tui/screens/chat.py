"""The chat: questions, streamed answers with critique markers, and the source panel beside them.

A turn runs in a thread worker; the decoder's events come back as messages. Esc sets the cancel event and
removes the turn at once (no half-built message stays); a failed turn is removed too and its question goes
back into the input.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.screen import Screen
from textual.widgets import Footer, Input, OptionList, Static
from textual.widgets.option_list import Option

from selfrag_tui.application import events as ev
from selfrag_tui.application.history import Conversation
from selfrag_tui.selfrag.types import Answer, DecoderEvent
from selfrag_tui.tui import messages as msg
from selfrag_tui.tui.actions import bindings_for
from selfrag_tui.tui.markers import MARKER_STYLES, MarkerStyle
from selfrag_tui.tui.widgets.segment_view import SegmentView
from selfrag_tui.tui.widgets.source_panel import SourcePanel
from selfrag_tui.tui.widgets.status_bar import StatusBar
from selfrag_tui.tui.widgets.turn_view import TurnView

if TYPE_CHECKING:
    from selfrag_tui.application.session import Session

_turn_keys = itertools.count(1)


class ExampleQuestions(OptionList):
    """The demo's example questions: Enter or the question's number asks it."""

    def on_key(self, event) -> None:
        if event.character and event.character.isdigit():
            index = int(event.character) - 1
            if 0 <= index < self.option_count:
                event.stop()
                event.prevent_default()
                self.highlighted = index
                self.action_select()

WELCOME = (
    "Ask a question about your documents. The model decides whether to look something up; each part of the "
    "answer carries its judgements: ✓ relevant / ✗ irrelevant passage, ● fully / ◐ partially / ○ not "
    "supported, "
    "★ utility 1-5, and [n] its source. Ctrl+T cycles the markers, F1 lists every key."
)


class ChatScreen(Screen):
    BINDINGS = bindings_for("chat")

    marker_style: reactive[MarkerStyle] = reactive("full", init=False)

    @dataclass
    class DecoderEventPosted(Message):
        turn_key: str
        event: DecoderEvent

    @dataclass
    class TurnFinished(Message):
        turn_key: str
        answer: Answer

    @dataclass
    class TurnCancelled(Message):
        turn_key: str

    @dataclass
    class TurnFailed(Message):
        turn_key: str
        error: str

    def __init__(self, session: "Session") -> None:
        super().__init__()
        self.session = session
        self.conversation_id: int | None = None
        self.turns: dict[str, TurnView] = {}
        self.answers: list[Answer] = []
        """Finished answers of this conversation, in order (the decoder's chat history)."""
        self.running_key: str | None = None
        self.running_question: str | None = None
        self._cancel: threading.Event | None = None
        self.selected_key: str | None = None

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with Horizontal(id="chat-body"):
            with Vertical(id="chat-main"):
                with VerticalScroll(id="conversation"):
                    with Vertical(id="welcome"):
                        yield Static(Text(WELCOME, style="dim"), id="welcome-text")
                        if self.session.demo:
                            yield from self._demo_welcome()
                yield Static("", id="critique-detail")
                yield Input(placeholder="Ask about your documents…  (Enter sends, Esc cancels)", id="prompt",
                    select_on_focus=False)
            yield SourcePanel(id="sources")
        yield Footer()

    def _demo_welcome(self) -> ComposeResult:
        from selfrag_tui.application.demo import DEMO_QUESTIONS, DEMO_TOPICS

        yield Static(
            Text("This is the tiny demo model. It knows only the sample documents: " + "; ".join(DEMO_TOPICS)
                 + ". Questions on anything else may get a confident answer that means nothing. Type a question's "
                 "number and press Enter to ask it, or type your own about these topics:"),
            id="demo-topics",
        )
        yield ExampleQuestions(*[Option(f"{n}  {q}", id=f"example-{n}") for n, q in enumerate(DEMO_QUESTIONS, 1)],
                               id="examples")

    def on_mount(self) -> None:
        self.marker_style = self.session.settings.ui.markers
        self.query_one("#critique-detail", Static).display = False
        # The prompt has the focus from the start, also under the demo's examples: keys typed fast (or pasted)
        # while focus moves between widgets could otherwise arrive after the move and be lost.
        self.query_one("#prompt", Input).focus()

    @on(OptionList.OptionSelected, "#examples")
    async def _example_chosen(self, event: OptionList.OptionSelected) -> None:
        from selfrag_tui.application.demo import DEMO_QUESTIONS

        event.stop()
        question = DEMO_QUESTIONS[event.option_index]
        self.query_one("#prompt", Input).focus()
        await self.ask(question)

    def on_key(self, event) -> None:
        """Typing while a segment or the source list has focus goes to the prompt, as the user means it to. The
        prompt consumes the characters typed into it, so every printable key that reaches the screen is one the
        prompt has not seen, also one sent before the focus moved to it."""
        if event.character and event.character.isprintable():
            prompt = self.query_one("#prompt", Input)
            prompt.focus()
            prompt.insert_text_at_cursor(event.character)
            event.stop()
            event.prevent_default()

    # -- asking ----------------------------------------------------------------------------------------------

    @on(Input.Submitted, "#prompt")
    async def _submitted(self, event: Input.Submitted) -> None:
        question = event.value.strip()
        if not question:
            return
        examples = self.query(ExampleQuestions)
        if examples and question.isdigit() and 1 <= int(question) <= examples.first().option_count:
            from selfrag_tui.application.demo import DEMO_QUESTIONS

            question = DEMO_QUESTIONS[int(question) - 1]
        if await self.ask(question):
            event.input.value = ""

    async def ask(self, question: str) -> bool:
        """Start a turn; False (and a message saying why) when it cannot start now."""
        if self.running_key is not None:
            self.notify("An answer is being generated; press Esc to cancel it first.", title="Busy",
                        severity="warning")
            return False
        if self.session.engine is None and self.session.generator_failed is not None:
            self.notify("The generator is not available (see the status bar). F9 switches to the demo model.",
                        title="No model", severity="warning", markup=False)
            return False
        welcome = self.query("#welcome")
        if welcome:
            await welcome.remove()
        key = f"turn-{next(_turn_keys)}"
        view = TurnView(question, key, marker_style=self.marker_style, classes="turn")
        self.turns[key] = view
        conversation = self.query_one("#conversation", VerticalScroll)
        await conversation.mount(view)
        conversation.anchor()
        self.running_key = key
        self.running_question = question
        self._cancel = threading.Event()
        self._run_turn(key, question, [(a.question, a.text) for a in self.answers], self._cancel)
        return True

    @work(thread=True, exclusive=True, group="turn", exit_on_error=False)
    def _run_turn(self, key: str, question: str, history: list[tuple[str, str]], cancel: threading.Event) -> None:
        """Run the session's decoder in a thread (waiting for a model that is still loading); everything it
        reports goes back as messages."""
        try:
            from selfrag_tui.selfrag.decoder import DecodeCancelled

            answer = self.session.ask(
                question,
                history=history,
                on_event=lambda event: self.post_message(self.DecoderEventPosted(key, event)),
                cancel=cancel,
            )
        except DecodeCancelled:
            self.post_message(self.TurnCancelled(key))
            return
        except Exception as exc:  # the decoder's errors say what to do; anything else is shown with its type
            from selfrag_tui.engines.base import GenerationCancelled

            if isinstance(exc, GenerationCancelled):
                self.post_message(self.TurnCancelled(key))
                return
            text = str(exc) if type(exc).__name__.endswith(
                ("DecodeError", "EngineError", "StoreError", "ModelUnavailable", "StoreUnavailable")
            ) else f"{type(exc).__name__}: {exc}"
            self.post_message(self.TurnFailed(key, text))
            return
        self.post_message(self.TurnFinished(key, answer))

    @on(DecoderEventPosted)
    async def _decoder_event(self, message: DecoderEventPosted) -> None:
        view = self.turns.get(message.turn_key)
        if view is not None and message.turn_key == self.running_key:
            await view.handle_event(message.event)

    @on(TurnFinished)
    async def _turn_finished(self, message: TurnFinished) -> None:
        view = self.turns.get(message.turn_key)
        if view is None or message.turn_key != self.running_key:
            return
        self._end_turn()
        answer = message.answer
        await view.show_answer(answer)
        self.answers.append(answer)
        self._record(answer)
        self.select_turn(message.turn_key)
        self.query_one("#conversation", VerticalScroll).scroll_end(animate=False)

    @on(TurnCancelled)
    async def _turn_cancelled(self, message: TurnCancelled) -> None:
        # The view is normally gone already (removed when Esc was pressed); make sure.
        await self._drop_turn(message.turn_key)

    @on(TurnFailed)
    async def _turn_failed(self, message: TurnFailed) -> None:
        if message.turn_key != self.running_key:
            return
        question = self.running_question or ""
        self._end_turn()
        await self._drop_turn(message.turn_key)
        prompt = self.query_one("#prompt", Input)
        prompt.value = question
        prompt.cursor_position = len(question)
        prompt.focus()
        self.notify(message.error, title="The answer failed; your question is back in the input",
                    severity="error", timeout=15, markup=False)

    def _end_turn(self) -> None:
        self.running_key = None
        self.running_question = None
        self._cancel = None

    async def _drop_turn(self, key: str) -> None:
        view = self.turns.pop(key, None)
        if view is not None:
            await view.stop_stream()
            await view.remove()

    def _record(self, answer: Answer) -> None:
        try:
            self.conversation_id = self.session.record_turn(self.conversation_id, answer)
        except Exception as exc:  # the answer is on screen; losing its record must not lose the answer
            self.notify(f"{type(exc).__name__}: {exc}", title="The conversation could not be saved",
                        severity="warning", markup=False)

    # -- actions ---------------------------------------------------------------------------------------------

    async def action_cancel_turn(self) -> None:
        if self.running_key is None or self._cancel is None:
            self.query_one("#prompt", Input).focus()
            return
        self._cancel.set()
        key, question = self.running_key, self.running_question or ""
        self._end_turn()
        await self._drop_turn(key)
        prompt = self.query_one("#prompt", Input)
        if not prompt.value:
            prompt.value = question
            prompt.cursor_position = len(question)
        prompt.focus()
        self.notify("Cancelled; the question is back in the input.", title="Answer cancelled")

    def action_toggle_markers(self) -> None:
        index = MARKER_STYLES.index(self.marker_style)
        self.marker_style = MARKER_STYLES[(index + 1) % len(MARKER_STYLES)]
        self.notify(f"Markers: {self.marker_style}", timeout=2)

    def watch_marker_style(self, style: MarkerStyle) -> None:
        for view in self.turns.values():
            view.set_marker_style(style)

    async def action_rerun(self) -> None:
        """Ask the last question again with the settings now in force, keeping the earlier answer to compare."""
        if not self.answers:
            self.notify("Nothing to re-run yet: ask a question first.", severity="warning")
            return
        await self.ask(self.answers[-1].question)

    def action_show_candidates(self) -> None:
        answer = self.selected_answer()
        if answer is None:
            self.notify("No finished answer yet.", severity="warning")
            return
        from selfrag_tui.tui.screens.candidates import CandidatesScreen

        self.app.push_screen(CandidatesScreen(answer, self.session.settings))

    def action_focus_sources(self) -> None:
        self.query_one(SourcePanel).focus_list()

    def action_focus_prompt(self) -> None:
        self.query_one("#prompt", Input).focus()

    async def action_new_conversation(self) -> None:
        if self.running_key is not None:
            await self.action_cancel_turn()
        await self.clear()
        self.query_one("#prompt", Input).focus()
        self.notify("New conversation.", timeout=2)

    def action_export_conversation(self) -> None:
        if self.conversation_id is None:
            self.notify("Nothing to export yet: ask a question first.", severity="warning")
            return
        try:
            md_path, json_path = self.session.export_conversation(self.conversation_id)
        except OSError as exc:
            self.notify(f"{exc}", title="Export failed", severity="error", markup=False)
            return
        self.notify(f"{md_path}\n{json_path}", title="Conversation exported", timeout=10, markup=False)

    # -- conversations ---------------------------------------------------------------------------------------

    async def clear(self) -> None:
        conversation = self.query_one("#conversation", VerticalScroll)
        await conversation.remove_children()
        self.turns.clear()
        self.answers.clear()
        self.conversation_id = None
        self.selected_key = None
        self.query_one(SourcePanel).show_answer(None)
        self.query_one("#critique-detail", Static).display = False

    async def load_conversation(self, conversation: Conversation) -> None:
        """Show a saved conversation; new questions continue it."""
        if self.running_key is not None:
            await self.action_cancel_turn()
        await self.clear()
        self.conversation_id = conversation.id
        views = []
        for turn in conversation.turns:
            key = f"turn-{next(_turn_keys)}"
            view = TurnView(turn.question, key, answer=turn.answer, marker_style=self.marker_style, classes="turn")
            self.turns[key] = view
            views.append(view)
            self.answers.append(turn.answer)
        conversation_view = self.query_one("#conversation", VerticalScroll)
        await conversation_view.mount_all(views)
        if views:
            self.select_turn(views[-1].turn_key)
        conversation_view.scroll_end(animate=False)

    # -- selection: segment <-> source -----------------------------------------------------------------------

    def selected_answer(self) -> Answer | None:
        if self.selected_key and self.selected_key in self.turns:
            return self.turns[self.selected_key].answer
        return self.answers[-1] if self.answers else None

    def select_turn(self, key: str) -> None:
        view = self.turns.get(key)
        if view is None or view.answer is None:
            return
        if key != self.selected_key:
            for other in self.turns.values():
                other.remove_class("-selected")
            view.add_class("-selected")
            self.selected_key = key
            self.query_one(SourcePanel).show_answer(view.answer)

    @on(SegmentView.Selected)
    def _segment_selected(self, message: SegmentView.Selected) -> None:
        self.select_turn(message.segment_view.turn_key)
        segment = message.segment
        self.query_one(SourcePanel).highlight(segment.citation)
        for view in self.query(SegmentView):
            view.set_class(view is message.segment_view, "-current")
        detail = self.query_one("#critique-detail", Static)
        detail.update(message.segment_view.details())
        detail.display = True

    @on(SourcePanel.PassageOpened)
    def _open_passage(self, message: SourcePanel.PassageOpened) -> None:
        from selfrag_tui.tui.screens.passage import PassageScreen

        self.app.push_screen(PassageScreen(message.passage, message.citation, message.verdict, self.session.store))

    def question_in_input(self) -> str:
        return self.query_one("#prompt", Input).value

    # -- messages from the app -------------------------------------------------------------------------------

    @on(msg.SessionEventMessage)
    def _session_event(self, message: msg.SessionEventMessage) -> None:
        event = message.event
        if isinstance(event, ev.SettingsChanged):
            self.marker_style = event.settings.ui.markers
        elif isinstance(event, ev.WaitingForModel) and self.running_key in self.turns:
            self.turns[self.running_key].show_waiting(
                "waiting for the model to load; your question is answered as soon as it is ready (Esc cancels)")
        elif isinstance(event, ev.WaitingForDocuments) and self.running_key in self.turns:
            self.turns[self.running_key].show_waiting(
                "waiting for the documents being added to the empty store; your question is answered as soon as "
                "they are in (Esc cancels)")

    @on(msg.LoadConversation)
    async def _load_conversation(self, message: msg.LoadConversation) -> None:
        await self.load_conversation(message.conversation)

    @on(msg.ForgetConversation)
    def _conversation_deleted(self, message: msg.ForgetConversation) -> None:
        if self.conversation_id == message.conversation_id:
            self.conversation_id = None

    @on(msg.RerunLastQuestion)
    async def _rerun(self) -> None:
        await self.action_rerun()
