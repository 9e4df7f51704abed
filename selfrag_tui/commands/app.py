"""`selfrag-chat` with no subcommand: open the app (`--demo`: the tiny demo model on the sample documents)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from selfrag_tui.application.session import Session


def add_arguments(p: "argparse.ArgumentParser") -> None:
    """The app takes only the global and settings flags."""


def run(args: "argparse.Namespace", session: "Session") -> int:
    from selfrag_tui.tui.app import SelfRagApp

    app = SelfRagApp(session, ingest_demo_docs=session.demo)
    app.run()
    return int(app.return_code or 0)
