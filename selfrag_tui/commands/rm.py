"""`selfrag-chat rm DOC...`: remove documents (by path or id) so they never appear in search again."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from selfrag_tui.settings import Settings


def run(args: "argparse.Namespace", settings: "Settings") -> int:
    from ingest.errors import StoreError
    from selfrag_tui.services import open_store

    try:
        store = open_store(settings)
        found, missing = store.resolve_documents(args.docs)
        removed = store.remove([r.doc_id for r in found]) if found else []
        if removed:
            store.optimize()
    except StoreError as exc:
        print(f"selfrag-chat rm: {exc}", file=sys.stderr)
        return 2
    for path in removed:
        print(f"removed {path}")
    for name in missing:
        print(f"selfrag-chat rm: not in the store: {name} (see `selfrag-chat docs` for paths and ids)",
              file=sys.stderr)
    return 1 if missing else 0
