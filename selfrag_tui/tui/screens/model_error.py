"""The configured generator could not be loaded: say exactly why, how to fix it, and offer the demo model."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

from selfrag_tui.application import locations
from selfrag_tui.application.verdicts import clean_text
from selfrag_tui.tui.messages import UseDemoModel


class ModelErrorScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("d,f9", "use_demo", "Use the demo model", show=True),
        Binding("escape", "close", "Continue without a model", show=True),
    ]

    def __init__(self, error: str, *, model: str, fixable: bool) -> None:
        super().__init__()
        self.error = error
        self.model = model
        self.fixable = fixable

    def compose(self) -> ComposeResult:
        title = "The generator could not be loaded" if self.fixable else "The generator crashed while loading"
        body = Text()
        body.append("Model: ", style="bold")
        body.append(clean_text(self.model))
        body.append("\n\n")
        body.append(clean_text(self.error))
        body.append("\n\nTo fix it: ", style="bold")
        body.append(
            "download the model, or set model.model / model.engine in "
            f"{locations.config_file()} (or pass --model / --engine), then restart. "
            "`selfrag-chat doctor` checks the set-up."
        )
        body.append("\n\nMeanwhile the library works, and the bundled tiny demo model can answer questions about "
                    "the sample documents.")
        keys = Text()
        keys.append(" D ", style="bold reverse")
        keys.append(" use the bundled demo model now    ")
        keys.append(" Esc ", style="bold reverse")
        keys.append(" continue without a model")
        with Vertical(id="model-error", classes="dialog -error"):
            yield Static(Text(title, style="bold red"), classes="dialog-title")
            yield Static(body, classes="dialog-body")
            yield Static(keys, classes="dialog-hint")

    def action_use_demo(self) -> None:
        self.dismiss(None)
        self.app.post_message(UseDemoModel())

    def action_close(self) -> None:
        self.dismiss(None)
