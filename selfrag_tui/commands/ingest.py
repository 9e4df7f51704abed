"""`selfrag-chat ingest PATH... [--sync]`: add or update files and folders, with a progress bar and a summary.

Exit status: 0 when every file ingested, 1 when some failed (each is listed with its reason), 2 when the store
could not be used at all, 130 when interrupted (what was committed before Ctrl-C stays).
"""

from __future__ import annotations

import dataclasses
import json
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


def add_arguments(p: "argparse.ArgumentParser") -> None:
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders (searched recursively)")
    p.add_argument("--sync", action="store_true", help="also remove documents whose files are gone")
    p.add_argument("--include", action="append", metavar="GLOB", help="only files matching GLOB (repeatable)")
    p.add_argument("--exclude", action="append", metavar="GLOB", help="skip files or folders matching GLOB")
    p.add_argument("--password", metavar="PW", help="password for encrypted PDFs")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args: "argparse.Namespace", session: "Session") -> int:
    from ingest.errors import StoreError

    settings = session.settings
    include = args.include or settings.ingest.include
    exclude = list(settings.ingest.exclude) + list(args.exclude or [])
    try:
        store = session.require_store()
    except StoreError as exc:
        print(f"selfrag-chat ingest: {exc}", file=sys.stderr)
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

    def on_progress(update: "IngestProgress") -> None:
        if progress_bar is None:
            return
        progress_bar.update(task, total=update.documents_total or None, completed=update.documents_done,
                            phase=update.phase, pages=update.pages_done, chunks=update.chunks_done,
                            eta=_eta(update.eta_seconds),
                            current=Path(update.current_path).name if update.current_path else "")

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
        print(f"selfrag-chat ingest: {error}", file=sys.stderr)
        return 2
    if error is not None:
        raise error  # type: ignore[misc]
    report: IngestReport = outcome["report"]  # type: ignore[assignment]
    if args.json:
        print(json.dumps(dataclasses.asdict(report) | {"ok": report.ok}, ensure_ascii=False, indent=2))
    else:
        print_summary(report, store.count_chunks())
    if report.cancelled:
        return 130
    return 0 if report.ok else 1


def print_summary(report: "IngestReport", total_chunks: int) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(highlight=False)
    counts = Table.grid(padding=(0, 2))
    for label, items, style in (("added", report.added, "green"), ("updated", report.updated, "cyan"),
                                ("unchanged", report.unchanged, "dim"), ("removed", report.removed, "yellow"),
                                ("failed", report.failed, "red")):
        counts.add_row(f"[{style}]{label}[/]", str(len(items)))
    console.print(counts)
    if report.failed:
        # One line per file, the reason indented below: readable at any terminal width and easy to grep.
        console.print("[red]Failed files:[/]")
        for path, reason in sorted(report.failed.items()):
            console.print(f"  [red]✗[/] {path}", soft_wrap=True, highlight=False)
            console.print(f"      {reason}", soft_wrap=True, highlight=False)
    if report.cancelled:
        console.print("[yellow]Interrupted:[/] documents finished before the stop are saved; run the same command "
                      "again to finish.")
    console.print(f"[dim]{total_chunks} passages in the store.[/]")
