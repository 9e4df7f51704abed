"""`selfrag-chat model list|recommend|download|verify|use|rm|convert`: set up the Self-RAG model.

Every step is in `application.models`; this module parses, prints and draws progress bars. Only `download`
reaches the network, and only for the variant named.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from selfrag_tui.application.session import Session

PROG = "selfrag-chat model"


def add_arguments(p: "argparse.ArgumentParser") -> None:
    from selfrag_tui.application.models import VARIANTS
    from selfrag_tui.engines.gguf_convert import OUTTYPES

    names = [v.name for v in VARIANTS]
    sub = p.add_subparsers(dest="model_command", metavar="STEP", required=True)
    listing = sub.add_parser("list", help="the variants, their size, the memory they need and whether they fit")
    listing.add_argument("--json", action="store_true", help="print JSON")
    sub.add_parser("recommend", help="the variant that suits this machine, and why")
    down = sub.add_parser("download", help="download a variant (the only step that uses the network)")
    down.add_argument("variant", choices=names, help="which variant (see `selfrag-chat model list`)")
    down.add_argument("--no-use", action="store_true", help="download and verify, but leave the settings alone")
    check = sub.add_parser("verify", help="check a model is a usable Self-RAG model (default: the configured one)")
    check.add_argument("target", nargs="?", help="folder, .gguf file, variant name or server URL")
    check.add_argument("--retype", action="store_true",
                       help="re-type a GGUF's reflection tokens as text tokens when they are typed as control tokens")
    use = sub.add_parser("use", help="verify a folder, .gguf file or server URL you have and make it the model")
    use.add_argument("target", help="model folder, .gguf file, downloaded variant name, or http(s)://HOST:PORT/v1")
    use.add_argument("--served-name", help="server URL: the model name the server serves")
    use.add_argument("--tokenizer", help="server URL: the folder with the model's tokenizer files")
    use.add_argument("--retype", action="store_true",
                     help="re-type a GGUF's reflection tokens as text tokens when they are typed as control tokens")
    rm = sub.add_parser("rm", help="delete a downloaded variant from the Hugging Face cache")
    rm.add_argument("variant", choices=names)
    conv = sub.add_parser("convert", help="convert the Hugging Face weights to a GGUF file for llama.cpp")
    conv.add_argument("source", nargs="?", default="hf",
                      help="model folder, or hf (the downloaded variant); default hf")
    conv.add_argument("--outtype", choices=OUTTYPES, default="q8_0",
                      help="q8_0 keeps scores close to the original; q4_k_m is smallest (default q8_0)")
    conv.add_argument("--outfile", help="GGUF file to write (default <data dir>/models/selfrag_llama2_7b-TYPE.gguf)")
    conv.add_argument("--use", action="store_true", help="make the new file the model")


def _err(text: str) -> None:
    print(f"{PROG}: {text}", file=sys.stderr)


def _print_verification(check) -> None:
    if check.ok:
        print(f"ok: {check.target} is a usable Self-RAG model ({len(check.token_ids)} reflection tokens, each one "
              "token)")
    for note in check.notes:
        print(f"note: {note}")
    for problem in check.problems:
        _err(problem)


def _list(args, session) -> int:
    from rich.table import Table

    from selfrag_tui.application import models
    from selfrag_tui.commands import output_console

    statuses = models.list_variants(session.base_settings)
    if args.json:
        import json

        rows = [{
            "variant": s.variant.name, "repo": s.variant.repo_id, "download_bytes": s.variant.download_bytes,
            "engine": s.engine, "runs_on": s.runs_on, "needed_bytes": s.needed, "available_bytes": s.available,
            "context": s.context, "fits": s.fits, "path": str(s.path) if s.path else None, "note": s.note,
        } for s in statuses]
        print(json.dumps(rows, indent=2))
        return 0
    console = output_console()
    table = Table(title=f"Self-RAG 7B variants at {statuses[0].context} tokens of context")
    for column in ("variant", "download", "needs", "engine", "fits this machine", "downloaded"):
        table.add_column(column)
    for s in statuses:
        device = "GPU" if s.runs_on == "gpu" else "RAM"
        fits = "?" if s.fits is None else ("yes" if s.fits else "no")
        fits += f" ({models.gib(s.available)} {device} free)"
        table.add_row(s.variant.name, models.describe_bytes(s.variant.download_bytes),
                      f"{models.gib(s.needed)} {device}", s.engine, fits, str(s.path) if s.path else "no")
    console.print(table)
    for s in statuses:
        console.print(f"[bold]{s.variant.name}[/]: {s.variant.summary}" + (f" — {s.note}" if s.note else ""),
                      markup=True)
    console.print(f"Also published (use with `{PROG} use FILE` after downloading by hand): "
                  + "; ".join(models.ALSO_PUBLISHED))
    return 0


def _recommend(args, session) -> int:
    from selfrag_tui.application import models

    choice = models.recommend(session.base_settings)
    if choice.status is None:
        _err(choice.reason)
        return 1
    v = choice.status.variant
    print(f"{v.name}: {choice.reason}")
    if choice.status.downloaded:
        print(f"it is downloaded ({choice.status.path}); make it the model with: {PROG} use {v.name}")
    else:
        print(f"get it with: {PROG} download {v.name}  ({models.describe_bytes(v.download_bytes)})")
    return 0


def _download(args, session) -> int:
    import threading

    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    from selfrag_tui.application import models

    console = Console(stderr=True, highlight=False)
    v = models.variant(args.variant)
    console.print(f"downloading {v.name} from {v.url} into {models.hub_cache_dir()}")
    cancel = threading.Event()
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                  TimeRemainingColumn(), console=console, transient=False) as bars:
        overall = bars.add_task(v.name, total=None)
        per_file: dict[str, int] = {}

        def progress(update: models.DownloadProgress) -> None:
            if update.filename not in per_file:
                per_file[update.filename] = bars.add_task(f"  {update.filename}", total=update.file_total)
            bars.update(per_file[update.filename], completed=update.file_done)
            bars.update(overall, completed=update.done, total=update.total)

        try:
            result = models.download(v.name, on_progress=progress, cancel=cancel, use_it=not args.no_use)
        except KeyboardInterrupt as exc:
            bars.stop()
            _err(str(exc) or "interrupted; run the same command again to resume")
            return 130
        except models.ModelSetupError as exc:
            bars.stop()
            _err(str(exc))
            return 1
    if result.note:
        print(f"note: {result.note}")
    if result.retyped:
        print(f"re-typed {result.retyped} reflection tokens of {result.path} as text tokens, so llama.cpp returns "
              "them")
    _print_verification(result.verification)
    if result.use is not None:
        print(f"the model is now {result.path} (engine {result.use.updates['model']['engine']}), saved in "
              f"{result.use.saved_to}")
    return 0


def _verify(args, session) -> int:
    from selfrag_tui.application import models

    try:
        if args.target:
            check = models.verify(args.target)
        else:
            check = models.configured_model_ready(session.base_settings)
        if not check.ok and check.retypable and args.retype:
            changed = models.retype(check.target)
            print(f"re-typed {changed} reflection tokens of {check.target} as text tokens")
            check = models.verify(check.target)
    except models.ModelSetupError as exc:
        _err(str(exc))
        return 1
    _print_verification(check)
    return 0 if check.ok else 1


def _use(args, session) -> int:
    from selfrag_tui.application import models

    try:
        result = models.use(args.target, served_name=args.served_name, tokenizer=args.tokenizer,
                            retype_tokens=args.retype)
    except models.ModelSetupError as exc:
        _err(str(exc))
        return 1
    _print_verification(result.verification)
    settings = ", ".join(f"model.{k} = {v!r}" for k, v in result.updates["model"].items() if v is not None)
    print(f"saved {settings} in {result.saved_to}")
    return 0


def _rm(args, session) -> int:
    from selfrag_tui.application import models

    try:
        removal = models.remove(args.variant, settings=session.base_settings)
    except models.ModelSetupError as exc:
        _err(str(exc))
        return 1
    for path in removal.removed:
        print(f"removed {path}")
    print(f"freed {models.describe_bytes(removal.freed)}")
    if removal.settings_still_point_here:
        _err(f"the settings still name this model (model.model); choose another with `{PROG} use` or "
             f"`{PROG} download`")
    return 0


def _convert(args, session) -> int:
    from pathlib import Path

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from selfrag_tui.application import models

    console = Console(stderr=True, highlight=False)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console) as bars:
        task = bars.add_task(f"converting to {args.outtype}", total=None)

        def progress(what: str, done: int, total: int) -> None:
            bars.update(task, description=f"{what} ({args.outtype})", completed=done, total=total)

        try:
            path, check, used = models.convert(args.source, outtype=args.outtype,
                                               outfile=Path(args.outfile) if args.outfile else None,
                                               on_progress=progress, use_it=args.use)
        except models.ModelSetupError as exc:
            bars.stop()
            _err(str(exc))
            return 1
    print(f"wrote {path} ({models.describe_bytes(path.stat().st_size)})")
    _print_verification(check)
    if used is not None:
        print(f"the model is now {path}, saved in {used.saved_to}")
    else:
        print(f"make it the model with: {PROG} use {path}")
    if args.outtype in ("q4_k_m", "q5_k_m"):
        print("note: 4- and 5-bit files can flip critique decisions that were near a tie; q8_0 keeps them close")
    return 0


def run(args: "argparse.Namespace", session: "Session") -> int:
    step = {
        "list": _list, "recommend": _recommend, "download": _download, "verify": _verify, "use": _use,
        "rm": _rm, "convert": _convert,
    }[args.model_command]
    return step(args, session)
