"""`selfrag-chat` with no subcommand: open the app (`--demo`: the tiny demo model on the sample documents)."""

from __future__ import annotations

import argparse

from selfrag_tui import services
from selfrag_tui.settings import Settings


def run(args: argparse.Namespace, settings: Settings) -> int:
    from selfrag_tui.tui.app import SelfRagApp

    demo = bool(getattr(args, "demo", False))
    effective = services.demo_settings(settings) if demo else settings
    app = SelfRagApp(effective, base_settings=settings, demo=demo)
    app.run()
    return int(app.return_code or 0)
