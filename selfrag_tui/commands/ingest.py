"""`selfrag-chat ingest PATH... [--sync]`: add or update files and folders, with a progress bar and a summary.

Exit status: 0 when every file ingested, 1 when some failed (each is listed with its reason), 2 when the store
could not be used at all, 130 when interrupted (what was committed before Ctrl-C stays).
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from ingest.types import IngestProgress, IngestReport
    from selfrag_tui.application.session import Session


def _eta(seconds: float | None) -> str:
    if seconds is None:
        return "ETA --:--"
    seconds = int(seconds)
    return f"ETA {seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"ETA {seconds // 60:d}:{seconds % 60:02d}"


REPEATED_POSITIONAL = "paths"
"""Given before and after options alike (`ingest a.pdf --password pw b.md`)."""


def add_arguments(p: "argparse.ArgumentParser") -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders (searched recursively)")
    p.add_argument("--sync", action="store_true", help="also remove documents whose files are gone")
    p.add_argument("--include", action="append", metavar="GLOB", help="only files matching GLOB (repeatable)")
    p.add_argument("--exclude", action="append", metavar="GLOB", help="skip files or folders matching GLOB")
    p.add_argument("--password", metavar="PW", help="password for encrypted PDFs the password file "
                                                    "(--password-file) has no entry for")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: "argparse.Namespace", session: "Session") -> int:
    from ingest.errors import StoreError
    from selfrag_tui.application.verdicts import safe_json, visible_text

    settings = session.settings
    include = args.include or settings.ingest.include
    exclude = list(settings.ingest.exclude) + list(args.exclude or [])
    try:
        store = session.require_store()
    except StoreError as exc:
        print(f"selfrag-chat ingest: {visible_text(str(exc))}", file=sys.stderr)
        return 2

    cancel = threading.Event()
    outcome: dict[str, object] = {}
    show_progress = not args.json and sys.stderr.isatty()
    progress_bar, task = None, None
    if show_progress:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

        progress_bar = Progress(
            SpinnerColumn(), TextColumn("{task.fields[phase]:<12}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("docs · {task.fields[pages]} pages · {task.fields[chunks]} passages · {task.fields[eta]}"),
            TextColumn("[dim]{task.fields[current]}"), console=Console(stderr=True), transient=True,
        )
        task = progress_bar.add_task("ingest", total=None, phase="scanning", pages=0, chunks=0, eta=_eta(None),
                                     current="")

    waiting_said: set[str] = set()

    def on_progress(update: "IngestProgress") -> None:
        if update.phase == "waiting" and update.note and update.note not in waiting_said:
            # Said once, on its own line, also without a progress bar: otherwise a queued ingest looks hung.
            waiting_said.add(update.note)
            message = f"selfrag-chat ingest: {visible_text(update.note)}"
            if progress_bar is not None:
                from rich.text import Text

                progress_bar.console.print(Text(message))
            else:
                print(message, file=sys.stderr, flush=True)
        if progress_bar is None:
            return
        from rich.markup import escape

        # The file name goes into a markup template: escaped, and its control characters made visible.
        current = escape(visible_text(Path(update.current_path).name, multiline=False)) if update.current_path else ""
        if update.note and update.phase != "waiting":  # e.g. OCR "page 3/12"
            current = f"{current} {escape(visible_text(update.note, multiline=False))}"
        progress_bar.update(task, total=update.documents_total or None, completed=update.documents_done,
                            phase=update.phase, pages=update.pages_done, chunks=update.chunks_done,
                            eta=_eta(update.eta_seconds), current=current)

    def work() -> None:
        try:
            outcome["report"] = session.ingest(
                args.paths, sync=args.sync, include=include, exclude=exclude,
                password=args.password, on_progress=on_progress, cancel=cancel)
        except BaseException as exc:  # re-raised on the main thread
            outcome["error"] = exc

    # The work runs on a thread so Ctrl-C can ask it to stop between batches instead of killing it mid-write.
    worker = threading.Thread(target=work, name="ingest", daemon=True)
    if progress_bar is not None:
        progress_bar.start()
    try:
        worker.start()
        while worker.is_alive():
            try:
                worker.join(0.2)
            except KeyboardInterrupt:
                cancel.set()
                print("stopping after the current batch (Ctrl-C again to abort)...", file=sys.stderr)
    finally:
        if progress_bar is not None:
            progress_bar.stop()

    error = outcome.get("error")
    if isinstance(error, StoreError):
        print(f"selfrag-chat ingest: {visible_text(str(error))}", file=sys.stderr)
        return 2
    if error is not None:
        raise error  # type: ignore[misc]
    report: IngestReport = outcome["report"]  # type: ignore[assignment]
    if args.json:
        print(safe_json(dataclasses.asdict(report) | {"ok": report.ok}, indent=2))
    else:
        print_summary(report, store.count_chunks())
    if report.cancelled:
        return 130
    return 0 if report.ok else 1


SKIPPED_SHOWN = 20
"""Skipped files listed by name in the summary; the rest are counted (all are in --json)."""


def print_summary(report: "IngestReport", total_chunks: int) -> None:
    """Counts, then every failed file with its reason, what was skipped and why, and what to know about files
    that loaded (unreadable pages, an assumed encoding). Names and reasons are printed as data, never markup,
    with control characters made visible."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from selfrag_tui.application.verdicts import visible_text

    def line(*parts: tuple[str, str]) -> Text:
        text = Text()
        for value, style in parts:
            text.append(value, style=style)
        return text

    console = Console(highlight=False)
    counts = Table.grid(padding=(0, 2))
    for label, items, style in (("added", report.added, "green"), ("updated", report.updated, "cyan"),
                                ("unchanged", report.unchanged, "dim"), ("removed", report.removed, "yellow"),
                                ("failed", report.failed, "red"), ("skipped", report.skipped, "dim"),
                                ("with warnings", report.warnings, "yellow")):
        if items or label in ("added", "updated", "unchanged", "failed"):
            counts.add_row(Text(label, style=style), str(len(items)))
    console.print(counts)
    if report.failed:
        # One line per file, the reason indented below: readable at any terminal width and easy to grep.
        console.print(Text("Failed files:", style="red"))
        for path, reason in sorted(report.failed.items()):
            console.print(line(("  ✗ ", "red"), (visible_text(path, multiline=False), "")), soft_wrap=True)
            console.print(Text("      " + visible_text(reason, multiline=False)), soft_wrap=True)
    if report.warnings:
        console.print(Text("Ingested with warnings:", style="yellow"))
        for path, warnings in sorted(report.warnings.items()):
            console.print(line(("  ! ", "yellow"), (visible_text(path, multiline=False), "")), soft_wrap=True)
            for warning in warnings:
                console.print(Text("      " + visible_text(warning, multiline=False)), soft_wrap=True)
    if report.skipped:
        by_reason: dict[str, int] = {}
        for reason in report.skipped.values():
            by_reason[reason] = by_reason.get(reason, 0) + 1
        reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(by_reason.items(), key=lambda i: -i[1]))
        console.print(line(("Skipped: ", "dim"), (visible_text(reasons, multiline=False), "dim")), soft_wrap=True)
        for path, reason in sorted(report.skipped.items())[:SKIPPED_SHOWN]:
            console.print(line(("  - ", "dim"), (visible_text(path, multiline=False), ""),
                               (f"  ({visible_text(reason, multiline=False)})", "dim")), soft_wrap=True)
        if len(report.skipped) > SKIPPED_SHOWN:
            console.print(Text(f"  … and {len(report.skipped) - SKIPPED_SHOWN} more (all listed with --json)",
                               style="dim"))
    if report.cancelled:
        console.print(line(("Interrupted:", "yellow"), (" documents finished before the stop are saved; run the "
                                                        "same command again to finish.", "")))
    console.print(Text(f"{total_chunks} passages in the store.", style="dim"))
