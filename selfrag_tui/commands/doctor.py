"""`selfrag-chat doctor`: check GPU, engines, model, store and paths, and say how to fix each problem."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from selfrag_tui.application.session import Session


def add_arguments(p: "argparse.ArgumentParser") -> None:
    p.add_argument("--json", action="store_true", help="print as JSON")


def run(args: "argparse.Namespace", session: "Session") -> int:
    """Print the findings (as JSON with --json); exit 1 when any check failed."""
    from selfrag_tui.application.doctor import run_checks

    report = run_checks(session.settings)
    print(report.to_json() if getattr(args, "json", False) else report.to_text())
    return 0 if report.ok else 1
