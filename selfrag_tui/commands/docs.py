"""`selfrag-chat docs`: every document in the store with its status, and the reason for each failure."""

from __future__ import annotations

import dataclasses
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from selfrag_tui.application.session import Session


def add_arguments(p: "argparse.ArgumentParser") -> None:
    p.add_argument("--json", action="store_true", help="print as JSON")


def run(args: "argparse.Namespace", session: "Session") -> int:
    from ingest.errors import StoreError

    try:
        store = session.require_store()
        records = store.documents()
        stats = store.stats()
    except StoreError as exc:
        print(f"selfrag-chat docs: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"store": stats, "documents": [dataclasses.asdict(r) for r in records]},
                         ensure_ascii=False, indent=2))
        return 0

    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not records:
        console.print(f"No documents in {stats['path']}. Add some with `selfrag-chat ingest PATH`.")
        return 0
    table = Table(title=f"{stats['path']}  ·  {stats['documents']} documents, {stats['chunks']} passages, "
                        f"{stats['failed']} failed  ·  embedder {stats['embedder']}", title_justify="left")
    table.add_column("status")
    table.add_column("document", overflow="fold", ratio=2)
    table.add_column("pages", justify="right")
    table.add_column("passages", justify="right")
    table.add_column("ingested")
    table.add_column("id", style="dim", no_wrap=True)
    table.add_column("notes", overflow="fold", ratio=2)
    for record in records:
        status = "[green]ok[/]" if record.status == "ok" else "[red]failed[/]"
        notes = record.error or ""
        if record.warnings:
            notes = "; ".join(filter(None, [notes, *record.warnings]))
        when = datetime.fromtimestamp(record.ingested_at).strftime("%m-%d %H:%M") if record.ingested_at else ""
        file_name = Path(record.path).name
        name = f"{record.title}\n[dim]{file_name}[/]" if record.title != Path(record.path).stem else file_name
        table.add_row(status, name, str(record.pages or ""), str(record.chunks), when, record.doc_id[:8], notes)
    console.print(table)
    console.print("[dim]Full paths and ids: selfrag-chat docs --json. Remove with: selfrag-chat rm PATH_OR_ID[/]")
    return 0
