"""Errors of the document store. Each message is meant for the user: it names the file or setting and what to do."""

from __future__ import annotations


class StoreError(Exception):
    """Base of every store error; `str(exc)` is a complete, user-facing message."""


class EmbedderMismatch(StoreError):
    """The store was built with another embedding model; its vectors cannot be compared with the new model's."""

    def __init__(self, store_path: str, stored: str, stored_dim: int | None, requested: str) -> None:
        self.store_path = store_path
        self.stored = stored
        self.stored_dim = stored_dim
        self.requested = requested
        dim = f", {stored_dim}-d" if stored_dim else ""
        super().__init__(
            f"The store at {store_path} was built with the embedding model '{stored}'{dim}, but '{requested}' is "
            f"configured. Either set store.embedder back to '{stored}', or re-embed every document with "
            f"`selfrag-chat reindex --embedder {requested}`."
        )


class EmbedderLoadError(StoreError):
    """The embedding model could not be loaded (not installed, not downloaded, or not a model folder)."""


class StoreLocked(StoreError):
    """Another process is writing to the store (an ingest, removal or re-index is running)."""


class LoadError(StoreError):
    """A file could not be read into text. `reason` is what goes into the documents table and the summary."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        # A reason is words: a library message quoting the file's bytes keeps its printable part only.
        self.reason = "".join(ch if ch.isprintable() else "?" for ch in reason)
        super().__init__(f"{path}: {self.reason}")


class EncryptedPdf(LoadError):
    """The PDF needs a password (none given, or the one given is wrong)."""


class CorruptFile(LoadError):
    """The file is damaged or truncated (for PDFs: pypdf could not parse it)."""


class EmptyDocument(LoadError):
    """The file is empty or holds only whitespace."""


class NoExtractableText(LoadError):
    """A PDF whose pages hold no text layer, typically a scan."""


class UnreadableFile(LoadError):
    """The operating system refused to read the file (permissions, a broken link, a vanished file)."""


class FileTooLarge(LoadError):
    """The file is over the configured size limit (`ingest.max_file_mb`)."""


class UnsupportedFile(LoadError):
    """No loader handles this kind of file."""


class PasswordFileError(StoreError):
    """The password file cannot be read or parsed. The message names the file and line, never a password."""
