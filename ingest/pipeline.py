"""Ingest files and folders: discover, skip unchanged (same content hash and chunking), load, chunk, embed in batches, write.

One bad file is recorded with its reason and never stops the others. Documents are written in groups: the
passages of a group are embedded together (full batches keep the model busy), then committed together, so the
cost of a LanceDB commit is paid once per few hundred passages rather than once per file.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ingest.chunking import Chunk, chunk_document, chunking_recipe
from ingest.errors import EmptyDocument, FileTooLarge, LoadError, StoreError
from ingest.loaders import SUPPORTED_SUFFIXES, load_file, read_bytes
from ingest.store import DocumentStore, DocumentWrite
from ingest.types import IngestProgress, IngestReport

DEFAULT_INCLUDE = ["*.pdf", "*.md", "*.markdown", "*.txt", "*.rst"]
DEFAULT_EXCLUDE = [".*", "node_modules", "__pycache__"]
GROUP_CHUNKS = 256
"""Passages embedded and committed together."""


@dataclass
class _Candidate:
    path: Path
    size: int
    mtime: float
    explicit: bool
    """Named on the command line (not found in a folder): ingested even if it matches no include pattern."""


@dataclass
class Discovery:
    files: list[_Candidate]
    missing: dict[str, str]
    """Command-line paths that do not exist (or cannot be listed) -> reason."""
    roots: list[Path]


def discover(paths: Iterable[str | Path], *, include: Sequence[str] | None = None,
             exclude: Sequence[str] | None = None) -> Discovery:
    """Files under `paths`, recursively, following symlinks without looping (each real folder is entered once),
    each real file listed once. Patterns are shell globs matched against names and folder-relative paths."""
    include = list(include) if include else DEFAULT_INCLUDE
    exclude = list(exclude) if exclude is not None else DEFAULT_EXCLUDE
    found: dict[Path, _Candidate] = {}
    missing: dict[str, str] = {}
    roots: list[Path] = []
    visited_dirs: set[tuple[int, int]] = set()

    def excluded(name: str, relative: str) -> bool:
        return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(relative, p) for p in exclude)

    def add(path: Path, explicit: bool) -> None:
        try:
            real = path.resolve(strict=True)
            info = real.stat()
        except (OSError, RuntimeError):  # a broken link, or a link loop
            real, info = path.absolute(), None
        if real in found:
            return
        found[real] = _Candidate(real, info.st_size if info else 0, info.st_mtime if info else 0.0, explicit)

    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_symlink() and not path.exists():
            missing[str(path)] = "broken symbolic link (its target does not exist)"
            continue
        if not path.exists():
            missing[str(path)] = "no such file or folder"
            continue
        if path.is_file():
            add(path, explicit=True)
            continue
        root = path.resolve()
        roots.append(root)
        for folder, dirnames, filenames in os.walk(root, followlinks=True, onerror=lambda e: missing.setdefault(
                str(e.filename), f"cannot list the folder: {e.strerror}")):
            folder_path = Path(folder)
            try:
                info = folder_path.stat()
            except OSError:
                dirnames[:] = []
                continue
            key = (info.st_dev, info.st_ino)
            if key in visited_dirs:  # a symlink loop, or a second link to a folder already walked
                dirnames[:] = []
                continue
            visited_dirs.add(key)
            relative_folder = folder_path.relative_to(root)
            dirnames[:] = sorted(d for d in dirnames if not excluded(d, str(relative_folder / d)))
            for name in sorted(filenames):
                relative = str(relative_folder / name)
                if excluded(name, relative):
                    continue
                if not any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(relative, p) for p in include):
                    continue
                add(folder_path / name, explicit=False)
    return Discovery(sorted(found.values(), key=lambda c: str(c.path)), missing, roots)


class _Progress:
    """Builds `IngestProgress` reports with an ETA from bytes processed (embedding time grows with text size)."""

    def __init__(self, total_docs: int, total_bytes: int, callback: Callable[[IngestProgress], None] | None):
        self.state = IngestProgress(documents_total=total_docs, documents_done=0)
        self.total_bytes = max(total_bytes, 1)
        self.done_bytes = 0.0
        self.started = time.monotonic()
        self.callback = callback

    def emit(self, **changes) -> None:
        for key, value in changes.items():
            setattr(self.state, key, value)
        elapsed = time.monotonic() - self.started
        if self.done_bytes > 0 and elapsed > 0.5:
            self.state.eta_seconds = max(0.0, elapsed / self.done_bytes * (self.total_bytes - self.done_bytes))
        if self.callback is not None:
            self.callback(IngestProgress(**vars(self.state)))


@dataclass
class _Pending:
    write: DocumentWrite
    chunks: list[Chunk]
    was_known: bool


def ingest_paths(store: DocumentStore, paths: Iterable[str | Path], *, sync: bool = False,
                 include: Sequence[str] | None = None, exclude: Sequence[str] | None = None,
                 password: str | None = None, chunk_words: int = 150, overlap_words: int = 30,
                 max_file_mb: float = 100.0, on_progress: Callable[[IngestProgress], None] | None = None,
                 cancel: threading.Event | None = None, group_chunks: int = GROUP_CHUNKS) -> IngestReport:
    """Bring the store up to date with `paths`. With `sync`, documents whose files are gone (or that no longer
    match the patterns under a folder given) are removed. Cancelling keeps everything committed so far."""
    report = IngestReport()
    found = discover(paths, include=include, exclude=exclude)
    report.failed.update(found.missing)
    progress = _Progress(len(found.files), sum(c.size for c in found.files), on_progress)
    progress.emit(phase="scanning")
    with store.write_lock(on_wait=lambda message: progress.emit(phase="waiting", note=message)):
        progress.emit(phase="scanning", note=None)
        known = {record.path: record for record in store.documents()}
        pending: list[_Pending] = []
        failures: list[DocumentWrite] = []
        pending_bytes = 0
        wrote_anything = False

        def flush() -> bool:
            """Embed and commit what is pending; False when cancelled midway (nothing of the group written)."""
            nonlocal pending, failures, pending_bytes, wrote_anything
            chunk_texts = [c.embedding_text() for p in pending for c in p.chunks]
            if chunk_texts:
                if not store.embedder_loaded:
                    progress.emit(phase="loading model")
                    store.embedder  # noqa: B018 - load now so the phase shown matches the wait
                progress.emit(phase="embedding")
                group_bytes, group_total, embedded = pending_bytes, len(chunk_texts), 0
                base_done = progress.done_bytes

                def on_batch(count: int) -> None:
                    nonlocal embedded
                    embedded += count
                    progress.done_bytes = base_done + group_bytes * embedded / group_total
                    progress.emit(chunks_done=progress.state.chunks_done + count)

                vectors = store.embedder.embed(chunk_texts, batch_size=store.embed_batch_size, on_batch=on_batch,
                                               cancel=cancel)
                if len(vectors) < len(chunk_texts):
                    return False
                offset = 0
                for item in pending:
                    item.write.vectors = vectors[offset:offset + len(item.chunks)]
                    offset += len(item.chunks)
            writes = [p.write for p in pending] + failures
            if writes:
                progress.emit(phase="writing")
                store.commit(writes)
                wrote_anything = True
                for item in pending:
                    (report.updated if item.was_known else report.added).append(item.write.path)
                for failure in failures:
                    report.failed[failure.path] = failure.error or "failed"
                progress.emit(documents_done=progress.state.documents_done + len(writes))
            pending, failures, pending_bytes = [], [], 0
            return True

        for candidate in found.files:
            if cancel is not None and cancel.is_set():
                report.cancelled = True
                break
            path = str(candidate.path)
            progress.emit(current_path=path, phase="reading")
            previous = known.get(path)
            outcome = _prepare(candidate, previous, password=password, chunk_words=chunk_words,
                               overlap_words=overlap_words, max_file_mb=max_file_mb)
            if outcome is None:  # unchanged
                report.unchanged.append(path)
                progress.done_bytes += candidate.size
                progress.emit(documents_done=progress.state.documents_done + 1)
                continue
            write, chunks = outcome
            if chunks is None:
                failures.append(write)
            else:
                write.chunks = chunks
                pending.append(_Pending(write, chunks, previous is not None))
                pending_bytes += candidate.size
                progress.emit(pages_done=progress.state.pages_done + write.pages)
            if sum(len(p.chunks) for p in pending) >= group_chunks or len(failures) >= 64:
                if not flush():
                    report.cancelled = True
                    break
        else:
            if not flush():
                report.cancelled = True

        if sync and not report.cancelled:
            present = {str(c.path) for c in found.files}
            gone = [record.path for record in known.values() if record.path not in present and (
                not Path(record.path).exists() or any(_is_under(Path(record.path), root) for root in found.roots))]
            if gone:
                progress.emit(phase="removing", current_path=None)
                report.removed = store.remove(gone)
                wrote_anything = True

        if wrote_anything:
            store.optimize(on_phase=lambda phase: progress.emit(phase=phase, current_path=None))
    progress.emit(phase="cancelled" if report.cancelled else "done", current_path=None, eta_seconds=0.0)
    return report


def _prepare(candidate: _Candidate, previous, *, password: str | None, chunk_words: int, overlap_words: int,
             max_file_mb: float) -> tuple[DocumentWrite, list[Chunk] | None] | None:
    """Read, hash, load and chunk one file. None when unchanged; (write, None) for a failure with its reason."""
    path = candidate.path
    write = DocumentWrite(path=str(path), title=path.stem, content_hash="", size=candidate.size,
                          mtime=candidate.mtime, kind=_kind(path))
    try:
        if candidate.size > max_file_mb * 1024 * 1024:
            raise FileTooLarge(str(path), f"file is {candidate.size / 1048576:.2f} MB, over the {max_file_mb:g} MB "
                                          f"limit (raise ingest.max_file_mb to include it)")
        if path.suffix.lower() not in SUPPORTED_SUFFIXES:
            raise LoadError(str(path), f"unsupported file type '{path.suffix}' (supported: PDF, Markdown, text)")
        data = read_bytes(path)
        write.content_hash = hashlib.sha256(data).hexdigest()
        write.size = len(data)
        write.chunking = chunking_recipe(chunk_words, overlap_words)
        if (previous is not None and previous.status == "ok" and previous.content_hash == write.content_hash
                and previous.chunking == write.chunking):
            return None
        document = load_file(path, password=password, data=data)
        chunks = chunk_document(document, chunk_words=chunk_words, overlap_words=overlap_words)
        if not chunks:
            raise EmptyDocument(str(path), "no text to index after cleaning")
    except LoadError as exc:
        write.status, write.error = "failed", exc.reason
        return write, None
    except StoreError:
        raise
    except Exception as exc:  # a loader bug on one odd file must not lose the rest of the run
        write.status, write.error = "failed", f"unexpected error while reading: {type(exc).__name__}: {exc}"
        return write, None
    write.title, write.pages, write.kind, write.warnings = document.title, document.pages, document.kind, document.warnings
    return write, chunks


def _kind(path: Path) -> str:
    suffix = path.suffix.lower()
    return "pdf" if suffix == ".pdf" else "markdown" if suffix in {".md", ".markdown", ".mdown", ".mkd"} else "text"


def _is_under(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


__all__ = ["ingest_paths", "discover", "Discovery"]
