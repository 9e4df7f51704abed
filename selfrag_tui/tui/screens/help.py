"""Every key, from the same table as the bindings and the palette, with the keys remapped in the config."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from selfrag_tui.application import locations
from selfrag_tui.tui.actions import ACTIONS

_SCOPE_TITLE = {"app": "anywhere", "chat": "chat", "library": "library", "settings": "settings",
                "history": "history"}


class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,f1,q", "close", "Close", show=True)]

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog", classes="dialog"):
            yield Static(Text("Keys", style="bold"), classes="dialog-title")
            yield DataTable(id="help-table", cursor_type="row", zebra_stripes=True)
            yield Static(
                Text(
                    f"Remap any key in {locations.config_file()} under [ui.keybindings], e.g. "
                    'toggle_markers = "ctrl+k". Ctrl+P opens the command palette with every action. '
                    "Esc closes this.",
                    style="dim",
                ),
                classes="dialog-hint",
            )

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        # The binding id (the name to remap a key under) before the long description, so a narrow dialog cuts
        # the end of a description, not the ids.
        table.add_columns("Keys", "Where", "Binding id", "Action")
        keymap = getattr(self.app, "_keymap", {}) or {}
        for spec in ACTIONS:
            keys = keymap.get(spec.id, spec.keys)
            table.add_row(
                Text(keys, style="bold"),
                Text(_SCOPE_TITLE[spec.scope]),
                Text(spec.id, style="dim"),
                Text(f"{spec.title}: {spec.help}"),
            )
        table.add_row(Text("ctrl+p", style="bold"), Text("anywhere"), Text("", style="dim"),
                      Text("Command palette: search every action"))
        table.focus()

    def action_close(self) -> None:
        self.dismiss(None)
