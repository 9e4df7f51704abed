"""The selfrag-chat app: chat, library, settings, history.

The window comes up at once; the document store (and its embedding model) and the generator load in thread
workers and report by message, so the library works while the model is still loading and the chat works while
an ingest runs. Heavy modules (torch, transformers, lancedb, sentence-transformers) are only imported inside
those workers.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from textual import on, work
from textual.app import App
from textual.message import Message
from textual.reactive import reactive
from textual.screen import ModalScreen

from selfrag_tui import locations, services
from selfrag_tui.history import HistoryStore
from selfrag_tui.settings import Settings, update_settings_file
from selfrag_tui.tui.actions import action_ids, bindings_for
from selfrag_tui.tui.commands import SelfRagCommands
from selfrag_tui.tui.screens.chat import ChatScreen
from selfrag_tui.tui.screens.help import HelpScreen
from selfrag_tui.tui.screens.history import HistoryScreen
from selfrag_tui.tui.screens.library import LibraryScreen
from selfrag_tui.tui.screens.model_error import ModelErrorScreen
from selfrag_tui.tui.screens.settings import SettingsScreen

if TYPE_CHECKING:
    from ingest.store import DocumentStore
    from ingest.types import IngestProgress, IngestReport
    from selfrag_tui.engines.base import Engine
    from selfrag_tui.selfrag.types import Passage

Status = tuple[str, str]
"""(state, words): state is one of idle, loading, busy, ready, failed."""

SCREEN_NAMES = ("chat", "library", "settings", "history")

# The generator and the embedding model load in separate workers. transformers' lazily imported module is not
# safe to import from two threads at once (one thread can see `transformers.AutoTokenizer` missing), so model
# loads take turns.
_model_load_lock = threading.Lock()


def _model_label(settings: Settings) -> str:
    model = settings.model.model
    if Path(model).expanduser().resolve() == locations.demo_model_path().resolve():
        return "tiny demo model"
    return model


class SelfRagApp(App[int]):
    """Keyboard-first chat over your own documents, with the model's judgements shown."""

    CSS_PATH = "app.tcss"
    TITLE = "selfrag-chat"
    COMMANDS = App.COMMANDS | {SelfRagCommands}
    BINDINGS = bindings_for("app")

    generator_status: reactive[Status] = reactive(("idle", "not loaded"))
    store_status: reactive[Status] = reactive(("idle", "not opened"))
    ingest_status: reactive[Status] = reactive(("idle", ""))

    # -- messages from the workers ---------------------------------------------------------------------------

    @dataclass
    class EngineLoaded(Message):
        engine: "Engine"
        label: str

    @dataclass
    class EngineFailed(Message):
        error: str
        fixable: bool
        """True for an `EngineError`: the message says what to do."""

    @dataclass
    class StoreOpened(Message):
        store: "DocumentStore"

    @dataclass
    class StoreFailed(Message):
        error: str
        title: str = "The document store could not be opened"

    @dataclass
    class EmbedderReady(Message):
        pass

    @dataclass
    class StoreCounted(Message):
        words: str

    @dataclass
    class IngestProgressed(Message):
        """Latest ingest progress; a newer one replaces an unprocessed older one, so a burst never queues."""

        progress: "IngestProgress"
        started: float

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, SelfRagApp.IngestProgressed)

    @dataclass
    class IngestFinished(Message):
        report: "IngestReport | None"
        error: str | None
        what: str

    class DocumentsChanged(Message):
        """The store's documents changed (ingest, removal); the library reloads its table."""

    # -- life cycle ------------------------------------------------------------------------------------------

    def __init__(
        self,
        settings: Settings,
        *,
        base_settings: Settings | None = None,
        demo: bool = False,
        engine: "Engine | None" = None,
        store: "DocumentStore | None" = None,
        history: HistoryStore | None = None,
        ingest_demo_docs: bool | None = None,
        load_generator: bool = True,
    ) -> None:
        """`engine`, `store` and `history` may be handed in already open (tests share one across apps).

        `base_settings` are the settings as configured (before `--demo` pointed them at the demo model and
        store): saving writes those, so a demo session never rewrites the user's model or store.
        """
        super().__init__()
        self.settings = settings
        self.base_settings = base_settings or settings
        self.demo = demo
        self.engine: Engine | None = engine
        self.store: DocumentStore | None = store
        self.history = history or HistoryStore.open()
        self._ingest_demo_docs = demo if ingest_demo_docs is None else ingest_demo_docs
        self._load_generator = load_generator
        self._ingest_cancel: threading.Event | None = None
        self.ingest_running = False
        self.last_ingest_report: IngestReport | None = None
        self.last_ingest_progress: IngestProgress | None = None

    def on_mount(self) -> None:
        self.theme = self.settings.ui.theme if self.settings.ui.theme in self.available_themes else "textual-dark"
        self._apply_keymap()
        self.install_screen(ChatScreen(), "chat")
        self.install_screen(LibraryScreen(), "library")
        self.install_screen(SettingsScreen(), "settings")
        self.install_screen(HistoryScreen(), "history")
        self.push_screen("chat")
        if self.store is None:
            self.store_status = ("loading", "opening…")
        if self.engine is None and self._load_generator:
            self.generator_status = ("loading", f"loading {_model_label(self.settings)}…")
        # Start loading after the first frame is drawn: the imports in the workers hold the GIL for seconds.
        self.call_after_refresh(self._start_loading)

    def _start_loading(self) -> None:
        if self.store is None:
            self.store_status = ("loading", "opening…")
            self.open_document_store()
        else:
            self._store_ready(self.store)
        if self.engine is not None:
            self.generator_status = ("ready", _model_label(self.settings))
        elif self._load_generator:
            self.load_generator()

    def _apply_keymap(self) -> None:
        keymap = dict(self.settings.ui.keybindings)
        unknown = sorted(set(keymap) - action_ids())
        if unknown:
            self.notify(
                f"Unknown binding id(s) in [ui.keybindings] of {locations.config_file()}: {', '.join(unknown)}. "
                "Press F1 to see the ids.",
                title="Some key bindings were ignored",
                severity="warning",
                markup=False,
            )
            for name in unknown:
                keymap.pop(name)
        self.set_keymap(keymap)

    # -- screens ---------------------------------------------------------------------------------------------

    @property
    def chat(self) -> ChatScreen:
        return self.get_screen("chat")  # type: ignore[return-value]

    @property
    def library(self) -> LibraryScreen:
        return self.get_screen("library")  # type: ignore[return-value]

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

    # -- the generator ---------------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="generator", exit_on_error=False)
    def load_generator(self) -> None:
        """Load the configured generator in a thread; the UI stays live meanwhile."""
        settings = self.settings
        label = _model_label(settings)
        self.call_from_thread(setattr, self, "generator_status", ("loading", f"loading {label}…"))
        from selfrag_tui.engines.base import EngineError

        try:
            with _model_load_lock:
                engine = services.load_engine(settings)
        except EngineError as exc:
            self.post_message(self.EngineFailed(str(exc), True))
            return
        except Exception as exc:  # a crash in the engine: shown with its type, the app keeps running
            self.post_message(self.EngineFailed(f"{type(exc).__name__}: {exc}", False))
            return
        self.post_message(self.EngineLoaded(engine, label))

    @on(EngineLoaded)
    def _engine_loaded(self, message: EngineLoaded) -> None:
        previous, self.engine = self.engine, message.engine
        if previous is not None and previous is not message.engine:
            try:
                previous.close()
            except Exception:  # releasing memory of a model we no longer use must not break the new one
                pass
        self.generator_status = ("ready", message.label)

    @on(EngineFailed)
    def _engine_failed(self, message: EngineFailed) -> None:
        self.engine = None
        self.generator_status = ("failed", "not available — F9 switches to the demo model")
        self.push_screen(ModelErrorScreen(message.error, model=self.settings.model.model, fixable=message.fixable))

    def action_use_demo_model(self) -> None:
        """Point the generator at the bundled tiny model (this session only; the config file is unchanged)."""
        demo = services.demo_settings(self.settings)
        data = self.settings.model_dump()
        data["model"] = demo.model.model_dump()
        self.settings = Settings.model_validate(data)
        self.engine = None
        self.load_generator()
        self.notify("Loading the bundled tiny demo model. It only knows the sample documents' topics.",
                    title="Demo model", markup=False)

    def reload_generator(self) -> None:
        self.engine = None
        self.load_generator()

    # -- the document store ----------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="store", exit_on_error=False)
    def open_document_store(self) -> None:
        try:
            store = services.open_store(self.settings)
        except Exception as exc:  # StoreError messages say what to do; anything else is shown with its type
            from ingest.errors import StoreError

            text = str(exc) if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"
            self.post_message(self.StoreFailed(text))
            return
        self.post_message(self.StoreOpened(store))

    @on(StoreOpened)
    def _store_opened(self, message: StoreOpened) -> None:
        self._store_ready(message.store)

    def _store_ready(self, store: "DocumentStore") -> None:
        self.store = store
        self.post_message(self.DocumentsChanged())
        self._refresh_store_status()
        if self._ingest_demo_docs:
            self._ingest_demo_docs = False
            self.start_ingest([locations.sample_docs_path()], sync=True, what="sample documents")
        else:
            self.warm_embedder()

    @work(thread=True, exclusive=True, group="embedder", exit_on_error=False)
    def warm_embedder(self) -> None:
        """Load the embedding model now, so the first question does not wait for it (import takes seconds)."""
        store = self.store
        if store is None:
            return
        self.call_from_thread(self._refresh_store_status)
        try:
            with _model_load_lock:
                store.embedder  # noqa: B018 - the property loads the model
        except Exception as exc:
            self.post_message(self.StoreFailed(str(exc), "The embedding model could not be loaded"))
            return
        self.post_message(self.EmbedderReady())

    @on(EmbedderReady)
    def _embedder_ready(self) -> None:
        self._refresh_store_status()

    @on(StoreFailed)
    def _store_failed(self, message: StoreFailed) -> None:
        self.store_status = ("failed", "unavailable (see message)")
        self.notify(message.error, title=message.title, severity="error", timeout=15, markup=False)

    def _refresh_store_status(self) -> None:
        self.count_documents()

    @work(thread=True, exclusive=True, group="count", exit_on_error=False)
    def count_documents(self) -> None:
        store = self.store
        if store is None:
            return
        try:
            documents = store.documents()
            chunks = store.count_chunks()
        except Exception as exc:
            self.post_message(self.StoreFailed(str(exc)))
            return
        failed = sum(1 for d in documents if d.status != "ok")
        words = f"{len(documents)} document(s), {chunks} passage(s)"
        if failed:
            words += f", {failed} failed"
        self.post_message(self.StoreCounted(words))

    @on(StoreCounted)
    def _store_counted(self, message: StoreCounted) -> None:
        # Decided here, on the event loop, so a count that finishes late cannot undo "embedder ready".
        if self.store is not None and not getattr(self.store, "embedder_loaded", True):
            self.store_status = ("loading", message.words + " · loading the embedding model…")
        else:
            self.store_status = ("ready", message.words)

    def retrieve(self, query: str, k: int) -> list["Passage"]:
        """The decoder's retriever: searches whatever store is open now (it may open after the model)."""
        store = self.store
        if store is None:
            raise RuntimeError(
                "the document store is not open (still opening, or it failed: see 'Store' in the status bar); "
                "ask again once it is ready"
            )
        return services.make_retriever(store, self.settings.store.search_mode)(query, k)

    # -- ingest ----------------------------------------------------------------------------------------------

    def start_ingest(self, paths: Sequence[Path | str], *, sync: bool = False, what: str = "") -> bool:
        """Ingest `paths` in a thread worker; False (with a message) when the store is not ready or busy."""
        if self.store is None:
            self.notify("The document store is still opening; try again in a moment.", title="Not ready yet",
                        severity="warning")
            return False
        if self.ingest_running:
            self.notify("An ingest is already running; wait for it or press Esc in the library to stop it.",
                        title="Ingest busy", severity="warning")
            return False
        self.ingest_running = True
        self._ingest_cancel = threading.Event()
        self.ingest_status = ("busy", "starting…")
        self._ingest_worker([str(p) for p in paths], sync, what or ", ".join(Path(p).name for p in paths),
                            self._ingest_cancel)
        return True

    def cancel_ingest(self) -> bool:
        if self._ingest_cancel is None or not self.ingest_running:
            return False
        self._ingest_cancel.set()
        self.ingest_status = ("busy", "stopping…")
        return True

    @work(thread=True, group="ingest", exit_on_error=False)
    def _ingest_worker(self, paths: list[str], sync: bool, what: str, cancel: threading.Event) -> None:
        settings = self.settings
        started = time.monotonic()
        try:
            with _model_load_lock:  # load the embedder here, not concurrently with the generator
                self.store.embedder  # noqa: B018 - the property loads the model
        except Exception as exc:
            self.post_message(self.IngestFinished(None, str(exc), what))
            return

        def on_progress(progress: "IngestProgress") -> None:
            self.post_message(self.IngestProgressed(progress, started))

        try:
            report = services.ingest(self.store, paths, settings, sync=sync, on_progress=on_progress, cancel=cancel)
        except Exception as exc:
            from ingest.errors import StoreError

            text = str(exc) if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"
            self.post_message(self.IngestFinished(None, text, what))
            return
        self.post_message(self.IngestFinished(report, None, what))

    @on(IngestProgressed)
    def _ingest_progressed(self, message: IngestProgressed) -> None:
        progress = message.progress
        self.last_ingest_progress = progress
        done, total = progress.documents_done, progress.documents_total
        words = f"{progress.phase} {done}/{total}"
        if progress.eta_seconds is not None and done < total:
            words += f" · ETA {format_eta(progress.eta_seconds)}"
        if self.ingest_running:
            self.ingest_status = ("busy", words)
        self.library.show_progress(progress)

    @on(IngestFinished)
    def _ingest_finished(self, message: IngestFinished) -> None:
        self.ingest_running = False
        self._ingest_cancel = None
        self.last_ingest_report = message.report
        self.library.ingest_done(message.report, message.error)
        if message.error is not None:
            self.ingest_status = ("failed", "failed (see message)")
            self.notify(message.error, title=f"Ingest of {message.what} failed", severity="error", timeout=15,
                        markup=False)
        else:
            report = message.report
            assert report is not None
            summary = (
                f"{len(report.added)} added, {len(report.updated)} updated, {len(report.unchanged)} unchanged, "
                f"{len(report.removed)} removed, {len(report.failed)} failed"
            )
            self.ingest_status = ("idle", "stopped: " + summary if report.cancelled else "")
            if report.failed:
                self.notify(
                    "\n".join(f"{Path(p).name}: {reason}" for p, reason in list(report.failed.items())[:5]),
                    title=f"Some files of {message.what} were not added (details in the library)",
                    severity="warning",
                    timeout=12,
                    markup=False,
                )
            elif report.added or report.updated or report.removed:
                self.notify(summary, title=f"Ingested {message.what}", markup=False)
        self.post_message(self.DocumentsChanged())
        self._refresh_store_status()
        self.warm_embedder()

    @on(DocumentsChanged)
    def _documents_changed(self) -> None:
        self.library.reload_documents()

    # -- settings --------------------------------------------------------------------------------------------

    def apply_settings(self, updates: dict[str, dict[str, Any]], *, save: bool = True) -> Path | None:
        """Merge `updates` (section -> fields) into the session's settings; persist them to the config file.

        Only the fields that differ from the session's are written over the configured settings, so a demo
        session saves its decoding choices without pointing the user's config at the demo model. Reloads the
        generator when the model changed. Raises pydantic's ValidationError for bad values.
        """
        def merged(base: Settings) -> Settings:
            data = base.model_dump()
            for section, values in updates.items():
                data.setdefault(section, {}).update(values)
            return Settings.model_validate(data)

        current = self.settings.model_dump()
        updates = {
            section: changed
            for section, values in updates.items()
            if (changed := {k: v for k, v in values.items() if current.get(section, {}).get(k) != v})
        }
        new_settings = merged(self.settings)
        model_changed = new_settings.model != self.settings.model
        self.settings = new_settings
        path = None
        if save:
            self.base_settings = merged(self.base_settings)
            path = update_settings_file(updates)
        if model_changed:
            self.reload_generator()
        return path


def format_eta(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"
