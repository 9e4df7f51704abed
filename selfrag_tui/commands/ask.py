"""`selfrag-chat ask QUESTION`: one answer, printed with its critiques and numbered sources."""

from __future__ import annotations

import json
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from selfrag_tui.selfrag.types import Answer, Critique, DecoderEvent, Segment
    from selfrag_tui.settings import Settings

SUPPORT_LABELS = {
    "[Fully supported]": ("●", "fully supported"),
    "[Partially supported]": ("◐", "partially supported"),
    "[No support / Contradictory]": ("○", "no support"),
}
RELEVANCE_LABELS = {"[Relevant]": ("✓", "relevant"), "[Irrelevant]": ("✗", "irrelevant")}


def _utility_label(critique: "Critique") -> str | None:
    if not critique.utility_token:
        return None
    stars = critique.utility_token.removeprefix("[Utility:").removesuffix("]")
    return f"utility {stars}/5"


def critique_marker(segment: "Segment") -> str:
    """A marker readable without colour, e.g. `[1 ✓ relevant · ● fully supported · utility 5/5]`."""
    c = segment.critique
    parts: list[str] = []
    if c.relevance_token in RELEVANCE_LABELS:
        symbol, word = RELEVANCE_LABELS[c.relevance_token]
        parts.append(f"{symbol} {word} {c.relevance:.2f}" if c.relevance is not None else f"{symbol} {word}")
    if c.support_token in SUPPORT_LABELS:
        symbol, word = SUPPORT_LABELS[c.support_token]
        parts.append(f"{symbol} {word}")
    utility = _utility_label(c)
    if utility:
        parts.append(utility)
    head = f"{segment.citation}" if segment.citation is not None else ""
    body = " · ".join(parts)
    if head and body:
        return f"[{head} {body}]"
    return f"[{head or body}]" if (head or body) else ""


def format_decision(answer: "Answer") -> str:
    d = answer.decision
    verb = "retrieved" if d.retrieve else "no retrieval"
    if d.p_retrieval is None:
        return f"Retrieval: {verb} (mode {d.mode})"
    cmp = ">" if d.retrieve else "≤"
    return f"Retrieval: {verb}, p([Retrieval]) = {d.p_retrieval:.3f} {cmp} threshold {d.threshold:.2f} ({d.mode}, {d.formula} formula)"


def format_answer(answer: "Answer") -> str:
    lines = [format_decision(answer), ""]
    body = []
    for segment in answer.segments:
        marker = critique_marker(segment)
        body.append(f"{segment.text.strip()} {marker}".strip())
    lines.append(" ".join(body) if body else "(empty answer)")
    if answer.abstained:
        lines += ["", f"Caution: {answer.abstain_reason or 'the answer is not supported by your documents.'}"]
    if answer.passages:
        lines += ["", "Sources:"]
        for number, passage in enumerate(answer.passages, start=1):
            verdict = answer.relevance_verdicts.get(passage.id)
            judged = ""
            if verdict is not None and verdict.relevance_token in RELEVANCE_LABELS:
                symbol, word = RELEVANCE_LABELS[verdict.relevance_token]
                judged = f" — {symbol} {word}" + (f" ({verdict.relevance:.2f})" if verdict.relevance is not None else "")
            where = f", {passage.location}" if passage.location else ""
            title = passage.doc_title or passage.title
            lines.append(f"  [{number}] {title} — {passage.source}{where} (score {passage.score:.3f}){judged}")
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


def run(args: "argparse.Namespace", settings: "Settings") -> int:
    from selfrag_tui import services
    from selfrag_tui.engines.base import EngineError

    if args.demo:
        settings = services.demo_settings(settings)
    quiet = args.json or not sys.stderr.isatty()
    try:
        if args.demo:
            store = services.ensure_demo_store(settings)
        else:
            store = services.open_store(settings)
        engine = services.load_engine(settings)
    except EngineError as exc:
        print(f"selfrag-chat: cannot load the model: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # store errors carry a user-facing message
        print(f"selfrag-chat: {exc}", file=sys.stderr)
        return 2

    decoder = services.build_decoder(settings, engine, store)
    cancel = threading.Event()
    try:
        answer = decoder.answer(args.question, on_event=_progress_printer(not quiet), cancel=cancel)
    except KeyboardInterrupt:
        cancel.set()
        raise
    finally:
        engine.close()
    if args.json:
        payload = answer.to_dict()
        payload["model"] = settings.model.model
        payload["store"] = str(settings.store_path)
        print(json.dumps(payload, indent=2, ensure_ascii=False))
    else:
        print(format_answer(answer))
    return 0
