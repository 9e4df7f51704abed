"""`Session`: the application layer. One object owns the settings, the document store and its embedder, the
generator and its loading, ingest jobs, the decoder, the conversation history and exports.

The CLI commands and the Textual app both drive a Session; neither builds a decoder, opens a store or loads an
engine itself. The methods block (they load models, read files, generate): the CLI calls them directly, the app
from thread workers. Progress and state changes go to the `listener` as `events` dataclasses, from the thread
that did the work.

Heavy modules (torch, lancedb, sentence-transformers) are imported inside the methods that need them.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from selfrag_tui.application import events as ev
from selfrag_tui.application import locations
from selfrag_tui.application.settings import Settings, SettingsError, update_settings_file

if TYPE_CHECKING:
    from ingest.store import DocumentStore
    from ingest.types import IngestProgress, IngestReport, SearchHit
    from selfrag_tui.application.history import Conversation, ConversationSummary, HistoryStore
    from selfrag_tui.engines.base import Engine
    from selfrag_tui.selfrag.decoder import SelfRagDecoder
    from selfrag_tui.selfrag.types import Answer, DecoderEvent, Passage

Listener = Callable[[ev.SessionEvent], None]

# The generator and the embedding model may load in two threads. transformers' lazily imported module is not
# safe to import from two threads at once (one can see `transformers.AutoTokenizer` missing), so loads take turns.
MODEL_LOAD_LOCK = threading.Lock()


class ModelUnavailable(RuntimeError):
    """The generator is not loaded and will not be (its load failed); the message says why and what to do."""


class StoreUnavailable(RuntimeError):
    """The document store is not open (it failed to open); the message says why."""


class SessionBusy(RuntimeError):
    """Another job of the same kind is running (one ingest at a time)."""


def demo_settings(settings: Settings) -> Settings:
    """The same settings pointed at the bundled tiny model and the sample_docs store."""
    return settings.with_updates(
        {
            "model": {"engine": "transformers", "model": str(locations.demo_model_path()), "device": "cpu",
                      "dtype": "float32"},
            "store": {"path": str(locations.demo_store_path())},
            # The demo model memorises single questions; a transcript in the prompt only confuses it.
            "decoding": {"history_token_budget": 0},
        },
        source="--demo",
    )


def model_label(settings: Settings) -> str:
    model = settings.model.model
    try:
        if Path(model).expanduser().resolve() == locations.demo_model_path().resolve():
            return "tiny demo model"
    except OSError:
        pass
    return model


def passage_from_hit(hit: "SearchHit", notes: Sequence[str] = ()) -> "Passage":
    from selfrag_tui.selfrag.types import Passage

    return Passage(
        id=hit.chunk_id, title=hit.title, text=hit.text, source=hit.path, doc_title=hit.doc_title,
        page_start=hit.page_start, page_end=hit.page_end, heading=hit.heading, score=hit.score, notes=tuple(notes),
        match=hit.match,
    )


def passage_notes(hit: "SearchHit", metadata: Mapping[str, str]) -> list[str]:
    """What to show beside a passage about its document: the report it belongs to, and whether its page was
    read by OCR (from the document's metadata, see `ingest.pipeline.OCR_PAGES_KEY`)."""
    from ingest.facts import label_from_metadata
    from ingest.pipeline import OCR_PAGES_KEY
    from selfrag_tui.selfrag.types import OCR_NOTE

    notes = []
    label = label_from_metadata(dict(metadata))
    if label:
        notes.append(label)
    ocr_pages = {int(n) for n in (metadata.get(OCR_PAGES_KEY) or "").split() if n.isdigit()}
    if ocr_pages and hit.page_start is not None:
        pages = set(range(hit.page_start, (hit.page_end or hit.page_start) + 1)) & ocr_pages
        if pages:
            shown = ", ".join(str(n) for n in sorted(pages))
            notes.append(f"{OCR_NOTE} ({'p.' if len(pages) == 1 else 'pp.'} {shown}): may hold misread words")
    return notes


@dataclass(frozen=True)
class Applied:
    """What `Session.update_settings` did."""

    settings: Settings
    saved_to: Path | None
    model_changed: bool


class Session:
    """Everything a conversation over the user's documents needs, behind one object with no UI."""

    def __init__(
        self,
        settings: Settings,
        *,
        demo: bool = False,
        base_settings: Settings | None = None,
        engine: "Engine | None" = None,
        store: "DocumentStore | None" = None,
        history: "HistoryStore | None" = None,
        retriever: "Callable[[str, int], list[Passage]] | None" = None,
        listener: Listener | None = None,
    ) -> None:
        """`settings` as configured; with `demo` they are pointed at the tiny model and the sample documents.

        `engine`, `store` and `history` may be handed in already open (tests share them across sessions).
        `retriever` replaces the store search as the decoder's source of passages (`(query, k) -> passages`).
        Saving writes over the configured settings only, so a demo session never rewrites the user's model or
        store.
        """
        from selfrag_tui.application.offline import stay_offline

        stay_offline()  # models, tokenizers and embedders load from local files; only a download goes online
        self.base_settings = base_settings or settings
        self.settings = demo_settings(settings) if demo and base_settings is None else settings
        self.demo = demo
        self.listener: Listener = listener or (lambda event: None)
        self._engine = engine
        self._owns_engine = False  # an engine handed in belongs to the caller (it may serve other sessions)
        self._store = store
        self._history = history
        self._retriever = retriever
        self._engine_ready = threading.Event()
        self._engine_error: str | None = None
        self._engine_loading = False
        if engine is not None:
            self._engine_ready.set()
        self._store_ready = threading.Event()
        self._store_error: str | None = None
        if store is not None:
            self._store_ready.set()
        self._ingest_lock = threading.Lock()
        self._ingest_cancel: threading.Event | None = None
        self.last_ingest_report: "IngestReport | None" = None

    # -- events -----------------------------------------------------------------------------------------------

    def emit(self, event: ev.SessionEvent) -> None:
        self.listener(event)

    # -- the generator ----------------------------------------------------------------------------------------

    @property
    def engine(self) -> "Engine | None":
        return self._engine

    @property
    def model_label(self) -> str:
        return model_label(self.settings)

    @property
    def generator_failed(self) -> str | None:
        """The reason the last load failed, or None."""
        return self._engine_error

    def load_engine(self) -> "Engine":
        """Load the configured generator (closing the previous one). Raises ModelUnavailable with the reason."""
        from selfrag_tui.engines.base import EngineError
        from selfrag_tui.engines.loader import load_engine
        from selfrag_tui.reflection import MissingReflectionTokens, ReflectionVocab

        settings = self.settings
        label = model_label(settings)
        self._engine_ready.clear()
        self._engine_error = None
        self._engine_loading = True
        previous, self._engine = self._engine, None
        if previous is not None and self._owns_engine:
            try:
                previous.close()
            except Exception:  # releasing a model we no longer use must not stop the new one from loading
                pass
        self.emit(ev.GeneratorStatus(ev.Status("loading", f"loading {label}…")))
        try:
            with MODEL_LOAD_LOCK:
                engine = load_engine(settings.model)
            try:
                ReflectionVocab.from_engine(engine)  # every load: a model without Self-RAG tokens is refused
            except MissingReflectionTokens:
                engine.close()
                raise
        except (EngineError, MissingReflectionTokens) as exc:
            return self._engine_failed(str(exc), True)
        except Exception as exc:  # a crash in the engine: reported with its type, the session goes on
            return self._engine_failed(f"{type(exc).__name__}: {exc}", False)
        finally:
            self._engine_loading = False
        if self.settings.model != settings.model:  # the settings changed while it loaded: that load is stale
            engine.close()
            raise ModelUnavailable("the model setting changed while the model loaded")
        self.attach_engine(engine, label)
        self._owns_engine = True
        return engine

    def attach_engine(self, engine: "Engine", label: str | None = None) -> None:
        """Use an engine that is already loaded (e.g. one shared by several sessions); questions waiting for
        the model are answered with it. The caller keeps it: `close` leaves it open."""
        self._engine = engine
        self._owns_engine = False
        self._engine_error = None
        self._engine_ready.set()
        self.emit(ev.GeneratorStatus(ev.Status("ready", label or self.model_label)))

    def _engine_failed(self, error: str, fixable: bool) -> "Engine":
        self._engine_error = error
        self._engine_ready.set()  # wakes questions waiting for the model: they fail with the reason
        self.emit(ev.GeneratorStatus(ev.Status("failed", "not available — F9 switches to the demo model")))
        self.emit(ev.GeneratorFailed(error, fixable, self.settings.model.model))
        raise ModelUnavailable(error)

    def use_demo_model(self) -> None:
        """Point the generator at the bundled tiny model for this session (the settings file is unchanged).
        Call `load_engine` next."""
        self.settings = self.settings.with_updates({"model": demo_settings(self.settings).model.model_dump()},
                                                   source="the demo model")
        self.emit(ev.SettingsChanged(self.settings))

    def wait_for_engine(self, cancel: threading.Event | None = None, question: str = "") -> "Engine":
        """The loaded engine; while it loads, wait (reporting `WaitingForModel` once) until it is ready."""
        if self._engine is not None:
            return self._engine
        if not self._engine_ready.is_set() and self._engine_error is None:
            self.emit(ev.WaitingForModel(question))
        while not self._engine_ready.wait(0.1):
            if cancel is not None and cancel.is_set():
                from selfrag_tui.selfrag.decoder import DecodeCancelled

                raise DecodeCancelled()
        if self._engine is None:
            raise ModelUnavailable(
                self._engine_error or "no model is loaded; choose one in the model dialog or run with --demo"
            )
        return self._engine

    def wait_for_first_documents(self, cancel: threading.Event | None = None, question: str = "") -> None:
        """While an ingest fills an empty store (the demo's sample documents at start-up), wait for it (reporting
        `WaitingForDocuments` once): a question searched now would find nothing. A store that already holds
        passages is searched as it is, however long an ingest into it runs."""
        if self._retriever is not None or not self._ingest_lock.locked():
            return
        store = self._store
        if store is not None and store.count_chunks() > 0:
            return
        self.emit(ev.WaitingForDocuments(question))
        while self._ingest_lock.locked():
            if cancel is not None and cancel.is_set():
                from selfrag_tui.selfrag.decoder import DecodeCancelled

                raise DecodeCancelled()
            time.sleep(0.1)

    # -- the document store -----------------------------------------------------------------------------------

    @property
    def store(self) -> "DocumentStore | None":
        return self._store

    def open_store(self, *, embedder: str | None = None, allow_embedder_change: bool = False) -> "DocumentStore":
        """Open the store named by the settings (its embedder overridable, e.g. by `reindex --embedder`)."""
        if self._store is not None and embedder is None:
            return self._store
        from ingest.errors import StoreError
        from ingest.store import DocumentStore

        self.emit(ev.StoreStatus(ev.Status("loading", "opening…")))
        settings = self.settings
        try:
            store = DocumentStore.open(
                settings.store_path,
                embedder=embedder or settings.store.embedder,
                vector_index_threshold=settings.store.vector_index_threshold,
                embed_batch_size=settings.store.embed_batch_size,
                lock_wait_s=settings.store.lock_wait_s,
                allow_embedder_change=allow_embedder_change,
            )
        except Exception as exc:
            text = str(exc) if isinstance(exc, StoreError) else f"{type(exc).__name__}: {exc}"
            self._store_error = text
            self._store_ready.set()
            self.emit(ev.StoreStatus(ev.Status("failed", "unavailable (see message)")))
            self.emit(ev.StoreFailed(text))
            raise
        self._store = store
        self._store_ready.set()
        self.emit(ev.DocumentsChanged())
        return store

    def require_store(self) -> "DocumentStore":
        if self._store is None:
            if self._store_error:
                raise StoreUnavailable(self._store_error)
            return self.open_store()
        return self._store

    def warm_embedder(self) -> None:
        """Load the embedding model now, so the first question does not wait for it. An empty store needs no
        query embeddings (an ingest loads the model itself), so nothing is loaded for it."""
        store = self.require_store()
        self.refresh_store_status()
        if store.count_chunks() == 0:
            return
        try:
            with MODEL_LOAD_LOCK:
                store.embedder  # noqa: B018 - the property loads the model
        except Exception as exc:
            self.emit(ev.StoreFailed(str(exc), "The embedding model could not be loaded"))
            raise
        self.refresh_store_status()

    def store_summary(self) -> tuple[str, int]:
        """What the status line says of the store, and its passage count."""
        store = self.require_store()
        documents = store.documents()
        chunks = store.count_chunks()
        failed = sum(1 for d in documents if d.status != "ok")
        words = f"{len(documents)} document(s), {chunks} passage(s)"
        return words + (f", {failed} failed" if failed else ""), chunks

    def refresh_store_status(self) -> None:
        """Count the documents and report the store's status."""
        try:
            words, chunks = self.store_summary()
        except Exception as exc:
            self.emit(ev.StoreFailed(str(exc)))
            return
        store = self._store
        if chunks and store is not None and not getattr(store, "embedder_loaded", True):
            self.emit(ev.StoreStatus(ev.Status("loading", words + " · loading the embedding model…")))
        else:
            self.emit(ev.StoreStatus(ev.Status("ready", words)))

    def documents(self):
        return self.require_store().documents()

    def search(self, query: str, k: int, *, mode: str | None = None,
               documents: Sequence[str] | None = None) -> list["SearchHit"]:
        return self.require_store().search(query, k=k, mode=mode or self.settings.store.search_mode,
                                           documents=documents, rerank=self.settings.store.rerank)

    def retrieve(self, query: str, k: int) -> list["Passage"]:
        """The decoder's retriever: searches the store open now (it may open after the model). With
        `decoding.rerank_candidates` above `k`, that many results are judged by the model and the best `k` kept."""
        candidates = max(k, self.settings.decoding.rerank_candidates)
        if self._retriever is not None:
            passages = list(self._retriever(query, candidates))
        else:
            hits = self.search(query, candidates)
            metadata = self.documents_metadata({hit.path for hit in hits})
            passages = [passage_from_hit(hit, passage_notes(hit, metadata.get(hit.path, {}))) for hit in hits]
        passages = [p if p.rank is not None else replace(p, rank=i) for i, p in enumerate(passages, 1)]
        return self.rerank_by_model(query, passages, k) if candidates > k else passages[:k]

    def documents_metadata(self, paths: set[str]) -> dict[str, dict[str, str]]:
        """path -> the stored metadata of each document (a few lookups per question). A filing whose fiscal
        quarter search learnt from its company's other filings (`ingest.retrieval.with_fiscal_quarters`) shows
        it too, like one that states it."""
        from ingest.facts import quarter_label
        from ingest.retrieval import document_facts

        store = self.require_store()
        out: dict[str, dict[str, str]] = {}
        facts = None
        for path in paths:
            record = store.document(path)
            if record is not None and record.metadata:
                metadata = dict(record.metadata)
                if metadata.get("period ended") and "fiscal quarter" not in metadata:
                    facts = document_facts(store) if facts is None else facts
                    known = facts.get(record.doc_id)
                    if known is not None and known.fiscal_quarter is not None:
                        metadata["fiscal quarter"] = quarter_label(known.fiscal_quarter)
                out[path] = metadata
        return out

    def rerank_by_model(self, question: str, passages: Sequence["Passage"], keep: int) -> list["Passage"]:
        """The `keep` passages the loaded model judges most relevant ([Relevant] vs [Irrelevant], one step
        each); the search's own top `keep` when no model is loaded."""
        engine = self._engine
        if engine is None:
            return list(passages[:keep])
        from selfrag_tui.reflection import ReflectionVocab
        from selfrag_tui.selfrag.relevance import rerank

        return rerank(engine, ReflectionVocab.from_engine(engine), question, passages, keep)

    def remove_documents(self, names: Sequence[str]) -> tuple[list[str], list[str]]:
        """Remove documents by path or id: (removed paths, names not in the store)."""
        store = self.require_store()
        found, missing = store.resolve_documents(list(names))
        removed = store.remove([r.doc_id for r in found]) if found else []
        if removed:
            store.optimize()
            self.emit(ev.DocumentsChanged())
        return removed, missing

    def neighbours(self, passage: "Passage", before: int = 1, after: int = 1):
        return self.require_store().neighbours(passage.id, before=before, after=after)

    # -- ingest -----------------------------------------------------------------------------------------------

    @property
    def ingest_running(self) -> bool:
        return self._ingest_lock.locked()

    def ingest(
        self,
        paths: Sequence[Path | str],
        *,
        sync: bool = False,
        include: list[str] | None = None,
        exclude: list[str] | None = None,
        password: str | None = None,
        password_file: Path | str | None = None,
        what: str = "",
        on_progress: Callable[["IngestProgress"], None] | None = None,
        cancel: threading.Event | None = None,
        superseded: Callable[[str], bool] | None = None,
    ) -> "IngestReport":
        """Add or update `paths` with the settings' chunking and file rules. One ingest at a time (SessionBusy).
        Encrypted PDFs get their password from `password_file` (default: the `ingest.password_file` setting),
        then `password`; a password file that cannot be used fails the run (PasswordFileError) before any file
        is read. With `sync`, documents whose path `superseded` accepts are removed as well."""
        if not self._ingest_lock.acquire(blocking=False):
            raise SessionBusy("an ingest is already running; wait for it or stop it first")
        what = what or ", ".join(Path(p).name or str(p) for p in paths)
        cancel = cancel or threading.Event()
        self._ingest_cancel = cancel
        started = time.monotonic()
        self.emit(ev.IngestStatus(ev.Status("busy", "starting…")))
        report = None
        error: str | None = None
        try:
            from ingest.errors import StoreError
            from ingest.pipeline import ingest_paths

            ingest = self.settings.ingest
            book = None
            password_file = password_file if password_file is not None else ingest.password_file
            if password_file is not None:
                from ingest.passwords import PasswordBook

                try:
                    book = PasswordBook.load(password_file, default=password)
                except StoreError as exc:
                    error = str(exc)
                    raise
            store = self.require_store()
            with MODEL_LOAD_LOCK:  # the embedder loads here, not concurrently with the generator
                store.embedder  # noqa: B018

            def progress(update: "IngestProgress") -> None:
                self.emit(ev.IngestProgressed(update, started))
                if on_progress is not None:
                    on_progress(update)

            try:
                report = ingest_paths(
                    store, [str(p) for p in paths], sync=sync,
                    include=ingest.include if include is None else include,
                    exclude=ingest.exclude if exclude is None else exclude,
                    password=password, chunk_words=ingest.chunk_words, overlap_words=ingest.chunk_overlap_words,
                    max_file_mb=ingest.max_file_mb, on_progress=progress, cancel=cancel,
                    pdf_time_budget_s=ingest.pdf_time_budget_s,
                    passwords=book.for_path if book is not None else None,
                    ocr=ingest.ocr, superseded=superseded,
                )
                if book is not None and book.warnings:  # e.g. other users can read it
                    report.warnings.setdefault(str(password_file), []).extend(book.warnings)
            except StoreError as exc:
                error = str(exc)
                raise
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                raise
            self.last_ingest_report = report
            return report
        except Exception as exc:
            error = error or str(exc)
            raise
        finally:
            self._ingest_cancel = None
            self._ingest_lock.release()
            self.emit(ev.IngestFinished(report, error, what))
            self.emit(ev.DocumentsChanged())

    def cancel_ingest(self) -> bool:
        """Ask the running ingest to stop after its current batch (what is done is kept)."""
        cancel = self._ingest_cancel
        if cancel is None:
            return False
        cancel.set()
        self.emit(ev.IngestStatus(ev.Status("busy", "stopping…")))
        return True

    def ingest_sample_docs(self) -> "IngestReport":
        """The demo's store: sample_docs/ ingested (unchanged files are skipped). The sample documents of another
        checkout, ingested when the demo ran from there, are removed, or every source would be shown twice;
        other files added to the demo's store stay."""
        docs = locations.sample_docs_path()
        if not docs.is_dir():
            raise FileNotFoundError(
                f"the sample documents folder {docs} is missing; the demo needs a source checkout of selfrag-chat"
            )
        names = {path.name for path in docs.iterdir() if path.is_file()}
        here = docs.resolve()

        def other_checkouts_copy(path: str) -> bool:
            folder = Path(path).parent
            return folder.name == docs.name and Path(path).name in names and folder.resolve() != here

        return self.ingest([docs], sync=True, what="sample documents", superseded=other_checkouts_copy)

    def reindex(self, embedder: str | None, on_progress: Callable[[int, int], None] | None = None) -> int:
        store = self.open_store(embedder=embedder or self.settings.store.embedder, allow_embedder_change=True)
        return store.reindex(on_progress=on_progress)

    # -- answering --------------------------------------------------------------------------------------------

    def decoder(self, engine: "Engine") -> "SelfRagDecoder":
        """The decoder over `engine` and this session's store (the only place one is built)."""
        from selfrag_tui.selfrag.decoder import SelfRagDecoder

        return SelfRagDecoder(engine, self.retrieve, self.settings.decoding)

    def ask(
        self,
        question: str,
        *,
        history: Sequence[tuple[str, str]] = (),
        on_event: Callable[["DecoderEvent"], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> "Answer":
        """Answer one question with the settings in force now. Waits for a model that is still loading.

        Raises ModelUnavailable, DecodeCancelled (after Esc / Ctrl-C), or the decoder's and store's errors.
        """
        engine = self.wait_for_engine(cancel, question)
        self.wait_for_first_documents(cancel, question)
        settings = self.settings.decoding
        return self.decoder(engine).answer(question, history=history, on_event=on_event, cancel=cancel,
                                           settings=settings)

    # -- settings ---------------------------------------------------------------------------------------------

    def update_settings(self, updates: Mapping[str, Mapping[str, Any]], *, save: bool = True,
                        source: str = "the settings screen") -> Applied:
        """Apply `updates` (section -> field -> value) to the next question; save the changed keys to the file.

        Raises SettingsError (nothing applied) for a bad value; OSError when saving failed (applied, not saved).
        Only fields that differ are written over the configured settings, so a demo session saves its decoding
        choices without pointing the user's config at the demo model. The caller reloads the generator when
        `model_changed`.
        """
        current = self.settings.model_dump()
        changed = {
            section: diff
            for section, values in updates.items()
            if (diff := {k: v for k, v in values.items() if current.get(section, {}).get(k) != v})
        }
        new_settings = self.settings.with_updates(changed, source=source)
        model_changed = new_settings.model != self.settings.model
        new_base = self.base_settings.with_updates(changed, source=source) if save else self.base_settings
        self.settings = new_settings
        self.emit(ev.SettingsChanged(new_settings))
        path = None
        if save and changed:
            self.base_settings = new_base
            path = update_settings_file(changed)
        elif save:
            path = locations.config_file()
        return Applied(new_settings, path, model_changed)

    # -- model setup ------------------------------------------------------------------------------------------

    def model_choices(self):
        """The downloadable variants with what each needs at the configured context and whether it fits this
        machine now, and the one recommended here: `(statuses, recommendation)`."""
        from selfrag_tui.application import models

        machine = models.measure_machine()
        return models.list_variants(self.settings, machine), models.recommend(self.settings, machine)

    def use_model(self, target: str | Path, *, served_name: str | None = None) -> Applied:
        """Verify a model folder, a .gguf file, a downloaded variant or a server URL, then point the settings at
        it (saved key by key). Raises models.ModelSetupError saying what is wrong. Load it with `load_engine`."""
        from selfrag_tui.application import models

        # A user's own file is never rewritten here: a GGUF that needs re-typing is refused with the command to do it.
        result = models.use(target, served_name=served_name, retype_tokens=False, save=False)
        return self.update_settings(result.updates, source="model setup")

    def download_model(
        self,
        name: str,
        *,
        on_progress: "Callable[[Any], None] | None" = None,
        cancel: threading.Event | None = None,
    ) -> Applied:
        """Download a variant (the user asked for it: the only network access), verify it and use it.

        Raises models.HubUnreachable (naming what to copy by hand and where), models.DownloadCancelled (what
        arrived is kept; the next download resumes) or models.ModelSetupError."""
        from selfrag_tui.application import models

        result = models.download(name, on_progress=on_progress, cancel=cancel, use_it=False)
        return self.use_model(result.path)

    # -- history and export -----------------------------------------------------------------------------------

    @property
    def history(self) -> "HistoryStore":
        if self._history is None:
            from selfrag_tui.application.history import HistoryStore

            self._history = HistoryStore.open()
        return self._history

    def record_turn(self, conversation_id: int | None, answer: "Answer") -> int:
        """Save a finished turn (starting a conversation when `conversation_id` is None); its conversation id."""
        if conversation_id is None:
            conversation_id = self.history.new_conversation()
        self.history.add_turn(conversation_id, answer, settings=self.settings.decoding.model_dump())
        return conversation_id

    def conversations(self) -> list["ConversationSummary"]:
        return self.history.list_conversations()

    def load_conversation(self, conversation_id: int) -> "Conversation":
        return self.history.load(conversation_id)

    def delete_conversation(self, conversation_id: int) -> None:
        self.history.delete(conversation_id)

    def export_conversation(self, conversation_id: int) -> tuple[Path, Path]:
        from selfrag_tui.application.export import export_conversation

        return export_conversation(self.history.load(conversation_id))

    # -- the end ----------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the model this session loaded; an engine handed in by the caller stays open."""
        engine, self._engine = self._engine, None
        if engine is not None and self._owns_engine:
            engine.close()


__all__ = [
    "Applied", "ModelUnavailable", "Session", "SessionBusy", "SettingsError", "StoreUnavailable", "demo_settings",
    "model_label", "passage_from_hit", "passage_notes",
]
