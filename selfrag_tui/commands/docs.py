"""`selfrag-chat docs`: every document in the store with its status, and the reason for each failure."""

from __future__ import annotations

import dataclasses
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
        from selfrag_tui.application.verdicts import visible_text

        print(f"selfrag-chat docs: {visible_text(str(exc))}", file=sys.stderr)
        return 2
    from selfrag_tui.application.verdicts import safe_json, visible_text

    if args.json:
        print(safe_json({"store": stats, "documents": [dataclasses.asdict(r) for r in records]}, indent=2))
        return 0

    from rich.table import Table
    from rich.text import Text

    from ingest.facts import label_from_metadata
    from selfrag_tui.commands import output_console

    console = output_console()
    if not records:
        console.print(Text(f"No documents in {visible_text(str(stats['path']), multiline=False)}. Add some with "
                           f"`selfrag-chat ingest PATH`."))
        return 0
    # Every name, title and reason is data: a Text object, never markup, with control characters made visible.
    title = Text(f"{visible_text(str(stats['path']), multiline=False)}  ·  {stats['documents']} documents, "
                 f"{stats['chunks']} passages, {stats['failed']} failed  ·  embedder "
                 f"{visible_text(str(stats['embedder']), multiline=False)}")
    table = Table()
    table.add_column("status")
    table.add_column("document", overflow="fold", ratio=2)
    table.add_column("pages", justify="right")
    table.add_column("passages", justify="right")
    table.add_column("ingested")
    table.add_column("id", style="dim", no_wrap=True)
    table.add_column("notes", overflow="fold", ratio=2)
    for record in records:
        status = (Text("failed", style="red") if record.status != "ok" else
                  Text("partial", style="yellow") if record.partial else Text("ok", style="green"))
        notes = record.error or ""
        facts = label_from_metadata(dict(record.metadata or {}))
        if facts:
            notes = "; ".join(filter(None, [facts, notes]))
        if record.warnings:
            notes = "; ".join(filter(None, [notes, *record.warnings]))
        when = datetime.fromtimestamp(record.ingested_at).strftime("%m-%d %H:%M") if record.ingested_at else ""
        file_name = visible_text(Path(record.path).name, multiline=False)
        name = Text(file_name)
        if record.title != Path(record.path).stem:
            name = Text(visible_text(record.title, multiline=False) + "\n")
            name.append(file_name, style="dim")
        table.add_row(status, name, str(record.pages or ""), str(record.chunks), when, record.doc_id[:8],
                      Text(visible_text(notes)))
    console.print(title)  # above the table, not its title: a table's title wraps at the table's own width
    console.print(table)
    console.print(Text("Full paths and ids: selfrag-chat docs --json. Remove with: selfrag-chat rm PATH_OR_ID",
                       style="dim"))
    return 0
