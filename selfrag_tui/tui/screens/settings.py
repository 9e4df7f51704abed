"""Decoding, retrieval and model settings. Applied to the next question and saved to the config file; one
action re-runs the last question with them so the two answers can be compared.

The form is generated from the settings schema: each field's label, help, choices and range come from the one
definition, and the values are validated by the same merge as flags, environment and file (the app reports a
bad value with the setting's name and the allowed range, and applies nothing).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Select, Static, Switch

from selfrag_tui.application import events as ev
from selfrag_tui.application import locations
from selfrag_tui.application.settings import OptionSpec, option_spec, option_specs
from selfrag_tui.tui import messages as msg
from selfrag_tui.tui.actions import bindings_for
from selfrag_tui.tui.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from selfrag_tui.application.session import Session

# The settings on the form, in order: every decoding knob, the generator's choice, the marker style.
FORM_KEYS: tuple[str, ...] = tuple(
    [spec.key for spec in option_specs("decoding")]
    + ["model.engine", "model.model", "store.search_mode", "store.rerank", "ui.markers"]
)


def form_fields() -> list[OptionSpec]:
    return [option_spec(key) for key in FORM_KEYS]


def _field_id(spec: OptionSpec) -> str:
    return f"setting-{spec.section}-{spec.name}"


def _help(spec: OptionSpec) -> str:
    return spec.description + (f" ({spec.allowed})" if spec.allowed and not spec.choices else "")


class SettingsScreen(Screen):
    BINDINGS = bindings_for("settings")

    def __init__(self, session: "Session") -> None:
        super().__init__()
        self.session = session

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with VerticalScroll(id="settings-body"):
            yield Static(Text("Settings apply to the next question and are saved to "
                              f"{locations.config_file()}.", style="dim"), id="settings-hint")
            with Grid(id="settings-grid"):
                for spec in form_fields():
                    yield Label(Text(spec.title, style="bold"), classes="setting-label")
                    field_id = _field_id(spec)
                    if spec.kind == "choice":
                        yield Select([(c, c) for c in spec.choices], id=field_id, allow_blank=False, compact=True)
                    elif spec.kind == "bool":
                        yield Switch(id=field_id)
                    else:
                        kind = {"int": "integer", "float": "number"}.get(spec.kind, "text")
                        yield Input(id=field_id, type=kind, compact=True)  # type: ignore[arg-type]
                    yield Label(Text(_help(spec), style="dim"), classes="setting-help")
            with Horizontal(id="settings-buttons"):
                yield Button("Apply & save  (Ctrl+S)", id="apply", variant="primary")
                yield Button("Apply & re-run last question  (Ctrl+R)", id="apply-rerun")
        yield Footer()

    def on_mount(self) -> None:
        self.load_values()
        self.query_one(f"#{_field_id(form_fields()[0])}").focus()

    def on_screen_resume(self) -> None:
        self.load_values()

    @on(msg.SessionEventMessage)
    def _session_event(self, message: msg.SessionEventMessage) -> None:
        if isinstance(message.event, ev.SettingsChanged) and self.is_mounted:
            self.load_values()

    def load_values(self) -> None:
        settings = self.session.settings
        for spec in form_fields():
            value = getattr(getattr(settings, spec.section), spec.name)
            widget = self.query_one(f"#{_field_id(spec)}")
            if spec.kind == "bool":
                widget.value = bool(value)  # type: ignore[attr-defined]
            elif spec.kind == "choice":
                widget.value = str(value)  # type: ignore[attr-defined]
            elif value is None:
                widget.value = ""  # type: ignore[attr-defined]
            else:
                widget.value = f"{value:g}" if isinstance(value, float) else str(value)  # type: ignore[attr-defined]

    def read_values(self) -> dict[str, dict[str, Any]]:
        """The form's values by section; raises ValueError naming the setting for input that is not a number."""
        updates: dict[str, dict[str, Any]] = {}
        for spec in form_fields():
            raw = self.query_one(f"#{_field_id(spec)}").value  # type: ignore[attr-defined]
            value = raw if spec.kind in ("bool", "choice") else spec.parse(str(raw))
            updates.setdefault(spec.section, {})[spec.name] = value
        return updates

    def apply(self, *, rerun: bool = False) -> bool:
        try:
            updates = self.read_values()
        except ValueError as exc:
            self.notify(str(exc), title="Settings not applied", severity="error", markup=False)
            return False
        self.post_message(msg.ApplySettings(updates, rerun=rerun))
        return True

    def action_apply(self) -> None:
        self.apply()

    def action_apply_and_rerun(self) -> None:
        self.apply(rerun=True)

    @on(Button.Pressed, "#apply")
    def _apply_pressed(self) -> None:
        self.action_apply()

    @on(Button.Pressed, "#apply-rerun")
    def _apply_rerun_pressed(self) -> None:
        self.action_apply_and_rerun()
