"""The line at the top of every screen: generator, document store and ingest state.

The app owns the state (reactives); each screen's bar watches it, so the model loading in the background is
visible wherever the user is.
"""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

_STATE_STYLE = {"ready": "green", "loading": "yellow", "failed": "bold red", "idle": "dim", "busy": "yellow"}


class StatusBar(Static):
    """Shows `app.generator_status`, `app.store_status` and `app.ingest_status`."""

    def on_mount(self) -> None:
        for name in ("generator_status", "store_status", "ingest_status"):
            self.watch(self.app, name, self._refresh_status, init=False)
        self._refresh_status()

    def _refresh_status(self, _value: object = None) -> None:
        app = self.app
        out = Text(no_wrap=True, overflow="ellipsis")
        for label, (state, words) in (
            ("Generator", getattr(app, "generator_status", ("idle", ""))),
            ("Store", getattr(app, "store_status", ("idle", ""))),
        ):
            if out:
                out.append("  │  ", style="dim")
            out.append(f"{label}: ", style="bold")
            out.append(words, style=_STATE_STYLE.get(state, ""))
        ingest_state, ingest_words = getattr(app, "ingest_status", ("idle", ""))
        if ingest_words:
            out.append("  │  ", style="dim")
            out.append("Ingest: ", style="bold")
            out.append(ingest_words, style=_STATE_STYLE.get(ingest_state, ""))
        self.update(out)
