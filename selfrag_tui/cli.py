"""The `selfrag-chat` command. With no subcommand it opens the app.

Only argparse is imported here: each subcommand's module (and torch, lancedb, ...) is imported when it runs, so
`selfrag-chat --help` starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from selfrag_tui import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selfrag-chat",
        description="Ask questions about your own documents with a local Self-RAG model that decides when to "
        "retrieve, judges each passage and rates how well its answer is supported.",
        epilog="Settings: defaults < config.toml (XDG config dir, or $SELFRAG_CONFIG) < SELFRAG_* environment "
        "variables (e.g. SELFRAG_DECODING__MODE=always) < flags. Run 'selfrag-chat doctor' to check the set-up.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--store", metavar="PATH", help="LanceDB store folder (default: <data dir>/store)")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="use the bundled tiny demo model and the sample_docs store (ingested on first use)",
    )
    parser.add_argument("--model", metavar="NAME_OR_PATH", help="generator: hub name, local folder or .gguf file")
    parser.add_argument(
        "--engine", choices=["auto", "transformers", "vllm", "llamacpp", "openai"], help="generation engine"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("ingest", help="add or update files and folders in the store")
    p.add_argument("paths", nargs="+", metavar="PATH", help="files or folders (searched recursively)")
    p.add_argument("--sync", action="store_true", help="also remove documents whose files are gone")
    p.add_argument("--include", action="append", metavar="GLOB", help="only files matching GLOB (repeatable)")
    p.add_argument("--exclude", action="append", metavar="GLOB", help="skip files or folders matching GLOB")
    p.add_argument("--password", metavar="PW", help="password for encrypted PDFs")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")

    p = sub.add_parser("docs", help="list documents in the store with status and error reasons")
    p.add_argument("--json", action="store_true", help="print as JSON")

    p = sub.add_parser("rm", help="remove documents from the store")
    p.add_argument("docs", nargs="+", metavar="DOC", help="document path or id")

    p = sub.add_parser("search", help="search the store (no generator needed)")
    p.add_argument("query", metavar="QUERY")
    p.add_argument("--k", type=int, default=5, metavar="N", help="number of passages (default 5)")
    p.add_argument("--mode", choices=["hybrid", "vector", "fts"], help="search mode (default hybrid)")
    p.add_argument("--doc", action="append", metavar="DOC", help="only search these documents (path or id)")
    p.add_argument("--json", action="store_true", help="print as JSON")

    p = sub.add_parser("reindex", help="re-embed every document with the configured embedding model")
    p.add_argument("--embedder", metavar="NAME_OR_PATH", help="embedding model to switch to")

    p = sub.add_parser("ask", help="answer one question and print it with critiques and sources")
    p.add_argument("question", metavar="QUESTION")
    p.add_argument("--mode", choices=["adaptive", "always", "never"], help="retrieval mode (default adaptive)")
    p.add_argument("--form", choices=["long", "short"], help="long: segment beam search; short: best of K")
    p.add_argument("--k", type=int, metavar="N", help="passages per retrieval (default 5)")
    p.add_argument("--threshold", type=float, metavar="T", help="retrieval threshold (default 0.2)")
    p.add_argument("--max-new-tokens", type=int, metavar="N", help="tokens per segment (default 200)")
    p.add_argument("--json", action="store_true", help="print every field as JSON")

    p = sub.add_parser("doctor", help="check GPU, engines, model, store and paths; say how to fix problems")
    p.add_argument("--json", action="store_true", help="print as JSON")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, dict]:
    overrides: dict[str, dict] = {"model": {}, "store": {}, "decoding": {}}
    if args.model:
        overrides["model"]["model"] = args.model
    if args.engine:
        overrides["model"]["engine"] = args.engine
    if args.store:
        overrides["store"]["path"] = args.store
    if args.command == "ask":
        for name in ("mode", "form", "k", "threshold", "max_new_tokens"):
            overrides["decoding"][name] = getattr(args, name)
    return overrides


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    from selfrag_tui.settings import load_settings

    try:
        settings = load_settings(**_overrides(args))
    except Exception as exc:  # pydantic ValidationError or a TOML syntax error in the config file
        from selfrag_tui import locations

        print(f"selfrag-chat: invalid settings ({locations.config_file()} or SELFRAG_* variables):\n{exc}",
              file=sys.stderr)
        return 2

    command = args.command or "app"
    module = importlib.import_module(f"selfrag_tui.commands.{command}")
    try:
        return int(module.run(args, settings) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
