"""Helpers of the app tests: read the screen as a user would, wait for background work, ask a question."""

from __future__ import annotations

import time
from typing import Callable


def chat(app):
    """The chat screen (installed under the name "chat")."""
    return app.get_screen("chat")


def notifications_shown(app) -> str:
    """The toasts on screen now, as text (what the user reads)."""
    return "\n".join(str(toast.render()) for toast in app.screen.query("Toast"))


def screen_text(app) -> str:
    """What the terminal shows now, as plain text (one line per row), the way a user reads it."""
    strips = app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip).rstrip() for strip in strips)


async def wait_for(pilot, condition: Callable[[], bool], *, timeout: float = 60.0, what: str = "") -> None:
    """Let the app run until `condition()` holds (workers run in threads, their results arrive as messages)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what or condition}\n"
                                 f"{screen_text(pilot.app)}")
        await pilot.pause(0.05)


async def ready(pilot) -> None:
    """Wait until the status bar says the store is counted and the generator is ready."""
    app = pilot.app
    await wait_for(pilot, lambda: app.store_status[0] == "ready" and app.generator_status[0] == "ready",
                   what="the store and the generator")


async def ask(pilot, question: str, *, timeout: float = 120.0) -> None:
    """Type a question, press Enter, and wait for the turn to finish."""
    app = pilot.app
    prompt = chat(app).query_one("#prompt")
    prompt.focus()
    prompt.value = question
    await pilot.press("enter")
    await wait_for(pilot, lambda: chat(app).running_key is None, timeout=timeout, what=f"the answer to {question!r}")
    await pilot.pause(0.1)
