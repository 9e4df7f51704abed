"""The `selfrag-chat` command. With no subcommand it opens the app.

Every settings flag is generated from the settings schema (`application.settings`), so its name, choices and
help come from the one definition, and its value is validated by the same merge as the file and the environment.
The global options (`--demo`, `--store`, `--model`, `--engine`, ...) are accepted before or after the
subcommand.

Only argparse and the schema are imported here: each subcommand's module (and torch, lancedb, ...) is imported
when it runs, so `selfrag-chat --help` starts fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any

from selfrag_tui import __version__

# (command, help). Each has a module selfrag_tui.commands.<command> with `add_arguments(parser)` and
# `run(args, session)`; "app" is the app (no subcommand).
COMMANDS: tuple[tuple[str, str], ...] = (
    ("ingest", "add or update files and folders in the store"),
    ("docs", "list documents in the store with status and error reasons"),
    ("rm", "remove documents from the store"),
    ("search", "search the store (no generator needed)"),
    ("reindex", "re-embed every document with the configured embedding model"),
    ("ask", "answer one question and print it with critiques and sources"),
    ("doctor", "check GPU, engines, model, store and paths; say how to fix problems"),
    ("model", "set up the Self-RAG model: list, recommend, download, verify, use, rm, convert"),
)

# Settings sections offered as flags, per command ("" = the app). Global ones go everywhere.
GLOBAL_FLAGS: dict[str, tuple[str, str]] = {
    # flag dest -> (section, field)
    "store": ("store", "path"),
    "model": ("model", "model"),
    "engine": ("model", "engine"),
}
SECTION_FLAGS: dict[str, tuple[str, ...]] = {
    "": ("decoding", "model"),
    "ask": ("decoding", "model"),
    "doctor": ("model",),
    "model": ("model",),
    "ingest": ("ingest",),
}


def _global_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """--demo, --store, --model, --engine. On subcommands their default is SUPPRESS, so a value given before
    the subcommand is not overwritten by the subcommand's default."""
    from selfrag_tui.application.settings import option_spec

    default: Any = argparse.SUPPRESS if suppress else None
    group = parser.add_argument_group("global options (before or after the command)")
    group.add_argument("--demo", action="store_true", default=argparse.SUPPRESS if suppress else False,
                       help="use the bundled tiny demo model and the sample_docs store (ingested on first use)")
    group.add_argument("--store", metavar="PATH", default=default,
                       help="LanceDB store folder (default: <data dir>/store)")
    group.add_argument("--model", metavar="NAME_OR_PATH", default=default,
                       help="generator: hub name, local folder, .gguf file or served name")
    group.add_argument("--engine", choices=option_spec("model.engine").choices, default=default,
                       help="generation engine (default auto)")


def _settings_options(parser: argparse.ArgumentParser, sections: tuple[str, ...], *, suppress: bool) -> None:
    """One flag per setting of `sections`. On subcommands the default is SUPPRESS, so a flag given before the
    subcommand keeps its value."""
    from selfrag_tui.application.settings import option_specs

    default: Any = argparse.SUPPRESS if suppress else None
    for section in sections:
        group = parser.add_argument_group(f"[{section}] settings")
        for spec in option_specs(section):
            if (section, spec.name) in GLOBAL_FLAGS.values() or spec.kind in ("list", "map"):
                continue
            if spec.flag in parser._option_string_actions:  # the command's own option of that name wins
                continue
            dest = f"set__{section}__{spec.name}"
            default_text = "" if spec.default is None else f"default {spec.default}"
            extra = ", ".join(part for part in (default_text, spec.allowed) if part)
            help_text = spec.description + (f" ({extra})" if extra else "")
            help_text = help_text.replace("%", "%%")
            if spec.kind == "bool":
                group.add_argument(spec.flag, dest=dest, action=argparse.BooleanOptionalAction, default=default,
                                   help=help_text)
            elif spec.kind == "choice":
                group.add_argument(spec.flag, dest=dest, choices=spec.choices, default=default, help=help_text)
            else:
                group.add_argument(spec.flag, dest=dest, metavar={"int": "N", "float": "X"}.get(spec.kind, "TEXT"),
                                   default=default, help=help_text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="selfrag-chat",
        description="Ask questions about your own documents with a local Self-RAG model that decides when to "
        "retrieve, judges each passage and rates how well its answer is supported.",
        epilog="Settings: defaults < config.toml (XDG config dir, or $SELFRAG_CONFIG) < SELFRAG_* environment "
        "variables (e.g. SELFRAG_DECODING__MODE=always) < flags. Run 'selfrag-chat doctor' to check the set-up.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    _global_options(parser, suppress=False)
    _settings_options(parser, SECTION_FLAGS[""], suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_text in COMMANDS:
        module = importlib.import_module(f"selfrag_tui.commands.{name}")
        p = sub.add_parser(name, help=help_text, description=help_text[:1].upper() + help_text[1:] + ".")
        module.add_arguments(p)
        # A command with steps (`model list`) takes the flags after its step too: `model list --max-model-len N`.
        steps = [a for a in p._actions if isinstance(a, argparse._SubParsersAction)]
        for parser_here in [p, *(step for action in steps for step in action.choices.values())]:
            _global_options(parser_here, suppress=True)
            _settings_options(parser_here, SECTION_FLAGS.get(name, ()), suppress=True)
    return parser


def flag_layers(args: argparse.Namespace) -> list[tuple[dict[str, dict[str, Any]], str]]:
    """The settings given as flags, one layer per flag so an error names the flag."""
    layers = []
    for dest, (section, name) in GLOBAL_FLAGS.items():
        value = getattr(args, dest, None)
        if value is not None:
            layers.append(({section: {name: value}}, f"--{dest}"))
    for dest, value in vars(args).items():
        if dest.startswith("set__") and value is not None:
            _, section, name = dest.split("__", 2)
            layers.append(({section: {name: value}}, f"--{name.replace('_', '-')}"))
    return layers


def main(argv: list[str] | None = None) -> int:
    from selfrag_tui.application.offline import stay_offline

    stay_offline()  # every model, tokenizer and embedder load reads local files; only `model download` lifts it
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `ingest a.pdf --password pw b.md`: paths after an option are still paths (argparse stops a positional list
    # at the first option). Anything else left over is an error, as parse_args would say.
    positional = getattr(importlib.import_module(f"selfrag_tui.commands.{args.command}"), "REPEATED_POSITIONAL",
                         None) if args.command else None
    if extra and positional and not any(item.startswith("-") for item in extra):
        getattr(args, positional).extend(extra)
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if not hasattr(args, "demo"):
        args.demo = False

    from selfrag_tui.application.settings import SettingsError, resolve

    try:
        settings = resolve(flag_layers(args))
    except SettingsError as exc:
        print(f"selfrag-chat: {exc}", file=sys.stderr)
        return 2

    from selfrag_tui.application.session import Session

    session = Session(settings, demo=bool(args.demo))
    command = args.command or "app"
    module = importlib.import_module(f"selfrag_tui.commands.{command}")
    try:
        code = int(module.run(args, session) or 0)
        sys.stdout.flush()  # inside the try: a reader that left is noticed here, not at exit
        return code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `selfrag-chat docs | head`: the reader left; say nothing more
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
