"""No usable model: say exactly why, and offer every way forward in one dialog.

- the Self-RAG 7B variants with what each needs and whether it fits this machine (measured now), the recommended
  one first; Enter downloads the highlighted one (the only network access the app makes, and only when asked),
  with a progress bar and ETA; Esc stops the download, keeping what arrived for the next try;
- D (or F9): the bundled tiny demo model, for this session;
- P: a model folder or .gguf file already on this machine; S: the URL of a model server (`vllm serve`).

Each choice is verified (the 16 Self-RAG tokens, each one token) before the settings are changed and saved.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import Input, OptionList, ProgressBar, Static
from textual.widgets.option_list import Option

from selfrag_tui.application.verdicts import clean_text
from selfrag_tui.tui.markers import format_eta
from selfrag_tui.tui.messages import ReloadGenerator, UseDemoModel

if TYPE_CHECKING:
    from selfrag_tui.application.session import Session


class ModelSetupScreen(ModalScreen[None]):
    BINDINGS = [
        Binding("d,f9", "use_demo", "Use the demo model", show=True),
        Binding("p", "ask_path", "Use a folder or .gguf", show=True),
        Binding("s", "ask_server", "Use a server", show=True),
        Binding("escape", "close", "Stop / close", show=True),
    ]

    @dataclass
    class VariantsListed(Message):
        statuses: list[Any]
        recommendation: Any
        error: str | None = None

    @dataclass
    class Progressed(Message):
        progress: Any
        started: float

        def can_replace(self, message: Message) -> bool:
            return isinstance(message, ModelSetupScreen.Progressed)

    @dataclass
    class Finished(Message):
        ok: bool
        words: str

    def __init__(self, session: "Session", error: str, *, fixable: bool = True) -> None:
        super().__init__()
        self.session = session
        self.error = error
        self.fixable = fixable
        self.statuses: list[Any] = []
        self._cancel: threading.Event | None = None
        self._asking: str | None = None  # "path" or "server" while the input is open

    @property
    def busy(self) -> bool:
        return self._cancel is not None

    def compose(self) -> ComposeResult:
        title = "No usable model yet" if self.fixable else "The generator crashed while loading"
        body = Text()
        body.append("Model setting: ", style="bold")
        body.append(clean_text(self.session.settings.model.model))
        body.append("\n")
        body.append(clean_text(self.error))
        keys = Text()
        for key, words in (("Enter", "download the highlighted model"), ("D", "demo model now"),
                           ("P", "a folder or .gguf"), ("S", "a server URL"), ("Esc", "stop / close")):
            keys.append(f" {key} ", style="bold reverse")
            keys.append(f" {words}   ")
        with Vertical(id="model-setup", classes="dialog -error"):
            yield Static(Text(title, style="bold red"), classes="dialog-title")
            yield Static(body, classes="dialog-body", id="setup-reason")
            yield Static(Text("Measuring this machine…", style="dim"), id="setup-recommendation")
            yield OptionList(id="variants")
            yield Input(id="setup-input")
            with Vertical(id="setup-progress"):
                yield Static("", id="setup-progress-label")
                yield ProgressBar(total=None, show_eta=False, id="setup-bar")
            yield Static("", id="setup-outcome")
            yield Static(keys, classes="dialog-hint")

    def on_mount(self) -> None:
        self.query_one("#setup-input").display = False
        self.query_one("#setup-progress").display = False
        self.query_one("#setup-outcome").display = False
        self.query_one("#variants", OptionList).focus()
        self._list_variants()

    # -- the variants -------------------------------------------------------------------------------------------

    @work(thread=True, exclusive=True, group="setup-list", exit_on_error=False)
    def _list_variants(self) -> None:
        try:
            statuses, recommendation = self.session.model_choices()
        except Exception as exc:  # the machine could not be measured: the other ways forward still work
            self.post_message(self.VariantsListed([], None, f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(self.VariantsListed(statuses, recommendation))

    @on(VariantsListed)
    def _variants_listed(self, message: VariantsListed) -> None:
        from selfrag_tui.application.models import describe_bytes, gib

        label = self.query_one("#setup-recommendation", Static)
        if message.error is not None:
            label.update(Text(f"Could not measure this machine: {message.error}", style="yellow"))
            return
        recommended = message.recommendation.status.variant.name if message.recommendation.status else None
        words = Text()
        words.append("Recommended here: ", style="bold")
        words.append(recommended or "none of the variants")
        words.append(f" — {clean_text(message.recommendation.reason)}")
        label.update(words)
        ordered = sorted(message.statuses, key=lambda s: s.variant.name != recommended)
        self.statuses = ordered
        options = self.query_one("#variants", OptionList)
        options.clear_options()
        for status in ordered:
            line = Text()
            line.append(f"{status.variant.name:<12}", style="bold")
            line.append(f" download {describe_bytes(status.variant.download_bytes):>8}")
            where = "GPU" if status.runs_on == "gpu" else "RAM"
            line.append(f" · needs {gib(status.needed)} {where} · {status.engine}")
            if status.fits is True:
                line.append(" · fits", style="green")
            elif status.fits is False:
                line.append(f" · does not fit ({gib(status.available)} free)", style="red")
            if status.downloaded:
                line.append(" · downloaded ✓", style="cyan")
            if status.variant.name == recommended:
                line.append("  ★ recommended", style="bold")
            options.add_option(Option(line, id=f"variant-{status.variant.name}"))
        if ordered:
            options.highlighted = 0

    @on(OptionList.OptionSelected, "#variants")
    def _variant_chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if self.busy:
            return
        status = self.statuses[event.option_index]
        self._start(status.variant.name, download=not status.downloaded)

    # -- download or use ----------------------------------------------------------------------------------------

    def _start(self, target: str, *, download: bool, served_name: str | None = None) -> None:
        self._cancel = threading.Event()
        box = self.query_one("#setup-progress")
        box.display = True
        verb = "Downloading" if download else "Checking"
        self.query_one("#setup-progress-label", Static).update(Text(f"{verb} {clean_text(target)}…"))
        self.query_one("#setup-outcome").display = False
        self._run(target, download, served_name, self._cancel)

    @work(thread=True, exclusive=True, group="setup-run", exit_on_error=False)
    def _run(self, target: str, download: bool, served_name: str | None, cancel: threading.Event) -> None:
        from selfrag_tui.application import models

        started = time.monotonic()
        try:
            if download:
                applied = self.session.download_model(
                    target, cancel=cancel, on_progress=lambda p: self.post_message(self.Progressed(p, started)))
            else:
                applied = self.session.use_model(target, served_name=served_name)
        except models.DownloadCancelled:
            self.post_message(self.Finished(False, "Download stopped. What arrived is kept: press Enter on it "
                                                   "again to resume."))
            return
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # ModelSetupError and HubUnreachable say what to do; anything else with its type
            from selfrag_tui.application.settings import SettingsError

            text = str(exc) if isinstance(exc, (models.ModelSetupError, SettingsError)) else (
                f"{type(exc).__name__}: {exc}")
            self.post_message(self.Finished(False, text))
            return
        model = applied.settings.model
        self.post_message(self.Finished(True, f"Using {model.model} ({model.engine}); saved to {applied.saved_to}."))

    @on(Progressed)
    def _progressed(self, message: Progressed) -> None:
        from selfrag_tui.application.models import describe_bytes

        progress = message.progress
        bar = self.query_one("#setup-bar", ProgressBar)
        bar.update(total=max(progress.total, 1), progress=progress.done)
        words = Text()
        words.append(f"Downloading {clean_text(progress.filename)} ", style="bold")
        words.append(f"{describe_bytes(progress.done)} of {describe_bytes(progress.total)}")
        elapsed = time.monotonic() - message.started
        if progress.done and elapsed > 1 and progress.done < progress.total:
            rate = progress.done / elapsed
            words.append(f" · ETA {format_eta((progress.total - progress.done) / rate)}")
        words.append("   Esc stops", style="dim")
        self.query_one("#setup-progress-label", Static).update(words)

    @on(Finished)
    def _finished(self, message: Finished) -> None:
        self._cancel = None
        self.query_one("#setup-progress").display = False
        outcome = self.query_one("#setup-outcome", Static)
        outcome.display = True
        outcome.update(Text(clean_text(message.words), style="green" if message.ok else "bold red"))
        if message.ok:
            self.app.post_message(ReloadGenerator())
            self.notify(message.words, title="Model set up", markup=False)
            self.dismiss(None)

    # -- the other ways forward ---------------------------------------------------------------------------------

    def _ask(self, what: str, placeholder: str) -> None:
        if self.busy:
            return
        self._asking = what
        field = self.query_one("#setup-input", Input)
        field.placeholder = placeholder
        field.value = ""
        field.display = True
        field.focus()

    def action_ask_path(self) -> None:
        self._ask("path", "a model folder or a .gguf file, e.g. ~/models/selfrag_llama2_7b.q8_0.gguf  (Enter)")

    def action_ask_server(self) -> None:
        self._ask("server", "the server's URL, e.g. http://gpu-box:8000/v1  (Enter)")

    @on(Input.Submitted, "#setup-input")
    def _input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        value = event.value.strip()
        if not value:
            return
        self.query_one("#setup-input").display = False
        self._asking = None
        self.query_one("#variants", OptionList).focus()
        self._start(value, download=False)

    def action_use_demo(self) -> None:
        if self.busy:
            return
        self.dismiss(None)
        self.app.post_message(UseDemoModel())

    def action_close(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
            self.query_one("#setup-progress-label", Static).update(Text("Stopping the download…", style="yellow"))
            return
        if self._asking is not None:
            self._asking = None
            self.query_one("#setup-input").display = False
            self.query_one("#variants", OptionList).focus()
            return
        self.dismiss(None)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        # While the path or URL is being typed, letters go to the input, not to the dialog's keys.
        if self._asking is not None and action in ("use_demo", "ask_path", "ask_server"):
            return False
        return True
