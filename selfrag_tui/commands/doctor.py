"""`selfrag-chat doctor`: check GPU, engines, model, store and paths, and say how to fix each problem."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from selfrag_tui.settings import Settings


def run(args: "argparse.Namespace", settings: "Settings") -> int:
    """Print the findings (as JSON with --json); exit 1 when any check failed."""
    from selfrag_tui.doctor import run_checks

    if getattr(args, "demo", False):
        from selfrag_tui.services import demo_settings

        settings = demo_settings(settings)
    report = run_checks(settings)
    print(report.to_json() if getattr(args, "json", False) else report.to_text())
    return 0 if report.ok else 1
