"""Every message the app and its screens exchange. Screens never reach into each other or into the app's
internals: they post one of these, and the app (which owns the `Session`) acts on it or forwards it.

Up (screen -> app): StartIngest, CancelIngest, RemoveDocuments, OpenConversation, ConversationDeleted,
ApplySettings, ReloadGenerator, UseDemoModel.
Down (app -> screens, never bubbling back up): SessionEventMessage (what the session reported),
LoadConversation, ForgetConversation, RerunLastQuestion.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual.message import Message

if TYPE_CHECKING:
    from selfrag_tui.application.events import SessionEvent
    from selfrag_tui.application.history import Conversation


@dataclass
class SessionEventMessage(Message, bubble=False):
    """One event of the session, delivered on the UI thread. A newer ingest progress replaces an unprocessed
    older one, so a burst of progress never queues."""

    event: "SessionEvent"

    def can_replace(self, message: Message) -> bool:
        from selfrag_tui.application.events import IngestProgressed

        return (
            isinstance(message, SessionEventMessage)
            and isinstance(message.event, IngestProgressed)
            and isinstance(self.event, IngestProgressed)
        )


@dataclass
class StartIngest(Message):
    paths: list[Path | str]
    sync: bool = False
    what: str = ""
    password: str | None = field(default=None, repr=False)
    """For encrypted PDFs among `paths` (typed in the library's password prompt); never shown."""


class CancelIngest(Message):
    """Stop the running ingest after its current batch."""


@dataclass
class RemoveDocuments(Message):
    paths: list[str]


class RefreshStore(Message):
    """Count the store's documents again."""


@dataclass
class OpenConversation(Message):
    conversation_id: int


@dataclass
class ConversationDeleted(Message):
    conversation_id: int


@dataclass
class LoadConversation(Message, bubble=False):
    conversation: "Conversation"


@dataclass
class ForgetConversation(Message, bubble=False):
    """The conversation was deleted: new questions start a new one."""

    conversation_id: int


@dataclass
class ApplySettings(Message):
    """Apply (and save) the settings form's values; with `rerun`, ask the last question again."""

    updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    rerun: bool = False


class RerunLastQuestion(Message, bubble=False):
    """Ask the chat's last question again with the settings now in force."""


class ReloadGenerator(Message):
    """Load the configured generator again (after the user fixed its setting)."""


class UseDemoModel(Message):
    """Switch the generator to the bundled tiny model for this session."""
