"""A path input that completes file and folder names: the completion shows greyed out; Tab or → accepts it."""

from __future__ import annotations

import os
from pathlib import Path

from textual.binding import Binding
from textual.suggester import Suggester
from textual.widgets import Input


class PathSuggester(Suggester):
    """Suggests the first entry of the typed folder that starts with the typed name (folders end with `/`)."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        expanded = os.path.expanduser(value)
        folder, prefix = os.path.split(expanded)
        base = Path(folder or ".")
        try:
            names = sorted(entry.name for entry in os.scandir(base) if not entry.name.startswith(".") or
                           prefix.startswith("."))
        except OSError:
            return None
        for name in names:
            if name.startswith(prefix) and name != prefix:
                completed = os.path.join(folder, name) if folder else name
                if (base / name).is_dir():
                    completed += os.sep
                # Keep the user's `~` rather than showing the expanded home folder.
                if value.startswith("~") and not expanded.startswith("~"):
                    home = os.path.expanduser("~")
                    completed = "~" + completed[len(home):]
                return completed
        return None


class PathInput(Input):
    BINDINGS = [Binding("tab", "complete", "Complete", show=False)]

    def __init__(self, **kwargs) -> None:
        super().__init__(suggester=PathSuggester(), **kwargs)

    def action_complete(self) -> None:
        """Accept the completion when there is one, else move focus on as Tab normally does."""
        if self._suggestion and self._suggestion != self.value:
            self.value = self._suggestion
            self.cursor_position = len(self.value)
        else:
            self.screen.focus_next()
