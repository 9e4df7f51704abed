"""The document store: LanceDB tables `documents`, `chunks` and `meta` in one folder.

Consistency rules (a reader never sees half a document; a killed writer leaves the previous state):
- A document's chunks are replaced by ONE `merge_insert` commit that inserts the new chunks and deletes the old
  ones of that document (`when_not_matched_by_source_delete`), so readers see the old set or the new set.
- The `documents` row is written after its chunks. A crash in between leaves the old content hash, so the next
  ingest redoes the document; for a new document it leaves chunks without a row, removed on the next open.
- Removal deletes chunks first, then the row. A crash in between leaves a row whose chunks are gone; the next
  open finishes the removal.
- Re-indexing writes a new chunks table and flips the `meta` pointer to it in one commit.
Writers (ingest, rm, reindex) hold an exclusive file lock on the store, so two processes never write at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Callable, Iterator, Sequence

from ingest.chunking import Chunk
from ingest.embedding import DEFAULT_EMBEDDER, Embedder, canonical_name
from ingest.errors import EmbedderMismatch, StoreError, StoreLocked
from ingest.types import DocumentRecord, SearchHit, StoreHealth, StoreProblem

DOCUMENTS = "documents"
META = "meta"
CHUNKS_PREFIX = "chunks"
SCHEMA_VERSION = "1"
FTS_TOKENIZER = "icu"
"""Unicode word boundaries (ICU): splits Chinese, Japanese and Korean into words, which the "simple" splitter
(whitespace and punctuation) leaves as one token per sentence, so a CJK phrase is found by keyword search."""
LOCK_FILE = ".write.lock"
LOCK_OWNER_FILE = ".write.owner"
DEFAULT_LOCK_WAIT_S = 600.0
"""How long a second writer waits for the first before giving up with `StoreLocked`."""

_HIT_COLUMNS = ["chunk_id", "doc_id", "path", "doc_title", "title", "text", "ordinal", "page_start", "page_end",
                "heading"]


@dataclass
class DocumentWrite:
    """One document's new state, written by `DocumentStore.commit`. `chunks`/`vectors` are None for a failure,
    which keeps any previous version of the document searchable."""

    path: str
    title: str
    content_hash: str
    size: int
    mtime: float
    kind: str = ""
    pages: int = 0
    status: str = "ok"
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    chunking: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    """Note properties (front matter, `key:: value` lines)."""
    chunks: list[Chunk] | None = None
    vectors: object | None = None


def doc_id_for(path: str | Path) -> str:
    """Stable id of a document: derived from its absolute path, so re-ingesting the same file updates it.
    Never raises: a link that loops or dangles keeps its own absolute path (its failure is recorded under it)."""
    import hashlib

    real = os.path.realpath(os.path.expanduser(os.fspath(path)))
    return hashlib.sha1(real.encode("utf-8", errors="surrogateescape")).hexdigest()[:16]


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _command_line() -> str:
    import sys

    args = [Path(sys.argv[0]).name if sys.argv else "python"] + sys.argv[1:4]
    return " ".join(args)[:120]


def _json_dict(text: str | None) -> dict[str, str]:
    try:
        value = json.loads(text) if text else {}
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _in_list(column: str, values: Sequence[str]) -> str:
    return f"{column} IN ({', '.join(_sql_str(v) for v in values)})"


class DocumentStore:
    """Documents and their embedded passages in an embedded LanceDB folder; search by vector, text or both."""

    def __init__(self, path: Path, db, *, embedder: str, vector_index_threshold: int, embed_batch_size: int,
                 allow_embedder_change: bool, lock_wait_s: float = DEFAULT_LOCK_WAIT_S) -> None:
        self.path = path
        self.lock_wait_s = lock_wait_s
        self._db = db
        self.embedder_name = canonical_name(embedder)
        self.vector_index_threshold = vector_index_threshold
        self.embed_batch_size = embed_batch_size
        self._embedder: Embedder | None = None
        self._embedder_lock = threading.Lock()
        self._reranker = None
        self._write_mutex = threading.RLock()
        self._write_depth = 0
        self._lock_file = None
        self._documents_table = self._open_or_create_documents()
        self._meta_table = self._open_or_create_meta()
        self._meta = self._read_meta()
        self._chunks_table = None
        self._check_embedder(allow_embedder_change)

    # --- opening -------------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, *, embedder: str = DEFAULT_EMBEDDER, vector_index_threshold: int = 20_000,
             embed_batch_size: int = 32, allow_embedder_change: bool = False,
             lock_wait_s: float = DEFAULT_LOCK_WAIT_S) -> "DocumentStore":
        """Open (creating when missing) the store at `path`. Raises `EmbedderMismatch` when the store's vectors
        come from another embedding model, unless `allow_embedder_change` (what `reindex` uses)."""
        # LanceDB's Rust core logs warnings (e.g. "creating dataset") to stderr; only errors concern users.
        os.environ.setdefault("LANCE_LOG", "error")
        import lancedb

        path = Path(path).expanduser()
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"Cannot create the store folder {path}: {exc.strerror or exc}. Set store.path "
                             f"(or --store) to a writable folder.") from None
        # Interval 0: every read sees the latest commit, also commits made by another process (a CLI ingest
        # while the app is open).
        db = lancedb.connect(str(path), read_consistency_interval=timedelta(0))
        store = cls(path, db, embedder=embedder, vector_index_threshold=vector_index_threshold,
                    embed_batch_size=embed_batch_size, allow_embedder_change=allow_embedder_change,
                    lock_wait_s=lock_wait_s)
        store.recover()
        return store

    def _table_names(self) -> set[str]:
        result = self._db.list_tables()
        names = getattr(result, "tables", result)
        return set(names)

    def _open_or_create_documents(self):
        import pyarrow as pa

        if DOCUMENTS in self._table_names():
            table = self._db.open_table(DOCUMENTS)
            if "chunking" not in table.schema.names:
                # A store from before chunking recipes were recorded: an empty recipe re-chunks each file once.
                table.add_columns({"chunking": "''"})
            if "metadata" not in table.schema.names:
                table.add_columns({"metadata": "CAST(NULL AS STRING)"})
            return table
        schema = pa.schema([
            pa.field("doc_id", pa.string(), nullable=False),
            pa.field("path", pa.string(), nullable=False),
            pa.field("title", pa.string()),
            pa.field("content_hash", pa.string()),
            pa.field("size", pa.int64()),
            pa.field("mtime", pa.float64()),
            pa.field("kind", pa.string()),
            pa.field("pages", pa.int32()),
            pa.field("chunks", pa.int32()),
            pa.field("status", pa.string()),
            pa.field("error", pa.string()),
            pa.field("warnings", pa.string()),
            pa.field("embedder", pa.string()),
            pa.field("ingested_at", pa.float64()),
            pa.field("generation", pa.string()),
            pa.field("chunking", pa.string()),
            pa.field("metadata", pa.string()),
        ])
        try:
            return self._db.create_table(DOCUMENTS, schema=schema)
        except ValueError:  # created meanwhile by another process
            return self._db.open_table(DOCUMENTS)

    def _open_or_create_meta(self):
        import pyarrow as pa

        if META in self._table_names():
            return self._db.open_table(META)
        schema = pa.schema([pa.field("key", pa.string(), nullable=False), pa.field("value", pa.string())])
        try:
            return self._db.create_table(META, schema=schema)
        except ValueError:
            return self._db.open_table(META)

    def _read_meta(self) -> dict[str, str]:
        rows = self._meta_table.search().limit(None).to_arrow().to_pylist()
        return {row["key"]: row["value"] for row in rows}

    def _write_meta(self, values: dict[str, str]) -> None:
        import pyarrow as pa

        data = pa.table({"key": list(values), "value": list(values.values())})
        (self._meta_table.merge_insert("key").when_matched_update_all().when_not_matched_insert_all()
         .execute(data))
        self._meta.update(values)

    def _check_embedder(self, allow_change: bool) -> None:
        stored = self._meta.get("embedder")
        if stored is None or stored == self.embedder_name or allow_change:
            return
        if self._documents_table.count_rows() == 0:
            return  # nothing embedded yet: the new model simply takes over on the first write
        raise EmbedderMismatch(str(self.path), stored, int(self._meta.get("dimension") or 0) or None,
                               self.embedder_name)

    @property
    def stored_embedder(self) -> str | None:
        """The embedding model the store's vectors come from (None for a store never written to)."""
        return self._meta.get("embedder")

    @property
    def embedder(self) -> Embedder:
        """The embedding model, loaded on first use (the import alone takes seconds)."""
        with self._embedder_lock:
            if self._embedder is None:
                embedder = Embedder.load(self.embedder_name)
                stored_dim = int(self._meta.get("dimension") or 0)
                if (stored_dim and stored_dim != embedder.dimension and self._meta.get("embedder") ==
                        self.embedder_name and self.count_chunks() > 0):
                    raise EmbedderMismatch(str(self.path), f"{self._meta['embedder']}", stored_dim,
                                           f"{self.embedder_name} ({embedder.dimension}-d)")
                self._embedder = embedder
            return self._embedder

    @property
    def embedder_loaded(self) -> bool:
        return self._embedder is not None

    def use_embedder(self, embedder: Embedder) -> None:
        """Share an already loaded model (tests and the app load it once); it must be the configured one."""
        if embedder.name != self.embedder_name:
            raise StoreError(f"embedder '{embedder.name}' given to a store configured for '{self.embedder_name}'")
        with self._embedder_lock:
            self._embedder = embedder
            self._reranker = None

    def sentence_reranker(self):
        """The store's `ingest.retrieval.SentenceReranker` (its sentence vectors cached across searches)."""
        from ingest.retrieval import SentenceReranker

        embedder = self.embedder
        with self._embedder_lock:
            if self._reranker is None or self._reranker.embedder is not embedder:
                self._reranker = SentenceReranker(embedder)
            return self._reranker

    # --- chunks table ------------------------------------------------------------------------------------------

    def _chunks(self, create_dim: int | None = None):
        """The live chunks table, or None when nothing was ever written (then nothing is searchable)."""
        if self._chunks_table is not None:
            return self._chunks_table
        name = self._meta.get("chunks_table")
        if name is None:
            self._meta = self._read_meta()
            name = self._meta.get("chunks_table")
        if name is not None and name in self._table_names():
            self._chunks_table = self._db.open_table(name)
            return self._chunks_table
        if create_dim is None:
            return None
        name = CHUNKS_PREFIX if CHUNKS_PREFIX not in self._table_names() else f"{CHUNKS_PREFIX}_{uuid.uuid4().hex[:8]}"
        table = self._create_chunks_table(name, create_dim)
        self._write_meta({"chunks_table": name, "embedder": self.embedder_name, "dimension": str(create_dim),
                          "schema_version": SCHEMA_VERSION})
        self._chunks_table = table
        return table

    def _create_chunks_table(self, name: str, dim: int):
        import pyarrow as pa
        from lancedb.index import FTS

        schema = pa.schema([
            pa.field("chunk_id", pa.string(), nullable=False),
            pa.field("doc_id", pa.string(), nullable=False),
            pa.field("generation", pa.string()),
            pa.field("ordinal", pa.int32()),
            pa.field("path", pa.string()),
            pa.field("doc_title", pa.string()),
            pa.field("title", pa.string()),
            pa.field("heading", pa.string()),
            pa.field("page_start", pa.int32()),
            pa.field("page_end", pa.int32()),
            pa.field("text", pa.string()),
            pa.field("fts_text", pa.string()),
            pa.field("vector", pa.list_(pa.float32(), dim)),
        ])
        table = self._db.create_table(name, schema=schema)
        # Full text over title + text: a section heading's words find its passages too.
        table.create_index("fts_text", config=FTS(base_tokenizer=FTS_TOKENIZER))
        return table

    @staticmethod
    def _fts_tokenizer(table) -> str | None:
        """The word splitter of the table's full-text index (None without an index)."""
        for index in table.list_indices():
            if "fts_text" in index.columns and str(index.index_type).upper() == "FTS":
                return str((index.index_details or {}).get("base_tokenizer") or "simple")
        return None

    def _chunk_rows(self, doc_id: str, path: str, doc_title: str, generation: str, chunks: Sequence[Chunk],
                    vectors) -> dict[str, list]:
        return {
            "chunk_id": [f"{doc_id}-{generation}-{c.ordinal}" for c in chunks],
            "doc_id": [doc_id] * len(chunks),
            "generation": [generation] * len(chunks),
            "ordinal": [c.ordinal for c in chunks],
            "path": [path] * len(chunks),
            "doc_title": [doc_title] * len(chunks),
            "title": [c.title for c in chunks],
            "heading": [c.heading for c in chunks],
            "page_start": [c.page_start for c in chunks],
            "page_end": [c.page_end for c in chunks],
            "text": [c.text for c in chunks],
            "fts_text": [c.embedding_text() for c in chunks],
            "vector": list(vectors),
        }

    # --- writing -----------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def write_lock(self, *, wait_s: float | None = None,
                   on_wait: Callable[[str], None] | None = None) -> Iterator[None]:
        """Exclusive right to write, across threads and processes; the OS drops it if the process dies.

        A second writer waits (up to `wait_s`, default `lock_wait_s`) instead of failing: an ingest started in
        the app while the CLI ingests simply queues. `on_wait` hears, once, who holds the lock, so the waiting
        writer can say why nothing happens yet. Past the limit: `StoreLocked` naming the holder."""
        with self._write_mutex:
            if self._write_depth == 0:
                self._lock_file = self._acquire_file_lock(self.lock_wait_s if wait_s is None else wait_s, on_wait)
            self._write_depth += 1
            try:
                yield
            finally:
                self._write_depth -= 1
                if self._write_depth == 0 and self._lock_file is not None:
                    with contextlib.suppress(OSError):
                        (self.path / LOCK_OWNER_FILE).unlink()
                    self._lock_file.release()
                    self._lock_file = None

    def _acquire_file_lock(self, wait_s: float, on_wait: Callable[[str], None] | None):
        from filelock import FileLock, Timeout

        lock = FileLock(str(self.path / LOCK_FILE), thread_local=False, preserve_lock_file=True)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            holder = self.lock_holder()
            if wait_s <= 0:
                raise StoreLocked(self._locked_message(holder, waited=None)) from None
            if on_wait is not None:
                on_wait(f"waiting for {holder or 'another selfrag-chat process'} to finish writing to the store "
                        f"(up to {_duration(wait_s)})")
            try:
                lock.acquire(timeout=wait_s, poll_interval=0.1)
            except Timeout:
                raise StoreLocked(self._locked_message(self.lock_holder() or holder, waited=wait_s)) from None
        try:
            owner = self.path / LOCK_OWNER_FILE
            owner.write_text(json.dumps({"pid": os.getpid(), "command": _command_line(), "since": time.time()}),
                             encoding="utf-8")
        except OSError:
            pass  # the holder's description is a courtesy; the lock itself is what matters
        return lock

    def lock_holder(self) -> str | None:
        """Who writes to the store now, in words ("pid 4242 (selfrag-chat ingest ~/papers) since 09:12"), from
        the note the holder left; None when nobody holds the lock or the note is unreadable."""
        try:
            info = json.loads((self.path / LOCK_OWNER_FILE).read_text(encoding="utf-8"))
            since = time.strftime("%H:%M:%S", time.localtime(float(info["since"])))
            return f"pid {int(info['pid'])} ({info.get('command') or 'selfrag-chat'}) since {since}"
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _locked_message(self, holder: str | None, waited: float | None) -> str:
        who = holder or "another selfrag-chat process"
        after = f" after waiting {_duration(waited)}" if waited else ""
        return (f"The store at {self.path} is still being written by {who} (an ingest, rm or reindex){after}. "
                f"Wait for it to finish, then run the command again.")

    def recover(self) -> None:
        """Finish or undo what a killed writer left half done (see the module docstring). Skipped while another
        process writes, since its in-flight state is not a leftover."""
        try:
            lock = self.write_lock(wait_s=0)
            lock.__enter__()
        except StoreLocked:
            return
        try:
            referenced = self._meta.get("chunks_table")
            for name in self._table_names():
                if name.startswith(CHUNKS_PREFIX) and name != referenced:
                    self._db.drop_table(name)  # a re-index that never flipped the pointer
            table = self._chunks()
            if table is None:
                return
            chunk_doc_ids = set(table.search().select(["doc_id"]).limit(None).to_arrow()["doc_id"].to_pylist())
            rows = self._documents_table.search().select(["doc_id", "chunks"]).limit(None).to_arrow().to_pylist()
            known = {row["doc_id"] for row in rows}
            orphans = sorted(chunk_doc_ids - known)
            if orphans:
                table.delete(_in_list("doc_id", orphans))
            half_removed = [row["doc_id"] for row in rows if (row["chunks"] or 0) > 0 and
                            row["doc_id"] not in chunk_doc_ids]
            if half_removed:
                self._documents_table.delete(_in_list("doc_id", half_removed))
        finally:
            lock.__exit__(None, None, None)

    def commit(self, writes: Sequence[DocumentWrite]) -> None:
        """Write a group of documents: their chunks in one commit, then their rows in one commit."""
        import pyarrow as pa

        if not writes:
            return
        now = time.time()
        with self.write_lock():
            existing = {r.doc_id: r for r in self._records(_in_list("doc_id", [doc_id_for(w.path) for w in writes]))}
            rows: list[dict] = []
            replaced_ids: list[str] = []
            columns: dict[str, list] | None = None
            for write in writes:
                doc_id = doc_id_for(write.path)
                previous = existing.get(doc_id)
                if write.chunks is not None:
                    generation = uuid.uuid4().hex[:12]
                    replaced_ids.append(doc_id)
                    part = self._chunk_rows(doc_id, write.path, write.title, generation, write.chunks, write.vectors)
                    if columns is None:
                        columns = part
                    else:
                        for key, values in part.items():
                            columns[key].extend(values)
                    chunk_count, pages, title, content_hash = len(write.chunks), write.pages, write.title, write.content_hash
                    chunking = write.chunking
                elif previous is not None and previous.chunks > 0:
                    # A failed re-read keeps the previous version searchable; the row says why it is stale.
                    generation = self._generation_of(doc_id)
                    chunk_count, pages, title = previous.chunks, previous.pages, previous.title
                    content_hash, chunking = write.content_hash, previous.chunking
                    if "stays searchable" not in (write.error or ""):
                        write.error = f"{write.error} (the previously ingested version stays searchable)"
                else:
                    generation, chunk_count, pages, title, content_hash = "", 0, write.pages, write.title, write.content_hash
                    chunking = write.chunking  # for a failure: the bytes and program it failed under
                rows.append({
                    "doc_id": doc_id, "path": write.path, "title": title, "content_hash": content_hash,
                    "size": write.size, "mtime": write.mtime, "kind": write.kind, "pages": pages,
                    "chunks": chunk_count, "status": write.status, "error": write.error,
                    "warnings": json.dumps(write.warnings) if write.warnings else None,
                    "embedder": self.embedder_name if write.chunks is not None else (
                        previous.embedder if previous else ""),
                    "ingested_at": now, "generation": generation, "chunking": chunking,
                    "metadata": json.dumps(write.metadata, ensure_ascii=False) if write.metadata else (
                        json.dumps(dict(previous.metadata), ensure_ascii=False)
                        if previous is not None and previous.metadata and write.chunks is None else None),
                })
            if columns is not None and replaced_ids:
                dim = len(columns["vector"][0]) if columns["vector"] else self.embedder.dimension
                table = self._chunks(create_dim=dim)
                data = pa.table(columns, schema=table.schema)
                (table.merge_insert("chunk_id").when_matched_update_all().when_not_matched_insert_all()
                 .when_not_matched_by_source_delete(_in_list("doc_id", replaced_ids)).execute(data))
            elif replaced_ids:  # documents whose new version has no passages at all
                table = self._chunks()
                if table is not None:
                    table.delete(_in_list("doc_id", replaced_ids))
            data = pa.table({k: [r[k] for r in rows] for k in rows[0]}, schema=self._documents_table.schema)
            (self._documents_table.merge_insert("doc_id").when_matched_update_all().when_not_matched_insert_all()
             .execute(data))

    def _generation_of(self, doc_id: str) -> str:
        rows = self._documents_table.search().where(f"doc_id = {_sql_str(doc_id)}").select(["generation"]).limit(1)
        found = rows.to_arrow().to_pylist()
        return (found[0]["generation"] or "") if found else ""

    def remove(self, docs: Sequence[str]) -> list[str]:
        """Remove documents given by path or id; returns the paths removed. Unknown names are ignored (the
        caller compares the result with what it asked for)."""
        wanted = self._resolve(docs)
        if not wanted:
            return []
        ids = [r.doc_id for r in wanted]
        with self.write_lock():
            table = self._chunks()
            if table is not None:
                table.delete(_in_list("doc_id", ids))  # chunks first: a crash then leaves no searchable leftovers
            self._documents_table.delete(_in_list("doc_id", ids))
        return [r.path for r in wanted]

    def _resolve(self, docs: Sequence[str]) -> list[DocumentRecord]:
        records = self.documents()
        by_id = {r.doc_id: r for r in records}
        by_path = {r.path: r for r in records}
        found: dict[str, DocumentRecord] = {}
        for name in docs:
            record = by_id.get(name) or by_path.get(name)
            if record is None:
                record = by_path.get(str(Path(name).expanduser().resolve())) or by_id.get(doc_id_for(name))
            if record is None and len(name) >= 6:  # an id prefix, as `docs` shows them
                matches = [r for doc_id, r in by_id.items() if doc_id.startswith(name)]
                record = matches[0] if len(matches) == 1 else None
            if record is not None:
                found[record.doc_id] = record
        return list(found.values())

    def resolve_documents(self, docs: Sequence[str]) -> tuple[list[DocumentRecord], list[str]]:
        """(records found, names that match no document) for user-given paths or ids."""
        found, missing = [], []
        for name in docs:
            match = self._resolve([name])
            (found.extend(match) if match else missing.append(name))
        return found, missing

    def optimize(self, *, on_phase: Callable[[str], None] | None = None) -> None:
        """After a batch of writes: build the vector index once the store is big enough, fold new rows into the
        indexes, compact small files and drop old table versions."""
        with self.write_lock():
            table = self._chunks()
            if table is not None:
                if self.count_chunks() >= self.vector_index_threshold and not self._has_vector_index(table):
                    if on_phase:
                        on_phase("indexing")
                    self.build_vector_index()
                if self._fts_tokenizer(table) not in (None, FTS_TOKENIZER):
                    # A store from before CJK word splitting: rebuild its text index once (no re-embedding).
                    if on_phase:
                        on_phase("indexing")
                    from lancedb.index import FTS

                    table.create_index("fts_text", config=FTS(base_tokenizer=FTS_TOKENIZER), replace=True)
                if on_phase:
                    on_phase("optimizing")
                table.optimize(cleanup_older_than=timedelta(minutes=1))
            self._documents_table.optimize(cleanup_older_than=timedelta(minutes=1))
            self._meta_table.optimize(cleanup_older_than=timedelta(minutes=1))

    @staticmethod
    def _has_vector_index(table) -> bool:
        return any("vector" in index.columns for index in table.list_indices())

    def build_vector_index(self) -> None:
        """An approximate (IVF-HNSW with scalar quantisation) index on the vectors: brute force costs ~300 ms per
        query at 100k passages on two cores, the index ~10 ms."""
        from lancedb.index import IvfHnswSq

        table = self._chunks()
        if table is None:
            return
        with self.write_lock():
            table.create_index("vector", config=IvfHnswSq(distance_type="cosine"), replace=True)

    # --- reading -----------------------------------------------------------------------------------------------

    def _records(self, where: str | None = None) -> list[DocumentRecord]:
        query = self._documents_table.search()
        if where:
            query = query.where(where)
        return [self._record(row) for row in query.limit(None).to_arrow().to_pylist()]

    @staticmethod
    def _record(row: dict) -> DocumentRecord:
        return DocumentRecord(
            doc_id=row["doc_id"], path=row["path"], title=row["title"] or "", content_hash=row["content_hash"] or "",
            size=int(row["size"] or 0), mtime=float(row["mtime"] or 0.0), pages=int(row["pages"] or 0),
            chunks=int(row["chunks"] or 0), status=row["status"] or "failed", error=row["error"],
            embedder=row["embedder"] or "", ingested_at=float(row["ingested_at"] or 0.0), kind=row["kind"] or "",
            warnings=tuple(json.loads(row["warnings"])) if row["warnings"] else (),
            chunking=row.get("chunking") or "",
            metadata=_json_dict(row.get("metadata")),
        )

    def documents(self) -> list[DocumentRecord]:
        """Every document, failed ones included, sorted by path."""
        return sorted(self._records(), key=lambda r: r.path)

    def document(self, doc: str) -> DocumentRecord | None:
        found = self._resolve([doc])
        return found[0] if found else None

    def count_chunks(self) -> int:
        table = self._chunks()
        return table.count_rows() if table is not None else 0

    def search(self, query: str, *, k: int = 5, mode: str = "hybrid",
               documents: Sequence[str] | None = None, rerank: bool = False) -> list[SearchHit]:
        """The `k` best passages for `query`. `vector`: cosine similarity of embeddings (finds paraphrases);
        `fts`: BM25 over words (finds exact names, codes and numbers); `hybrid`: both, fused by standardised
        score and preferring the document of a period the question names (`ingest.retrieval`).
        `documents` (paths or ids) restricts the search to those documents. `rerank` re-scores the best few
        (any mode) by the sentence that matches the query best (`ingest.retrieval.SentenceReranker`)."""
        if rerank:
            from ingest.retrieval import RERANK_CANDIDATES

            hits = self.search(query, k=max(k, RERANK_CANDIDATES), mode=mode, documents=documents)
            return self.sentence_reranker().rerank(query, hits, k)
        if mode not in ("hybrid", "vector", "fts"):
            raise StoreError(f"unknown search mode '{mode}': use hybrid, vector or fts")
        table = self._chunks()
        if table is None or not query.strip() or k <= 0:
            return []
        where = None
        if documents:
            found = self._resolve(documents)
            if not found:
                return []
            where = _in_list("doc_id", [r.doc_id for r in found])
        if mode == "vector":
            return [self._hit(row, row["_score"]) for row in self._vector_rows(table, query, k, where)]
        if mode == "fts":
            return [self._hit(row, row["_score"]) for row in self._fts_rows(table, query, k, where)]
        from ingest.retrieval import search as fused_search

        return fused_search(self, query, k=k, documents=documents)

    def _vector_rows(self, table, query: str, limit: int, where: str | None) -> list[dict]:
        vector = self.embedder.embed_query(query)
        search = table.search(vector, vector_column_name="vector").distance_type("cosine").limit(limit)
        if where:
            search = search.where(where, prefilter=True)
        rows = search.select(_HIT_COLUMNS + ["_distance"]).to_arrow().to_pylist()
        for row in rows:
            row["_score"] = 1.0 - float(row["_distance"])
        return rows

    def _fts_rows(self, table, query: str, limit: int, where: str | None) -> list[dict]:
        search = table.search(query, query_type="fts", fts_columns="fts_text").limit(limit)
        if where:
            search = search.where(where, prefilter=True)
        try:
            return search.select(_HIT_COLUMNS + ["_score"]).to_arrow().to_pylist()
        except Exception as exc:  # a query the text index cannot parse must not break hybrid search
            if "index" in str(exc).lower() and "not found" in str(exc).lower():
                raise StoreError(f"the full-text index of {self.path} is missing; run `selfrag-chat reindex`") from exc
            return []

    @staticmethod
    def _hit(row: dict, score: float) -> SearchHit:
        return SearchHit(
            chunk_id=row["chunk_id"], doc_id=row["doc_id"], path=row["path"], doc_title=row["doc_title"] or "",
            title=row["title"] or "", text=row["text"], ordinal=int(row["ordinal"]), page_start=row["page_start"],
            page_end=row["page_end"], heading=row["heading"], score=float(score),
        )

    def neighbours(self, chunk_id: str, window: int = 1) -> list[SearchHit]:
        """The chunk and up to `window` chunks before and after it in its document, in reading order."""
        table = self._chunks()
        if table is None:
            return []
        found = table.search().where(f"chunk_id = {_sql_str(chunk_id)}").select(["doc_id", "ordinal"]).limit(1)
        found = found.to_arrow().to_pylist()
        if not found:
            return []
        doc_id, ordinal = found[0]["doc_id"], found[0]["ordinal"]
        rows = (table.search()
                .where(f"doc_id = {_sql_str(doc_id)} AND ordinal >= {ordinal - window} AND ordinal <= {ordinal + window}")
                .select(_HIT_COLUMNS).limit(None).to_arrow().to_pylist())
        return [self._hit(row, 0.0) for row in sorted(rows, key=lambda r: r["ordinal"])]

    def first_passages(self) -> list[tuple[str, str, str]]:
        """(doc_id, path, text of its first passage) of every document, read in one scan (a document's cover
        page names what it is and the period it covers)."""
        table = self._chunks()
        if table is None:
            return []
        rows = table.search().where("ordinal = 0").select(["doc_id", "path", "text"]).limit(None).to_arrow()
        return [(r["doc_id"], r["path"], r["text"] or "") for r in rows.to_pylist()]

    def chunks_of(self, doc: str) -> list[SearchHit]:
        """All passages of one document (path or id) in reading order."""
        record = self.document(doc)
        table = self._chunks()
        if record is None or table is None:
            return []
        rows = (table.search().where(f"doc_id = {_sql_str(record.doc_id)}").select(_HIT_COLUMNS).limit(None)
                .to_arrow().to_pylist())
        return [self._hit(row, 0.0) for row in sorted(rows, key=lambda r: r["ordinal"])]

    # --- re-embedding --------------------------------------------------------------------------------------------

    def reindex(self, *, on_progress: Callable[[int, int], None] | None = None,
                cancel: threading.Event | None = None) -> int:
        """Re-embed every passage with the configured embedding model into a new chunks table, then switch to it
        in one commit. Files are not re-read: the stored passage text is the input. Returns passages embedded."""
        import pyarrow as pa

        with self.write_lock():
            old = self._chunks()
            embedder = self.embedder
            name = f"{CHUNKS_PREFIX}_{uuid.uuid4().hex[:8]}"
            new = self._create_chunks_table(name, embedder.dimension)
            total = old.count_rows() if old is not None else 0
            done = 0
            if old is not None and total:
                columns = [c for c in old.schema.names if c != "vector"]
                batch_rows = 1024
                for batch in old.search().select(columns).limit(None).to_batches(batch_rows):
                    part = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
                    rows = part.to_pylist()
                    if cancel is not None and cancel.is_set():
                        self._db.drop_table(name)
                        return done
                    texts = [f"{r['title']}\n{r['text']}" for r in rows]
                    vectors = embedder.embed(texts, batch_size=self.embed_batch_size, cancel=cancel)
                    if len(vectors) != len(rows):
                        self._db.drop_table(name)
                        return done
                    for row, vector in zip(rows, vectors):
                        row["vector"] = vector
                    new.add(pa.Table.from_pylist(rows, schema=new.schema))
                    done += len(rows)
                    if on_progress:
                        on_progress(done, total)
            self._write_meta({"chunks_table": name, "embedder": embedder.name, "dimension": str(embedder.dimension),
                              "schema_version": SCHEMA_VERSION})
            self._chunks_table = new
            # Document rows record which model embedded them.
            ok_ids = [r.doc_id for r in self._records("status = 'ok'")]
            if ok_ids:
                self._documents_table.update(where=_in_list("doc_id", ok_ids), values={"embedder": embedder.name})
            if old is not None:
                self._db.drop_table(old.name)
            if new.count_rows() >= self.vector_index_threshold:
                self.build_vector_index()
            new.optimize()
            return done

    def health(self) -> StoreHealth:
        """What `doctor` reports: tables, counts, failures, embedder, indexes, versions, and each problem found
        with the command that fixes it. Reads only; safe while another process writes."""
        tables = tuple(sorted(self._table_names()))
        records = self.documents()
        ok = [r for r in records if r.status == "ok"]
        failed = tuple((r.path, r.error or "failed") for r in records if r.status == "failed")
        partial = tuple((r.path, "; ".join(r.warnings)) for r in records if r.status == "ok" and r.warnings)
        self._meta = self._read_meta()
        table = self._chunks()
        chunks = table.count_rows() if table is not None else 0
        indices = list(table.list_indices()) if table is not None else []
        vector_index = any("vector" in i.columns for i in indices)
        fts_index = any("fts_text" in i.columns and str(i.index_type).upper() == "FTS" for i in indices)
        versions = len(table.list_versions()) if table is not None else 0
        stored = self.stored_embedder
        dimension = int(self._meta.get("dimension") or 0) or None
        needed = chunks >= self.vector_index_threshold
        problems: list[StoreProblem] = []
        if stored is not None and stored != self.embedder_name and ok:
            problems.append(StoreProblem(
                f"vectors come from '{stored}' but '{self.embedder_name}' is configured",
                f"set store.embedder back to '{stored}', or run `selfrag-chat reindex --embedder "
                f"{self.embedder_name}`"))
        if table is not None and not fts_index:
            problems.append(StoreProblem("the full-text index is missing: keyword and hybrid search find nothing",
                                         "run `selfrag-chat reindex`"))
        if needed and not vector_index:
            problems.append(StoreProblem(
                f"{chunks} passages and no vector index: each search scans every vector",
                "ingest again (it builds the index when the store is big enough) or run `selfrag-chat reindex`"))
        expected = sum(r.chunks for r in ok)
        if expected != chunks:
            problems.append(StoreProblem(
                f"the documents table lists {expected} passages but the chunks table holds {chunks} "
                f"(a writer was interrupted)",
                "run `selfrag-chat ingest` on the same folders again; opening the store repairs leftovers"))
        if failed:
            problems.append(StoreProblem(f"{len(failed)} document(s) failed to ingest",
                                         "see why with `selfrag-chat docs`; fix or remove the files and ingest "
                                         "again"))
        return StoreHealth(
            path=str(self.path), tables=tables, documents=len(ok), failed=len(failed), failed_docs=failed,
            partial_docs=partial, chunks=chunks, embedder_stored=stored, embedder_configured=self.embedder_name,
            dimension=dimension, vector_index=vector_index, vector_index_needed=needed,
            vector_index_threshold=self.vector_index_threshold, fts_index=fts_index, versions=versions,
            locked_by=self._holder_if_locked(), problems=tuple(problems))

    def _holder_if_locked(self) -> str | None:
        """Who holds the write lock, or None when it is free (checked without waiting)."""
        if self._write_depth:
            return f"this process (pid {os.getpid()})"
        from filelock import FileLock, Timeout

        probe = FileLock(str(self.path / LOCK_FILE), thread_local=False, preserve_lock_file=True)
        try:
            probe.acquire(timeout=0)
        except Timeout:
            return self.lock_holder() or "another process"
        probe.release()
        return None

    def stats(self) -> dict[str, object]:
        records = self.documents()
        return {
            "path": str(self.path),
            "embedder": self.stored_embedder or self.embedder_name,
            "dimension": int(self._meta.get("dimension") or 0) or None,
            "documents": sum(1 for r in records if r.status == "ok"),
            "failed": sum(1 for r in records if r.status == "failed"),
            "chunks": self.count_chunks(),
        }


__all__ = ["DocumentStore", "DocumentWrite", "doc_id_for"]
