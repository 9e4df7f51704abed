"""`selfrag-chat search QUERY`: passages from the store with file, page or heading, and score (no generator)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from ingest.types import SearchHit
    from selfrag_tui.application.session import Session


def location(hit: "SearchHit") -> str:
    """Where a passage is, the way a citation reads: `file.pdf, p. 3-4` or `notes.md § Llamas > Diet`."""
    name = Path(hit.path).name
    if hit.page_start is not None:
        pages = (f"p. {hit.page_start}" if hit.page_end in (None, hit.page_start)
                 else f"pp. {hit.page_start}-{hit.page_end}")
        return f"{name}, {pages}"
    if hit.heading:
        return f"{name} § {hit.heading}"
    return name


def hit_json(rank: int, hit: "SearchHit", notes: list[str] | None = None) -> dict:
    return {
        "rank": rank, "score": round(hit.score, 6), "file": hit.path, "location": location(hit),
        "page_start": hit.page_start, "page_end": hit.page_end, "heading": hit.heading, "title": hit.title,
        "text": hit.text, "match": hit.match, "chunk_id": hit.chunk_id, "doc_id": hit.doc_id,
        "notes": notes or [],
    }


def _positive(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, not {text!r}") from None
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"must be between 1 and 1000, not {value}")
    return value


def add_arguments(p: "argparse.ArgumentParser") -> None:
    from selfrag_tui.application.settings import option_spec

    p.add_argument("query", metavar="QUERY")
    p.add_argument("--k", type=_positive, default=5, metavar="N", help="number of passages (default 5, 1 to 1000)")
    p.add_argument("--mode", dest="set__store__search_mode", choices=option_spec("store.search_mode").choices,
                   help="search mode (default: the store.search_mode setting, hybrid)")
    p.add_argument("--no-rerank", dest="set__store__rerank", action="store_const", const=False,
                   help="the search's own order, without re-scoring by the best sentence (store.rerank)")
    p.add_argument("--doc", action="append", metavar="DOC", help="only search these documents (path or id)")
    p.add_argument("--json", action="store_true", help="print as JSON")


def run(args: "argparse.Namespace", session: "Session") -> int:
    from ingest.errors import StoreError

    mode = session.settings.store.search_mode
    label = f"{mode}+rerank" if session.settings.store.rerank else mode
    try:
        store = session.require_store()
        if args.doc:
            _, missing = store.resolve_documents(args.doc)
            if missing:
                from selfrag_tui.application.verdicts import visible_text

                names = visible_text(", ".join(missing), multiline=False)
                print(f"selfrag-chat search: not in the store: {names} (see `selfrag-chat docs`)",
                      file=sys.stderr)
                return 1
        hits = session.search(args.query, args.k, mode=mode, documents=args.doc)
    except StoreError as exc:
        from selfrag_tui.application.verdicts import visible_text

        print(f"selfrag-chat search: {visible_text(str(exc))}", file=sys.stderr)
        return 2

    from selfrag_tui.application.session import passage_notes
    from selfrag_tui.application.verdicts import safe_json, visible_text

    metadata = session.documents_metadata({hit.path for hit in hits})
    notes = [passage_notes(hit, metadata.get(hit.path, {})) for hit in hits]
    if args.json:
        print(safe_json({"query": args.query, "mode": mode, "rerank": session.settings.store.rerank,
                         "hits": [hit_json(i, h, n) for i, (h, n) in enumerate(zip(hits, notes), 1)]}, indent=2))
        return 0
    from rich.console import Console
    from rich.text import Text

    from ingest.retrieval import match_span

    console = Console(highlight=False)
    if not hits:
        empty = store.count_chunks() == 0
        console.print(Text(f"No passages found"
                           f"{' (the store is empty: add files with `selfrag-chat ingest PATH`)' if empty else ''}."))
        return 0
    # Passages, titles and file names are document data: Text objects (never markup), controls made visible.
    for rank, (hit, hit_notes) in enumerate(zip(hits, notes), 1):
        header = Text()
        header.append(f"{rank}. ", style="bold")
        header.append(visible_text(location(hit), multiline=False), style="bold cyan")
        header.append(f"   {label} score {hit.score:.3f}", style="dim")
        console.print(header)
        console.print(Text(visible_text(hit.title, multiline=False), style="italic"))
        for note in hit_notes:
            console.print(Text(visible_text(note, multiline=False), style="yellow" if "OCR" in note else "dim"))
        text = hit.text if len(hit.text) <= 700 else hit.text[:697] + "..."
        shown = Text(visible_text(text))
        span = match_span(shown.plain, visible_text(hit.match, multiline=False)) if hit.match else None
        if span is not None:
            shown.stylize("bold underline", *span)
        elif hit.match:
            console.print(Text(f"best match: “{visible_text(hit.match, multiline=False)}”", style="italic"))
        console.print(shown, soft_wrap=False)
        console.print()
    return 0
