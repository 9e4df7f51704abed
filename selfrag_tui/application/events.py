"""What a `Session` reports to whoever drives it (the Textual app renders these; the CLI mostly ignores them).

Plain frozen dataclasses, safe to hand across threads. The session calls its listener from the thread the work
runs on; a UI must hop to its own thread (Textual: `post_message`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ingest.types import IngestProgress, IngestReport
    from selfrag_tui.application.settings import Settings

State = Literal["idle", "loading", "busy", "ready", "failed"]


@dataclass(frozen=True)
class Status:
    state: State
    words: str


@dataclass(frozen=True)
class GeneratorStatus:
    """The generator is loading, ready or failed; `words` is what a status bar shows."""

    status: Status


@dataclass(frozen=True)
class StoreStatus:
    status: Status


@dataclass(frozen=True)
class IngestStatus:
    status: Status


@dataclass(frozen=True)
class GeneratorFailed:
    """The configured model could not be loaded. `fixable`: the message says what to do (not a crash)."""

    error: str
    fixable: bool
    model: str


@dataclass(frozen=True)
class StoreFailed:
    error: str
    title: str = "The document store could not be opened"


@dataclass(frozen=True)
class IngestProgressed:
    progress: "IngestProgress"
    started: float


@dataclass(frozen=True)
class IngestFinished:
    report: "IngestReport | None"
    error: str | None
    what: str


@dataclass(frozen=True)
class DocumentsChanged:
    """Documents were added, updated or removed."""


@dataclass(frozen=True)
class SettingsChanged:
    settings: "Settings"


@dataclass(frozen=True)
class WaitingForModel:
    """A question arrived while the generator is still loading; it is answered once the model is ready."""

    question: str


@dataclass(frozen=True)
class WaitingForDocuments:
    """A question arrived while the first documents of an empty store are still being added (the demo's sample
    documents at start-up); it is answered once they are in."""

    question: str


SessionEvent = (
    GeneratorStatus | StoreStatus | IngestStatus | GeneratorFailed | StoreFailed | IngestProgressed | IngestFinished
    | DocumentsChanged | SettingsChanged | WaitingForModel | WaitingForDocuments
)
