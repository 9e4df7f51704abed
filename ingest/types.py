"""Records the store hands out. Plain dataclasses; the app maps `SearchHit` to the decoder's `Passage`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

SearchMode = Literal["hybrid", "vector", "fts"]
DocumentStatus = Literal["ok", "failed"]


@dataclass(frozen=True)
class SearchHit:
    chunk_id: str
    doc_id: str
    path: str
    doc_title: str
    title: str
    """Document title + section, for the Self-RAG prompt `"{title}\\n{text}"`."""
    text: str
    ordinal: int
    """Position of the chunk in its document (0-based), to fetch neighbours."""
    page_start: int | None
    page_end: int | None
    heading: str | None
    score: float
    """Higher is better; the meaning depends on the mode (cosine similarity, BM25, or fused RRF score)."""
    match: str | None = None
    """The passage's sentence (or line) that matches the query best, where the sentence rerank read it."""


@dataclass(frozen=True)
class DocumentRecord:
    doc_id: str
    path: str
    title: str
    content_hash: str
    size: int
    mtime: float
    pages: int
    chunks: int
    status: DocumentStatus
    error: str | None
    embedder: str
    ingested_at: float
    kind: str = ""
    """"pdf", "markdown" or "text"."""
    warnings: tuple[str, ...] = ()
    """Things the user should know although the file loaded, e.g. a fallback text encoding."""
    chunking: str = ""
    """How its passages were cut (`ingest.chunking.chunking_recipe`); a different recipe re-chunks the file."""
    metadata: dict[str, str] = field(default_factory=dict, hash=False, compare=True)
    """Note properties (YAML front matter, `key:: value` lines), kept apart from the passages."""

    @property
    def partial(self) -> bool:
        """Ingested, but some PDF pages could not be read (the warning says which and why)."""
        return self.status == "ok" and any(w.startswith("partial:") for w in self.warnings)


@dataclass
class IngestProgress:
    """Reported through the pipeline's callback; each report replaces the previous one."""

    documents_total: int
    documents_done: int
    current_path: str | None = None
    pages_done: int = 0
    chunks_done: int = 0
    eta_seconds: float | None = None
    phase: str = "scanning"
    note: str | None = None
    """A line for the user about the current phase, e.g. who holds the store while this ingest is "waiting"."""


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    """Path -> reason the user can act on."""
    skipped: dict[str, str] = field(default_factory=dict)
    """Path -> why a folder ingest left it out (not a format the loaders read, excluded, not a regular file)."""
    warnings: dict[str, list[str]] = field(default_factory=dict)
    """Path -> what to know about a file that was ingested (unreadable pages, an assumed text encoding)."""
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass(frozen=True)
class StoreProblem:
    """Something wrong with the store, and the command or setting that fixes it."""

    problem: str
    fix: str


@dataclass(frozen=True)
class StoreHealth:
    """The store's state for `doctor`: everything it needs without reaching into the store's internals."""

    path: str
    tables: tuple[str, ...]
    documents: int
    """Documents ingested (status ok)."""
    failed: int
    failed_docs: tuple[tuple[str, str], ...]
    """(path, reason) of each failed document."""
    partial_docs: tuple[tuple[str, str], ...]
    """(path, warnings) of documents that loaded with something to know (skipped pages, fallback encoding)."""
    chunks: int
    embedder_stored: str | None
    """The model the stored vectors come from; None before the first write."""
    embedder_configured: str
    dimension: int | None
    vector_index: bool
    vector_index_needed: bool
    """The store is past `vector_index_threshold` passages, where brute-force search gets slow."""
    vector_index_threshold: int
    fts_index: bool
    versions: int
    """Versions of the chunks table kept on disk (optimize drops old ones)."""
    locked_by: str | None
    """Who is writing to the store right now, or None."""
    problems: tuple[StoreProblem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems
