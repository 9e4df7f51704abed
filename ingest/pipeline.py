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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from ingest.chunking import Chunk, chunk_document, chunking_recipe, fit_to_window
from ingest.errors import EmptyDocument, FileTooLarge, LoadError, StoreError
from ingest.formats import DEFAULT_EXCLUDE, DEFAULT_INCLUDE
from ingest.loaders import SUPPORTED_SUFFIXES, load_file, looks_like_text, read_bytes
from ingest.store import DocumentStore, DocumentWrite
from ingest.types import IngestProgress, IngestReport

_LEGACY_DEFAULT_INCLUDE = ["*.pdf", "*.md", "*.markdown", "*.txt", "*.rst"]
"""The default before every readable format was included: settings that still carry it mean "the default"."""
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
    skipped: dict[str, str] = field(default_factory=dict)
    """Files and folders a folder walk left out -> why."""


def _matches(name: str, relative: str, patterns: Sequence[str]) -> bool:
    """Shell-glob match ignoring case: `*.pdf` finds `REPORT.PDF` on every system."""
    name, relative = name.lower(), relative.lower()
    return any(fnmatch.fnmatchcase(name, p.lower()) or fnmatch.fnmatchcase(relative, p.lower()) for p in patterns)


def discover(paths: Iterable[str | Path], *, include: Sequence[str] | None = None,
             exclude: Sequence[str] | None = None) -> Discovery:
    """Files under `paths`, recursively, following symlinks without looping (each real folder is entered once),
    each real file listed once. Patterns are shell globs, matched without regard to case against names and
    folder-relative paths. What a folder walk leaves out is listed in `skipped` with the reason."""
    import stat

    include = list(include) if include else list(DEFAULT_INCLUDE)
    by_default = sorted(include) in (sorted(DEFAULT_INCLUDE), sorted(_LEGACY_DEFAULT_INCLUDE))
    if by_default:
        include = list(DEFAULT_INCLUDE)
    exclude = list(exclude) if exclude is not None else DEFAULT_EXCLUDE
    found: dict[Path, _Candidate] = {}
    missing: dict[str, str] = {}
    skipped: dict[str, str] = {}
    roots: list[Path] = []
    visited_dirs: set[tuple[int, int]] = set()

    def add(path: Path, explicit: bool) -> None:
        try:
            real = Path(os.path.realpath(path))
            info = os.stat(path)
        except (OSError, RuntimeError, ValueError):  # a broken link, a link loop, a name the OS rejects
            real, info = path.absolute(), None
        if real in found:
            return
        found[real] = _Candidate(real, info.st_size if info else 0, info.st_mtime if info else 0.0, explicit)

    for raw in paths:
        try:
            path = Path(raw).expanduser()
            if path.is_symlink() and not path.exists():
                try:
                    os.stat(path)
                except OSError as exc:
                    import errno

                    missing[str(path)] = ("symbolic link loop (the link points back to itself)"
                                          if exc.errno == errno.ELOOP else
                                          "broken symbolic link (its target does not exist)")
                continue
            if not path.exists():
                missing[display_path(path)] = "no such file or folder"
                continue
            if not _valid_name(str(path.absolute())):
                missing[display_path(path)] = ("the file name is not valid UTF-8 (written by another system): "
                                               "rename it, then ingest again")
                continue
            if not path.is_dir():
                add(path, explicit=True)
                continue
            root = Path(os.path.realpath(path))
        except (OSError, ValueError) as exc:
            missing[str(raw)] = f"cannot use this path: {getattr(exc, 'strerror', None) or exc}"
            continue
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
            kept = []
            for d in sorted(dirnames):
                if _matches(d, str(relative_folder / d), exclude):
                    if not d.startswith("."):  # hidden folders (.git, .obsidian) are left out silently
                        skipped[str(folder_path / d)] = "folder excluded by ingest.exclude"
                else:
                    kept.append(d)
            dirnames[:] = kept
            for name in sorted(filenames):
                relative = str(relative_folder / name)
                file_path = folder_path / name
                if not _valid_name(str(file_path)):
                    missing[display_path(file_path)] = ("the file name is not valid UTF-8 (written by another "
                                                        "system): rename the file, then ingest again")
                    continue
                if _matches(name, relative, exclude):
                    if not name.startswith("."):
                        skipped[str(file_path)] = "excluded by ingest.exclude"
                    continue
                try:
                    mode = file_path.lstat().st_mode
                    if stat.S_ISLNK(mode):
                        mode = file_path.stat().st_mode
                except OSError:
                    mode = None  # broken or looping link: added, so its reason is recorded against it
                if mode is not None and not stat.S_ISREG(mode):
                    kind = ("a named pipe" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "not a regular file")
                    skipped[str(file_path)] = f"{kind}, not a file"
                    continue
                if not _matches(name, relative, include):
                    if by_default and not Path(name).suffix and mode is not None and _is_text_file(file_path):
                        add(file_path, explicit=False)
                        continue
                    suffix = Path(name).suffix
                    skipped[str(file_path)] = (f"not a format the loaders read ({suffix})" if by_default and suffix
                                               else "no extension and not text" if by_default
                                               else "matches no ingest.include pattern")
                    continue
                add(file_path, explicit=False)
    return Discovery(sorted(found.values(), key=lambda c: str(c.path)), missing, roots, skipped)


def _valid_name(path: str) -> bool:
    try:
        path.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def display_path(path: str | Path) -> str:
    """A path as text that can be stored and printed: bytes that are not UTF-8 show as U+FFFD."""
    return os.fsencode(path).decode("utf-8", errors="replace")


def _is_text_file(path: Path) -> bool:
    """A file without an extension (README, LICENSE, notes from some apps) that holds text."""
    try:
        with open(path, "rb", opener=lambda name, flags: os.open(name, flags | getattr(os, "O_NONBLOCK", 0))) as f:
            head = f.read(8192)
    except OSError:
        return False
    return looks_like_text(head)


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
                 cancel: threading.Event | None = None, group_chunks: int = GROUP_CHUNKS,
                 pdf_time_budget_s: float | None = None,
                 passwords: Callable[[Path], str | None] | None = None, ocr: bool = True,
                 superseded: Callable[[str], bool] | None = None) -> IngestReport:
    """Bring the store up to date with `paths`. With `sync`, documents whose files are gone (or that no longer
    match the patterns under a folder given) are removed, and so are those whose path `superseded` accepts
    (another copy of files now ingested from `paths`). Cancelling keeps everything committed so far.
    `passwords(path)` gives each encrypted PDF its own password (e.g. `PasswordBook.for_path`); without it every
    file gets `password`. With `ocr`, PDF pages without a text layer are read by OCR (progress phase "OCR", note
    "page 3/12")."""
    report = IngestReport()
    found = discover(paths, include=include, exclude=exclude)
    report.failed.update(found.missing)
    report.skipped.update(found.skipped)
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

                try:
                    vectors = store.embedder.embed(chunk_texts, batch_size=store.embed_batch_size,
                                                   on_batch=on_batch, cancel=cancel)
                except StoreError:
                    raise
                except Exception:  # one file's text upsets the model: embed file by file to find it
                    vectors = None
                if vectors is None:
                    if not _embed_each(store, pending, failures, cancel):
                        return False
                else:
                    if len(vectors) < len(chunk_texts):
                        return False
                    offset = 0
                    for item in pending:
                        item.write.vectors = vectors[offset:offset + len(item.chunks)]
                        offset += len(item.chunks)
            writes = [p.write for p in pending] + failures
            if writes:
                progress.emit(phase="writing")
                committed = _commit_each_on_error(store, writes)
                wrote_anything = True
                for item in pending:
                    if item.write.status == "ok":
                        (report.updated if item.was_known else report.added).append(item.write.path)
                        if item.write.warnings:
                            report.warnings[item.write.path] = list(item.write.warnings)
                for write in writes:
                    if write.status != "ok" or write.path not in committed:
                        report.failed[write.path] = write.error or "failed"
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
            file_password = passwords(candidate.path) if passwords is not None else password

            def ocr_progress(done: int, total: int) -> None:
                if done < total:
                    progress.emit(phase="OCR", note=f"page {done + 1}/{total}")
                else:
                    progress.emit(phase="reading", note=None)

            outcome = _prepare(candidate, previous, password=file_password, chunk_words=chunk_words,
                               overlap_words=overlap_words, max_file_mb=max_file_mb,
                               pdf_time_budget_s=pdf_time_budget_s, ocr=ocr, on_ocr_page=ocr_progress)
            if outcome is None:  # unchanged
                report.unchanged.append(path)
                progress.done_bytes += candidate.size
                progress.emit(documents_done=progress.state.documents_done + 1)
                continue
            write, chunks = outcome
            if chunks is None and write.status == "unchanged-failure":
                report.failed[path] = write.error or "failed"  # same bytes, same program: not parsed again
                progress.done_bytes += candidate.size
                progress.emit(documents_done=progress.state.documents_done + 1)
                continue
            if chunks is None:
                failures.append(write)
            else:
                if not store.embedder_loaded:
                    progress.emit(phase="loading model")
                embedder = store.embedder
                chunks = fit_to_window(chunks, embedder.count_tokens, embedder.max_tokens)
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
                not Path(record.path).exists() or any(_is_under(Path(record.path), root) for root in found.roots)
                or (superseded is not None and superseded(record.path)))]
            if gone:
                progress.emit(phase="removing", current_path=None)
                report.removed = store.remove(gone)
                wrote_anything = True

        if wrote_anything:
            store.optimize(on_phase=lambda phase: progress.emit(phase=phase, current_path=None))
    progress.emit(phase="cancelled" if report.cancelled else "done", current_path=None, eta_seconds=0.0)
    return report


def _prepare(candidate: _Candidate, previous, *, password: str | None, chunk_words: int, overlap_words: int,
             max_file_mb: float, pdf_time_budget_s: float | None = None, ocr: bool = True,
             on_ocr_page: Callable[[int, int], None] | None = None
             ) -> tuple[DocumentWrite, list[Chunk] | None] | None:
    """Read, hash, load and chunk one file. None when unchanged; (write, None) for a failure with its reason;
    a failure whose bytes and program are those of the last failed attempt comes back with status
    "unchanged-failure" and is not parsed again."""
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
        if (previous is not None and previous.status == "failed" and previous.chunks == 0
                and previous.content_hash == write.content_hash
                and previous.chunking == failure_recipe(write.chunking, ocr)
                and not (password and "password" in (previous.error or ""))):
            write.status, write.error = "unchanged-failure", previous.error
            return write, None
        document = load_file(path, password=password, data=data, time_budget_s=pdf_time_budget_s, ocr=ocr,
                             on_ocr_page=on_ocr_page)
        chunks = chunk_document(document, chunk_words=chunk_words, overlap_words=overlap_words)
        if not chunks:
            raise EmptyDocument(str(path), "no text to index after cleaning")
    except LoadError as exc:
        write.status, write.error = "failed", exc.reason
        write.chunking = failure_recipe(write.chunking, ocr) if write.content_hash else ""
        return write, None
    except StoreError:
        raise
    except Exception as exc:  # a loader bug on one odd file must not lose the rest of the run
        write.status, write.error = "failed", f"unexpected error while reading: {type(exc).__name__}: {exc}"
        write.chunking = failure_recipe(write.chunking, ocr) if write.content_hash else ""
        return write, None
    write.title, write.pages, write.kind, write.warnings = document.title, document.pages, document.kind, document.warnings
    write.metadata = dict(document.metadata)
    if document.kind == "pdf":  # what a report is, from its cover page: shown beside its passages
        from ingest.facts import read_facts

        first = "\n".join(section.text for section in document.sections[:2])
        whole = "\n".join(section.text for section in document.sections)
        write.metadata.update(read_facts(path, first, whole).as_metadata())
    if document.ocr_pages:
        write.metadata[OCR_PAGES_KEY] = " ".join(str(n) for n in document.ocr_pages)
    return write, chunks


OCR_PAGES_KEY = "OCR pages"
"""Document metadata: the pages (1-based, space-separated) whose text was read by OCR."""


def failure_recipe(recipe: str, ocr: bool = True) -> str:
    """What a failed attempt is recorded under: the recipe, the program's version and whether OCR was on. The
    same bytes are not parsed again (a hostile PDF costs its time budget once) until one of them changes: a scan
    that failed with OCR off is read once OCR is turned on."""
    return f"{recipe}|failed-with:{_program_version()}" + ("" if ocr else "|no-ocr")


def _program_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("selfrag-chat")
    except metadata.PackageNotFoundError:
        return "source"


def _embed_each(store: DocumentStore, pending: list[_Pending], failures: list[DocumentWrite],
                cancel: threading.Event | None) -> bool:
    """Embed file by file after a group failed, so the one file the model rejects is recorded and the rest go on."""
    for item in list(pending):
        texts = [c.embedding_text() for c in item.chunks]
        try:
            vectors = store.embedder.embed(texts, batch_size=store.embed_batch_size, cancel=cancel)
        except StoreError:
            raise
        except Exception as exc:
            pending.remove(item)
            write = item.write
            write.status, write.chunks, write.vectors = "failed", None, None
            write.error = f"the embedding model failed on this file's text ({type(exc).__name__}: {exc})"
            failures.append(write)
            continue
        if len(vectors) < len(texts):
            return False
        item.write.vectors = vectors
    return True


def _commit_each_on_error(store: DocumentStore, writes: list[DocumentWrite]) -> set[str]:
    """Commit the group at once; when that fails, file by file, recording the file that cannot be written.
    Returns the paths committed."""
    try:
        store.commit(writes)
        return {w.path for w in writes}
    except StoreError:
        raise
    except Exception:
        pass
    committed: set[str] = set()
    for write in writes:
        try:
            store.commit([write])
            committed.add(write.path)
        except StoreError:
            raise
        except Exception as exc:
            reason = f"could not be written to the store ({type(exc).__name__}: {exc})"
            write.status, write.error = "failed", reason
            try:  # record the failure itself, without passages, so `docs` shows it
                failed = DocumentWrite(path=write.path, title=write.title, content_hash="", size=write.size,
                                       mtime=write.mtime, kind=write.kind, status="failed", error=reason)
                store.commit([failed])
            except Exception:  # noqa: BLE001 - the summary still lists it
                pass
    return committed


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
