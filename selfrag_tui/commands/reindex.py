"""`selfrag-chat reindex [--embedder NAME]`: re-embed every passage with another (or the configured) model.

Passages are re-embedded from the text already in the store; files are not read again. The new vectors go into
a new table that replaces the old one in one step, so an interrupted re-index leaves the old index working.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from selfrag_tui.application.session import Session
    from selfrag_tui.application.settings import Settings


def add_arguments(p: "argparse.ArgumentParser") -> None:
    p.add_argument("--embedder", metavar="NAME_OR_PATH", help="embedding model to switch to")


def run(args: "argparse.Namespace", session: "Session") -> int:
    from ingest.errors import StoreError

    settings = session.settings
    embedder = args.embedder or settings.store.embedder
    try:
        store = session.open_store(embedder=embedder, allow_embedder_change=True)
        previous = store.stored_embedder
        total = store.count_chunks()
        print(f"Re-embedding {total} passages in {store.path} with {store.embedder_name}"
              f"{f' (was {previous})' if previous and previous != store.embedder_name else ''}...",
              file=sys.stderr)
        done = store.reindex(on_progress=_printer(total))
    except StoreError as exc:
        print(f"selfrag-chat reindex: {exc}", file=sys.stderr)
        return 2
    print(f"Re-embedded {done} passages with {store.embedder_name}.")
    if args.embedder:
        _remember_embedder(settings, store.embedder_name)
    return 0


def _printer(total: int):
    def report(done: int, _total: int) -> None:
        print(f"  {done}/{total} passages", file=sys.stderr)

    return report


def _remember_embedder(settings: "Settings", name: str) -> None:
    """Point `store.embedder` in the settings file at the new model, editing only that key: without it the next
    command would open the store with the old model and refuse."""
    import os
    import tomllib

    from ingest.embedding import canonical_name
    from selfrag_tui.application import locations
    from selfrag_tui.application.settings import update_settings_file

    if canonical_name(settings.store.embedder) == name:
        return
    path = locations.config_file()
    try:
        update_settings_file({"store": {"embedder": name}}, path)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        print(f"Could not update {path} ({exc}); set store.embedder = \"{name}\" there yourself.", file=sys.stderr)
        return
    print(f"Set store.embedder = \"{name}\" in {path}.")
    if os.environ.get("SELFRAG_STORE__EMBEDDER"):
        print("Note: SELFRAG_STORE__EMBEDDER is set and takes precedence over the settings file; update it too.",
              file=sys.stderr)
