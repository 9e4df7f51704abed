"""`selfrag-chat rm DOC...`: remove documents (by path or id) so they never appear in search again."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from selfrag_tui.application.session import Session


REPEATED_POSITIONAL = "docs"
"""Given before and after options alike (`ingest a.pdf --password pw b.md`)."""


def add_arguments(p: "argparse.ArgumentParser") -> None:
    p.add_argument("docs", nargs="+", metavar="DOC", help="document path or id")


def run(args: "argparse.Namespace", session: "Session") -> int:
    from ingest.errors import StoreError

    try:
        removed, missing = session.remove_documents(args.docs)
    except StoreError as exc:
        print(f"selfrag-chat rm: {exc}", file=sys.stderr)
        return 2
    for path in removed:
        print(f"removed {path}")
    for name in missing:
        print(f"selfrag-chat rm: not in the store: {name} (see `selfrag-chat docs` for paths and ids)",
              file=sys.stderr)
    return 1 if missing else 0
