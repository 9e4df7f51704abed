"""Every user action once: binding id, default keys, where it applies, and its words for the palette and help.

Bindings, the command palette and the help screen are all built from this table, so a new action is
discoverable and remappable (`[ui.keybindings]` in config.toml: binding id -> keys) as soon as it is listed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from textual.binding import Binding

Scope = Literal["app", "chat", "library", "settings", "history"]


@dataclass(frozen=True)
class ActionSpec:
    id: str
    """Binding id, the key of `[ui.keybindings]`."""
    keys: str
    action: str
    """Textual action name on the app or on the screen of `scope`."""
    title: str
    """Palette entry and footer label."""
    help: str
    scope: Scope = "app"
    show: bool = True
    """Show in the footer."""
    priority: bool = False


ACTIONS: tuple[ActionSpec, ...] = (
    # Anywhere.
    ActionSpec("help", "f1", "help", "Help", "List every key and what it does", show=True),
    ActionSpec("show_chat", "f2", "show_screen('chat')", "Chat", "Go to the chat"),
    ActionSpec("show_library", "f3", "show_screen('library')", "Library", "Documents: add, remove, re-sync"),
    ActionSpec("show_settings", "f4", "show_screen('settings')", "Settings", "Decoding, retrieval and model settings"),
    ActionSpec("show_history", "f5", "show_screen('history')", "History", "Saved conversations"),
    ActionSpec(
        "use_demo_model", "f9", "use_demo_model", "Use demo model",
        "Switch the generator to the bundled tiny demo model", show=False,
    ),
    ActionSpec("quit", "ctrl+q", "quit", "Quit", "Quit selfrag-chat", show=False, priority=True),
    # Chat.
    ActionSpec("cancel_turn", "escape", "cancel_turn", "Cancel", "Stop the answer being generated", "chat"),
    ActionSpec(
        "toggle_markers", "ctrl+t", "toggle_markers", "Markers",
        "Cycle critique markers: full, compact, plain text", "chat",
    ),
    ActionSpec(
        "rerun", "ctrl+r", "rerun", "Re-run",
        "Ask the last question again with the current settings, to compare", "chat",
    ),
    ActionSpec(
        "show_candidates", "ctrl+o", "show_candidates", "Candidates",
        "Compare the candidates of the selected turn with their scores", "chat",
    ),
    ActionSpec("focus_sources", "ctrl+l", "focus_sources", "Sources", "Move to the source panel", "chat"),
    ActionSpec("focus_prompt", "ctrl+g", "focus_prompt", "Prompt", "Move to the question input", "chat", show=False),
    ActionSpec("new_conversation", "ctrl+n", "new_conversation", "New chat", "Start a new conversation", "chat"),
    ActionSpec(
        "export_conversation", "ctrl+s", "export_conversation", "Export",
        "Write this conversation as Markdown and JSON", "chat",
    ),
    # Library.
    ActionSpec("library_add", "ctrl+a", "focus_path", "Add path", "Type a file or folder to add", "library"),
    ActionSpec("library_tree", "ctrl+t", "toggle_tree", "Browse", "Show or hide the directory tree", "library"),
    ActionSpec("library_remove", "delete", "remove_document", "Remove", "Remove the selected document", "library"),
    ActionSpec(
        "library_resync", "ctrl+r", "resync", "Re-sync",
        "Re-read changed files and drop documents whose files are gone", "library",
    ),
    ActionSpec(
        "library_unlock", "ctrl+u", "unlock_document", "Password",
        "Unlock the selected encrypted PDF with its password (or Enter on its row)",
        "library",
    ),
    ActionSpec("library_cancel", "escape", "cancel_ingest", "Stop ingest", "Stop the running ingest", "library"),
    # Settings.
    ActionSpec("settings_apply", "ctrl+s", "apply", "Apply & save", "Apply to the next turn and save", "settings"),
    ActionSpec(
        "settings_rerun", "ctrl+r", "apply_and_rerun", "Apply & re-run",
        "Apply, save, and re-run the last question", "settings",
    ),
    # History.
    ActionSpec("history_open", "enter", "open_conversation", "Open", "Reopen the selected conversation", "history"),
    ActionSpec(
        "history_delete", "delete", "delete_conversation", "Delete", "Delete the selected conversation", "history",
    ),
    ActionSpec(
        "history_export", "ctrl+s", "export_selected", "Export",
        "Write the selected conversation as Markdown and JSON", "history",
    ),
)


def bindings_for(scope: Scope) -> list[Binding]:
    return [
        Binding(spec.keys, spec.action, spec.title, show=spec.show, priority=spec.priority, id=spec.id,
                tooltip=spec.help)
        for spec in ACTIONS
        if spec.scope == scope
    ]


def action_ids() -> set[str]:
    return {spec.id for spec in ACTIONS}
