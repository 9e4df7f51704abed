"""Decoding, retrieval and model settings. Applied to the next question and saved to the config file; one
action re-runs the last question with them so the two answers can be compared."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Input, Label, Select, Static, Switch

from selfrag_tui import locations
from selfrag_tui.tui.actions import bindings_for
from selfrag_tui.tui.widgets.status_bar import StatusBar

if TYPE_CHECKING:
    from selfrag_tui.tui.app import SelfRagApp

# (section, field, label, kind, choices, help)
FIELDS: tuple[tuple[str, str, str, str, tuple[str, ...], str], ...] = (
    ("decoding", "mode", "Retrieval mode", "select", ("adaptive", "always", "never"),
     "adaptive: the model decides; always / never: forced"),
    ("decoding", "form", "Answer form", "select", ("long", "short"),
     "long: segment-by-segment beam search; short: best of K in one segment"),
    ("decoding", "threshold", "Threshold", "float", (), "retrieve when p([Retrieval]) is above this (0-1)"),
    ("decoding", "threshold_formula", "Threshold formula", "select", ("paper", "released"),
     "released reproduces the official script, only for comparisons"),
    ("decoding", "k", "Passages (K)", "int", (), "passages retrieved per step, one candidate each"),
    ("decoding", "w_rel", "Weight ISREL", "float", (), "weight of the relevance score"),
    ("decoding", "w_sup", "Weight ISSUP", "float", (), "weight of the support score"),
    ("decoding", "w_use", "Weight ISUSE", "float", (), "weight of the utility score"),
    ("decoding", "use_seqscore", "Sequence score", "bool", (), "add the mean token probability to the score"),
    ("decoding", "beam_width", "Beam width", "int", (), "partial answers kept per step (long form)"),
    ("decoding", "max_segments", "Max segments", "int", (), "segments per answer at most (long form)"),
    ("decoding", "max_new_tokens", "Max new tokens", "int", (), "tokens per segment at most"),
    ("model", "engine", "Engine", "select", ("auto", "transformers", "vllm", "llamacpp", "openai"),
     "changing engine or model reloads the generator"),
    ("model", "model", "Model", "text", (), "hub name, local folder or .gguf file"),
    ("ui", "markers", "Markers", "select", ("full", "compact", "plain"), "how critique markers are shown"),
)


def _field_id(section: str, name: str) -> str:
    return f"setting-{section}-{name}"


class SettingsScreen(Screen):
    BINDINGS = bindings_for("settings")

    @property
    def selfrag(self) -> "SelfRagApp":
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield StatusBar(id="status")
        with VerticalScroll(id="settings-body"):
            yield Static(Text("Settings apply to the next question and are saved to "
                              f"{locations.config_file()}.", style="dim"), id="settings-hint")
            with Grid(id="settings-grid"):
                for section, name, label, kind, choices, help_text in FIELDS:
                    yield Label(Text(label, style="bold"), classes="setting-label")
                    field_id = _field_id(section, name)
                    if kind == "select":
                        yield Select([(c, c) for c in choices], id=field_id, allow_blank=False, compact=True)
                    elif kind == "bool":
                        yield Switch(id=field_id)
                    else:
                        yield Input(id=field_id, type="text" if kind == "text" else "number" if kind == "float"
                                    else "integer", compact=True)
                    yield Label(Text(help_text, style="dim"), classes="setting-help")
            with Horizontal(id="settings-buttons"):
                yield Button("Apply & save  (Ctrl+S)", id="apply", variant="primary")
                yield Button("Apply & re-run last question  (Ctrl+R)", id="apply-rerun")
        yield Footer()

    def on_mount(self) -> None:
        self.load_values()
        self.query_one(f"#{_field_id(*FIELDS[0][:2])}").focus()

    def on_screen_resume(self) -> None:
        self.load_values()

    def load_values(self) -> None:
        settings = self.selfrag.settings
        for section, name, _label, kind, _choices, _help in FIELDS:
            value = getattr(getattr(settings, section), name)
            widget = self.query_one(f"#{_field_id(section, name)}")
            if kind == "bool":
                widget.value = bool(value)  # type: ignore[attr-defined]
            elif kind == "select":
                widget.value = str(value)  # type: ignore[attr-defined]
            else:
                widget.value = f"{value:g}" if isinstance(value, float) else str(value)  # type: ignore[attr-defined]

    def read_values(self) -> dict[str, dict[str, Any]]:
        """The form's values by section; raises ValueError naming the setting for bad input."""
        updates: dict[str, dict[str, Any]] = {}
        for section, name, label, kind, _choices, _help in FIELDS:
            widget = self.query_one(f"#{_field_id(section, name)}")
            raw = widget.value  # type: ignore[attr-defined]
            key = f"{section}.{name}"
            if kind == "int":
                try:
                    value: Any = int(str(raw).strip())
                except ValueError:
                    raise ValueError(f"{label} ({key}) must be a whole number, not {raw!r}") from None
                if value < 1:
                    raise ValueError(f"{label} ({key}) must be at least 1, not {value}")
            elif kind == "float":
                try:
                    value = float(str(raw).strip())
                except ValueError:
                    raise ValueError(f"{label} ({key}) must be a number, not {raw!r}") from None
                if name == "threshold" and not 0.0 <= value <= 1.0:
                    raise ValueError(f"{label} ({key}) must be between 0 and 1, not {value:g}")
            elif kind == "text":
                value = str(raw).strip()
                if not value:
                    raise ValueError(f"{label} ({key}) must not be empty")
            else:
                value = raw
            updates.setdefault(section, {})[name] = value
        return updates

    def apply(self) -> bool:
        try:
            updates = self.read_values()
            path = self.selfrag.apply_settings(updates)
        except ValueError as exc:  # our messages and pydantic's ValidationError (a ValueError) name the field
            self.notify(str(exc), title="Settings not applied", severity="error", markup=False)
            return False
        except OSError as exc:
            self.notify(f"{exc}", title="Settings applied but not saved", severity="warning", markup=False)
            return True
        chat = self.selfrag.chat
        chat.marker_style = self.selfrag.settings.ui.markers
        self.notify(f"They apply to the next question. Saved to {path}.", title="Settings applied", markup=False)
        return True

    def action_apply(self) -> None:
        self.apply()

    async def action_apply_and_rerun(self) -> None:
        if not self.apply():
            return
        self.selfrag.action_show_screen("chat")
        await self.selfrag.chat.action_rerun()

    @on(Button.Pressed, "#apply")
    def _apply_pressed(self) -> None:
        self.action_apply()

    @on(Button.Pressed, "#apply-rerun")
    async def _apply_rerun_pressed(self) -> None:
        await self.action_apply_and_rerun()
