"""`selfrag-chat ask QUESTION`: one answer, printed with its critiques and numbered sources."""

from __future__ import annotations

import json
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from selfrag_tui.selfrag.types import Answer, DecoderEvent, Segment
    from selfrag_tui.application.session import Session

def critique_marker(segment: "Segment") -> str:
    """The segment's citation and judgements as the app shows them, readable without colour:
    `[1] ✓ Relevant · ● Fully supported · ★ Utility 5/5`."""
    from selfrag_tui.application.verdicts import verdicts

    found = verdicts(segment.critique, with_passage=segment.passage is not None)
    judged = " · ".join(f"{v.symbol} {v.label}" for v in found)
    cite = f"[{segment.citation}]" if segment.citation is not None else ""
    return " ".join(part for part in (cite, judged) if part)


def format_answer(answer: "Answer") -> str:
    """The answer for a terminal: decision, segments with their markers, a cut-short note, caution, numbered sources.

    Document and model text goes through `clean_text`, so escape sequences inside a PDF never reach the terminal.
    """
    from selfrag_tui.application.verdicts import clean_text, decision_summary, relevance_verdict

    summary = decision_summary(answer.decision)
    lines = [summary[:1].upper() + summary[1:], ""]
    body = [f"{clean_text(segment.text).strip()}  {critique_marker(segment)}".strip() for segment in answer.segments]
    lines.append("\n".join(body) if body else "(empty answer)")
    if answer.cut:
        lines += ["", f"Cut short: {clean_text(answer.cut_reason or 'the model did not finish the answer.')}"]
    if answer.abstained:
        lines += ["", f"Caution: {clean_text(answer.abstain_reason or 'the answer is not supported by your documents.')}"]
    if answer.passages:
        lines += ["", "Sources:"]
        for number, passage in enumerate(answer.passages, start=1):
            critique = answer.relevance_verdicts.get(passage.id)
            verdict = relevance_verdict(critique) if critique is not None else None
            judged = f" — {verdict.symbol} {verdict.describe()}" if verdict else " — not judged"
            where = f", {passage.location}" if passage.location else ""
            title = clean_text(passage.doc_title or passage.title)
            lines.append(f"  [{number}] {title} — {passage.source}{where} ({passage.search_place}){judged}")
    return "\n".join(lines)


def _progress_printer(enabled: bool):
    from selfrag_tui.selfrag import types as t

    def on_event(event: "DecoderEvent") -> None:
        if not enabled:
            return
        if isinstance(event, t.DecisionMade) and event.segment_index == 0:
            print("… deciding whether to retrieve: " + ("retrieve" if event.decision.retrieve else "answer directly"),
                  file=sys.stderr)
        elif isinstance(event, t.PassagesRetrieved):
            print(f"… segment {event.segment_index + 1}: {len(event.passages)} passages retrieved", file=sys.stderr)
        elif isinstance(event, t.SegmentChosen):
            print(f"… segment {event.segment.index + 1} chosen", file=sys.stderr)

    return on_event


def add_arguments(p: "argparse.ArgumentParser") -> None:
    p.add_argument("question", metavar="QUESTION")
    p.add_argument("--json", action="store_true", help="print every field as JSON")


def run(args: "argparse.Namespace", session: "Session") -> int:
    from selfrag_tui.application.session import ModelUnavailable

    settings = session.settings
    quiet = args.json or not sys.stderr.isatty()
    try:
        if session.demo:
            session.ingest_sample_docs()
        else:
            session.require_store()
        session.load_engine()
    except ModelUnavailable as exc:
        print(f"selfrag-chat: cannot load the model: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # store errors carry a user-facing message
        print(f"selfrag-chat: {exc}", file=sys.stderr)
        return 2

    cancel = threading.Event()
    try:
        answer = session.ask(args.question, on_event=_progress_printer(not quiet), cancel=cancel)
    except KeyboardInterrupt:
        cancel.set()
        raise
    finally:
        session.close()
    if args.json:
        payload = answer.to_dict()
        payload["model"] = settings.model.model
        payload["store"] = str(settings.store_path)
        print(json.dumps(payload, indent=2, ensure_ascii=False))
    else:
        print(format_answer(answer))
    return 0
