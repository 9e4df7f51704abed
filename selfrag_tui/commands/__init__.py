"""One module per `selfrag-chat` subcommand, each with `run(args, settings) -> int`; imported on demand."""

PIPED_WIDTH = 200
"""Columns a command's output may use when it goes to a file or a pipe, where no terminal says how wide it is."""


def output_console(**options):
    """A Rich console for a command's printed output. In a terminal it takes the terminal's width. Piped or
    redirected, Rich would assume 80 columns and fold a table's names and reasons into many short lines; there it
    is `PIPED_WIDTH` wide (or `COLUMNS` if set), so each row stays whole for `grep`, `less -S` or a file."""
    import os
    import sys

    from rich.console import Console

    width = None
    if not sys.stdout.isatty() and not os.environ.get("COLUMNS"):
        width = PIPED_WIDTH
    return Console(highlight=False, width=width, **options)
