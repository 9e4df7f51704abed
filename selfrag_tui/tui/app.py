"""The selfrag-chat app: a Textual face over a `Session` (chat, library, settings, history).

The app owns no documents, models or settings logic: the session does. The app starts the session's blocking
work (open the store, load the generator, ingest) in thread workers, turns the session's events into messages
on the UI thread, keeps the status line's reactives, and routes the screens' messages (`tui/messages.py`).
The window comes up at once; heavy modules are only imported inside the workers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from textual import on, work
from textual.app import App
from textual.reactive import reactive
from textual.screen import ModalScreen

from selfrag_tui.application import events as ev
from selfrag_tui.application import locations
from selfrag_tui.tui import messages as msg
from selfrag_tui.tui.actions import action_ids, bindings_for
from selfrag_tui.tui.markers import format_eta
from selfrag_tui.tui.commands import SelfRagCommands
from selfrag_tui.tui.screens.chat import ChatScreen
from selfrag_tui.tui.screens.help import HelpScreen
from selfrag_tui.tui.screens.history import HistoryScreen
from selfrag_tui.tui.screens.library import LibraryScreen
from selfrag_tui.tui.screens.model_setup import ModelSetupScreen
from selfrag_tui.tui.screens.settings import SettingsScreen

if TYPE_CHECKING:
    from selfrag_tui.application.session import Session

Status = tuple[str, str]
"""(state, words): state is one of idle, loading, busy, ready, failed."""

SCREEN_NAMES = ("chat", "library", "settings", "history")


class SelfRagApp(App[int]):
    """Keyboard-first chat over your own documents, with the model's judgements shown."""

    CSS_PATH = "app.tcss"
    TITLE = "selfrag-chat"
    COMMANDS = App.COMMANDS | {SelfRagCommands}
    BINDINGS = bindings_for("app")

    generator_status: reactive[Status] = reactive(("idle", "not loaded"))
    store_status: reactive[Status] = reactive(("idle", "not opened"))
    ingest_status: reactive[Status] = reactive(("idle", ""))

    def __init__(self, session: "Session", *, ingest_demo_docs: bool = False, load_generator: bool = True) -> None:
        """`ingest_demo_docs`: ingest sample_docs/ once the store is open (`--demo`). `load_generator`: load the
        configured model at start (tests of the library alone skip it)."""
        super().__init__()
        self.session = session
        session.listener = self._session_event
        self._ingest_demo_docs = ingest_demo_docs
        self._load_generator = load_generator

    def _session_event(self, event: ev.SessionEvent) -> None:
        """Called by the session from any thread: hop to the UI thread as a message."""
        self.post_message(msg.SessionEventMessage(event))

    # -- life cycle ------------------------------------------------------------------------------------------

    def on_mount(self) -> None:
        settings = self.session.settings
        self.theme = settings.ui.theme if settings.ui.theme in self.available_themes else "textual-dark"
        self._apply_keymap()
        self.install_screen(ChatScreen(self.session), "chat")
        self.install_screen(LibraryScreen(self.session), "library")
        self.install_screen(SettingsScreen(self.session), "settings")
        self.install_screen(HistoryScreen(self.session), "history")
        self.push_screen("chat")
        self.store_status = ("loading", "opening…")
        if self.session.engine is not None:
            self.generator_status = ("ready", self.session.model_label)
        elif self._load_generator:
            self.generator_status = ("loading", f"loading {self.session.model_label}…")
        # Start loading after the first frame is drawn: the imports in the workers hold the GIL for seconds.
        self.call_after_refresh(self._start_loading)
        self._watch_terminal()

    def _watch_terminal(self) -> None:
        """Quit when the terminal goes away. Its window closed while another process led the terminal's session
        (`make run`), the app gets no hang-up signal, and Textual's input loop would spin on the dead terminal."""
        import os
        import sys

        if self.is_headless or sys.__stdin__ is None:
            return
        try:
            fd = sys.__stdin__.fileno()
        except (OSError, ValueError):
            return
        if os.isatty(fd):
            self.set_interval(2.0, lambda: None if os.isatty(fd) else self.exit(return_code=129))

    def _start_loading(self) -> None:
        self.open_document_store()
        if self.session.engine is None and self._load_generator:
            self.load_generator()

    def _apply_keymap(self) -> None:
        keymap = dict(self.session.settings.ui.keybindings)
        unknown = sorted(set(keymap) - action_ids())
        if unknown:
            self.notify(
                f"Unknown binding id(s) in [ui.keybindings] of {locations.config_file()}: {', '.join(unknown)}. "
                "Press F1 to see the ids.",
                title="Some key bindings were ignored", severity="warning", markup=False,
            )
            for name in unknown:
                keymap.pop(name)
        self.set_keymap(keymap)

    # -- screens ---------------------------------------------------------------------------------------------

    def action_show_screen(self, name: str) -> None:
        if name not in SCREEN_NAMES:
            return
        while isinstance(self.screen, ModalScreen):
            self.pop_screen()
        if self.screen is not self.get_screen(name):
            self.switch_screen(name)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def _broadcast(self, message_factory) -> None:
        """Post a fresh message to every installed screen (each handles what concerns it)."""
        for name in SCREEN_NAMES:
            self.get_screen(name).post_message(message_factory())

    # -- workers: the session's blocking work ----------------------------------------------------------------

    @work(thread=True, exclusive=True, group="generator", exit_on_error=False)
    def load_generator(self) -> None:
        from selfrag_tui.application.session import ModelUnavailable

        try:
            self.session.load_engine()
        except ModelUnavailable:
            pass  # reported through the session's events

    @work(thread=True, exclusive=True, group="store", exit_on_error=False)
    def open_document_store(self) -> None:
        try:
            self.session.open_store()
        except Exception:
            return  # reported through the session's events
        self.session.refresh_store_status()
        if self._ingest_demo_docs:
            self._ingest_demo_docs = False
            self._ingest(self.session.ingest_sample_docs)
        else:
            self._warm()

    def _warm(self) -> None:
        try:
            self.session.warm_embedder()
        except Exception:
            pass  # reported through the session's events

    @work(thread=True, exclusive=True, group="count", exit_on_error=False)
    def refresh_store(self) -> None:
        self.session.refresh_store_status()

    # A fixed description: the default one lists the arguments, and a password is one of them.
    @work(thread=True, group="ingest", exit_on_error=False, description="ingest")
    def ingest_worker(self, paths: Sequence[Path | str], sync: bool, what: str, password: str | None = None) -> None:
        self._ingest(lambda: self.session.ingest(paths, sync=sync, what=what, password=password))

    def _ingest(self, run) -> None:
        from selfrag_tui.application.session import SessionBusy

        try:
            run()
        except SessionBusy as exc:
            self.call_from_thread(self.notify, f"{str(exc)[:1].upper()}{str(exc)[1:]} (Esc in the library stops "
                                  "it).", title="Ingest busy", severity="warning", markup=False)
            return
        except Exception:
            pass  # the session reported IngestFinished with the error
        self.session.refresh_store_status()
        self._warm()

    @work(thread=True, group="remove", exit_on_error=False)
    def remove_worker(self, paths: list[str]) -> None:
        try:
            removed, _missing = self.session.remove_documents(paths)
        except Exception as exc:
            self.call_from_thread(self.notify, str(exc), title="Could not remove the document", severity="error",
                                  markup=False)
            return
        names = ", ".join(Path(p).name for p in removed) or "nothing"
        self.call_from_thread(self.notify, f"Removed {names}.", markup=False)
        self.session.refresh_store_status()

    # -- the session's events ----------------------------------------------------------------------------------

    @on(msg.SessionEventMessage)
    def _on_session_event(self, message: msg.SessionEventMessage) -> None:
        event = message.event
        if isinstance(event, ev.GeneratorStatus):
            self.generator_status = (event.status.state, event.status.words)
        elif isinstance(event, ev.StoreStatus):
            self.store_status = (event.status.state, event.status.words)
        elif isinstance(event, ev.IngestStatus):
            self.ingest_status = (event.status.state, event.status.words)
        elif isinstance(event, ev.GeneratorFailed):
            self.push_screen(ModelSetupScreen(self.session, event.error, fixable=event.fixable))
        elif isinstance(event, ev.StoreFailed):
            self.store_status = ("failed", "unavailable (see message)")
            self.notify(event.error, title=event.title, severity="error", timeout=15, markup=False)
        elif isinstance(event, ev.IngestProgressed):
            self._ingest_progressed(event)
        elif isinstance(event, ev.IngestFinished):
            self._ingest_finished(event)
        # Screens render what concerns them (progress, documents, settings, a question waiting for the model).
        if not isinstance(event, (ev.GeneratorStatus, ev.StoreStatus, ev.IngestStatus)):
            self._broadcast(lambda: msg.SessionEventMessage(event))

    def _ingest_progressed(self, event: ev.IngestProgressed) -> None:
        progress = event.progress
        done, total = progress.documents_done, progress.documents_total
        words = f"{progress.phase} {done}/{total}"
        if progress.eta_seconds is not None and done < total:
            words += f" · ETA {format_eta(progress.eta_seconds)}"
        if self.session.ingest_running:
            self.ingest_status = ("busy", words)

    def _ingest_finished(self, event: ev.IngestFinished) -> None:
        if event.error is not None:
            self.ingest_status = ("failed", "failed (see message)")
            self.notify(event.error, title=f"Ingest of {event.what} failed", severity="error", timeout=15,
                        markup=False)
            return
        report = event.report
        if report is None:
            return
        summary = (
            f"{len(report.added)} added, {len(report.updated)} updated, {len(report.unchanged)} unchanged, "
            f"{len(report.removed)} removed, {len(report.failed)} failed"
        )
        self.ingest_status = ("idle", "stopped: " + summary if report.cancelled else "")
        if report.failed:
            self.notify(
                "\n".join(f"{Path(p).name}: {reason}" for p, reason in list(report.failed.items())[:5]),
                title=f"Some files of {event.what} were not added (details in the library)",
                severity="warning", timeout=12, markup=False,
            )
        elif report.added or report.updated or report.removed:
            self.notify(summary, title=f"Ingested {event.what}", markup=False)

    # -- the screens' requests -------------------------------------------------------------------------------

    @on(msg.StartIngest)
    def _start_ingest(self, message: msg.StartIngest) -> None:
        if self.session.ingest_running:
            self.notify("An ingest is already running; wait for it or press Esc in the library to stop it.",
                        title="Ingest busy", severity="warning")
            return
        self.ingest_status = ("busy", "starting…")
        what = message.what or ", ".join(Path(p).name or str(p) for p in message.paths)
        self.ingest_worker(list(message.paths), message.sync, what, message.password)

    @on(msg.CancelIngest)
    def _cancel_ingest(self) -> None:
        if self.session.cancel_ingest():
            self.notify("Stopping the ingest after the current batch; what is done so far is kept.")

    @on(msg.RemoveDocuments)
    def _remove_documents(self, message: msg.RemoveDocuments) -> None:
        if self.session.ingest_running:
            self.notify("Wait for the running ingest to finish (or stop it with Esc) before removing documents.",
                        severity="warning")
            return
        self.remove_worker(message.paths)

    @on(msg.RefreshStore)
    def _refresh_store(self) -> None:
        self.refresh_store()

    @on(msg.OpenConversation)
    def _open_conversation(self, message: msg.OpenConversation) -> None:
        try:
            conversation = self.session.load_conversation(message.conversation_id)
        except Exception as exc:
            self.notify(str(exc), title="The conversation could not be opened", severity="error", markup=False)
            return
        self.action_show_screen("chat")
        self.get_screen("chat").post_message(msg.LoadConversation(conversation))

    @on(msg.ConversationDeleted)
    def _conversation_deleted(self, message: msg.ConversationDeleted) -> None:
        self.get_screen("chat").post_message(msg.ForgetConversation(message.conversation_id))

    @on(msg.ApplySettings)
    def _apply_settings(self, message: msg.ApplySettings) -> None:
        from selfrag_tui.application.settings import SettingsError

        try:
            applied = self.session.update_settings(message.updates)
        except SettingsError as exc:
            self.notify("\n".join(exc.problems), title="Settings not applied", severity="error", markup=False)
            return
        except OSError as exc:
            self.notify(f"{exc}", title="Settings applied but not saved", severity="warning", markup=False)
            applied = None
        if applied is not None:
            self.notify(f"They apply to the next question. Saved to {applied.saved_to}.", title="Settings applied",
                        markup=False)
        if applied is not None and applied.model_changed:
            self.load_generator()
        if message.rerun:
            self.action_show_screen("chat")
            self.get_screen("chat").post_message(msg.RerunLastQuestion())

    @on(msg.ReloadGenerator)
    def _reload_generator(self) -> None:
        self.load_generator()

    @on(msg.UseDemoModel)
    def action_use_demo_model(self) -> None:
        """Point the generator at the bundled tiny model (this session only; the config file is unchanged)."""
        self.session.use_demo_model()
        self.load_generator()
        self.notify("Loading the bundled tiny demo model. It only knows the sample documents' topics.",
                    title="Demo model", markup=False)

