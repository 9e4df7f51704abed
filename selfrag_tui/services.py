"""Wiring shared by the CLI and the app: the store, the retriever, the engine, the decoder.

Everything heavy is imported inside the functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from selfrag_tui import locations

if TYPE_CHECKING:
    from ingest.store import DocumentStore
    from ingest.types import IngestProgress, IngestReport, SearchHit
    from selfrag_tui.engines.base import Engine
    from selfrag_tui.selfrag.decoder import SelfRagDecoder
    from selfrag_tui.selfrag.types import Passage
    from selfrag_tui.settings import Settings


def demo_settings(settings: "Settings") -> "Settings":
    """The same settings pointed at the bundled tiny model and the sample_docs store."""
    data = settings.model_dump()
    data["model"].update(engine="transformers", model=str(locations.demo_model_path()), device="cpu", dtype="float32")
    data["store"]["path"] = str(locations.demo_store_path())
    # The demo model memorises single questions; a transcript in the prompt only confuses it (see its README).
    data["decoding"]["history_token_budget"] = 0
    from selfrag_tui.settings import Settings

    return Settings.model_validate(data)


def open_store(
    settings: "Settings", *, embedder: str | None = None, allow_embedder_change: bool = False
) -> "DocumentStore":
    """The store named by `settings.store` (its embedder overridable, e.g. by `reindex --embedder`)."""
    from ingest.store import DocumentStore

    return DocumentStore.open(
        settings.store_path,
        embedder=embedder or settings.store.embedder,
        vector_index_threshold=settings.store.vector_index_threshold,
        embed_batch_size=settings.store.embed_batch_size,
        allow_embedder_change=allow_embedder_change,
    )


def ingest(
    store: "DocumentStore",
    paths,
    settings: "Settings",
    *,
    sync: bool = False,
    include: list[str] | None = None,
    exclude: list[str] | None = None,
    password: str | None = None,
    on_progress: Callable[["IngestProgress"], None] | None = None,
    cancel=None,
) -> "IngestReport":
    """`ingest_paths` with the chunking and file rules of `settings.ingest` (patterns overridable)."""
    from ingest.pipeline import ingest_paths

    return ingest_paths(
        store,
        paths,
        sync=sync,
        include=settings.ingest.include if include is None else include,
        exclude=settings.ingest.exclude if exclude is None else exclude,
        password=password,
        chunk_words=settings.ingest.chunk_words,
        overlap_words=settings.ingest.chunk_overlap_words,
        max_file_mb=settings.ingest.max_file_mb,
        on_progress=on_progress,
        cancel=cancel,
    )


def ensure_demo_store(
    settings: "Settings", on_progress: Callable[["IngestProgress"], None] | None = None
) -> "DocumentStore":
    """Open the demo store, ingesting sample_docs/ when it is empty or out of date (unchanged files are skipped)."""
    store = open_store(settings)
    docs = locations.sample_docs_path()
    if not docs.is_dir():
        raise FileNotFoundError(
            f"the sample documents folder {docs} is missing; the demo needs a source checkout of selfrag-chat"
        )
    ingest(store, [docs], settings, sync=True, on_progress=on_progress)
    return store


def passage_from_hit(hit: "SearchHit") -> "Passage":
    from selfrag_tui.selfrag.types import Passage

    return Passage(
        id=hit.chunk_id,
        title=hit.title,
        text=hit.text,
        source=hit.path,
        doc_title=hit.doc_title,
        page_start=hit.page_start,
        page_end=hit.page_end,
        heading=hit.heading,
        score=hit.score,
    )


def make_retriever(store: "DocumentStore", mode: str = "hybrid") -> Callable[[str, int], list["Passage"]]:
    def retrieve(query: str, k: int) -> list["Passage"]:
        return [passage_from_hit(hit) for hit in store.search(query, k=k, mode=mode)]

    return retrieve


def load_engine(settings: "Settings") -> "Engine":
    from selfrag_tui.engines.loader import load_engine as _load

    return _load(settings.model)


def build_decoder(settings: "Settings", engine: "Engine", store: "DocumentStore") -> "SelfRagDecoder":
    from selfrag_tui.selfrag.decoder import SelfRagDecoder

    return SelfRagDecoder(engine, make_retriever(store, settings.store.search_mode), settings.decode_settings())
