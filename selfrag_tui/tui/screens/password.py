"""Asks for the password of one encrypted PDF. The password goes to that file's ingest only: it is not saved,
not shown (the field is masked) and not put into any message."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from selfrag_tui.application.verdicts import clean_text


class PasswordScreen(ModalScreen[str | None]):
    """Dismissed with the password typed, or None (Esc, or nothing typed)."""

    BINDINGS = [Binding("escape", "close", "Cancel", show=True)]

    def __init__(self, path: str, reason: str) -> None:
        super().__init__()
        self.path = path
        self.reason = reason

    def compose(self) -> ComposeResult:
        with Vertical(id="password-dialog", classes="dialog"):
            title = Text("Password for ", style="bold")
            title.append(clean_text(Path(self.path).name))
            yield Static(title, classes="dialog-title")
            # The stored reason speaks to the command line (--password); here the cause is enough.
            cause = ("The password typed last time did not open this file." if "wrong password" in self.reason
                     else "This PDF is encrypted: it opens only with its password.")
            yield Static(Text(cause, style="yellow"), id="password-reason")
            yield Input(password=True, placeholder="password", id="password-input")
            yield Static(Text("Enter reads the file with this password; it is not saved. To keep passwords for "
                              "many files, list them in a password file (setting ingest.password_file). "
                              "Esc cancels.", style="dim"), classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one("#password-input", Input).focus()

    @on(Input.Submitted, "#password-input")
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value or None)

    def action_close(self) -> None:
        self.dismiss(None)
