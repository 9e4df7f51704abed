"""Export a conversation to Markdown (to read or share) and JSON (to process), keeping every verdict and source.

Markdown shows, per turn: the retrieval decision, the answer segment by segment with its critique in words and
its citation, an abstention notice when the answer should not be taken as fact, and the sources with file, page
or heading, where search put it and the model's relevance verdict. JSON holds every field of every `Answer`.
No Textual here.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from selfrag_tui import __version__
from selfrag_tui.application import locations
from selfrag_tui.application.history import Conversation
from selfrag_tui.selfrag.types import Answer
from selfrag_tui.application.verdicts import clean_text, decision_summary, relevance_verdict, verdicts

JSON_FORMAT = "selfrag-chat.conversation/1"


def exports_dir() -> Path:
    """Default folder for exported conversations."""
    return locations.data_dir() / "exports"


def _slug(title: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
    return slug[:50].rstrip("-") or "conversation"


def _one_line(text: str) -> str:
    return " ".join(clean_text(text).split())


def _location(passage) -> str:
    return passage.location or "whole document"


def answer_to_markdown(answer: Answer, *, heading_level: int = 2, number: int | None = None) -> str:
    """One turn as Markdown."""
    h = "#" * heading_level
    question = _one_line(answer.question)
    lines = [f"{h} {number}. {question}" if number is not None else f"{h} {question}", ""]
    lines.append(f"**Retrieval:** {decision_summary(answer.decision)}  ")
    lines.append(f"**Form:** {answer.form} · **answer score:** {answer.score:.3f} · "
                 f"**logprobs:** {answer.logprob_source}")
    lines.append("")
    if answer.abstained:
        reason = _one_line(answer.abstain_reason or "the model's answer is not supported by the documents").rstrip(". ")
        lines.append(f"> **Not answered with confidence:** {reason}. The draft below is not supported as fact.")
        lines.append("")
    for segment in answer.segments:
        text = clean_text(segment.text).strip()
        cite = f" [{segment.citation}]" if segment.citation is not None else ""
        found = verdicts(segment.critique, with_passage=segment.passage is not None)
        judged = "; ".join(v.describe() for v in found)
        critique = f" _({judged})_" if judged else ""
        lines.append(f"{text}{cite}{critique}")
        lines.append("")
    if not answer.segments and answer.text:
        lines.extend([clean_text(answer.text).strip(), ""])
    if answer.passages:
        lines.append(f"{h}# Sources")
        lines.append("")
        for citation, passage in enumerate(answer.passages, start=1):
            verdict_critique = answer.relevance_verdicts.get(passage.id)
            verdict = relevance_verdict(verdict_critique) if verdict_critique else None
            judged = verdict.describe() if verdict else "not judged"
            title = _one_line(passage.title or passage.doc_title or passage.source)
            lines.append(
                f"{citation}. **{title}** — `{passage.source}`, {_location(passage)}; "
                f"{passage.search_place}; model verdict: {judged}"
            )
        lines.append("")
    return "\n".join(lines)


def conversation_to_markdown(conversation: Conversation) -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M", time.localtime(conversation.created_at))
    parts = [
        f"# {_one_line(conversation.title)}",
        "",
        f"_selfrag-chat {__version__} · started {stamp} · {len(conversation.turns)} turn(s)_",
        "",
    ]
    for number, turn in enumerate(conversation.turns, start=1):
        parts.append(answer_to_markdown(turn.answer, heading_level=2, number=number))
    return "\n".join(parts).rstrip() + "\n"


def conversation_to_dict(conversation: Conversation) -> dict[str, Any]:
    return {
        "format": JSON_FORMAT,
        "app_version": __version__,
        "id": conversation.id,
        "title": conversation.title,
        "created_at": conversation.created_at,
        "updated_at": conversation.updated_at,
        "turns": [
            {
                "question": turn.question,
                "created_at": turn.created_at,
                "settings": turn.settings,
                "answer": turn.answer.to_dict(),
            }
            for turn in conversation.turns
        ],
    }


def conversation_to_json(conversation: Conversation) -> str:
    return json.dumps(conversation_to_dict(conversation), indent=2, ensure_ascii=False, default=str) + "\n"


def export_conversation(conversation: Conversation, folder: Path | None = None) -> tuple[Path, Path]:
    """Write `<slug>-<id>.md` and `.json` into `folder` (default `exports_dir()`); returns both paths."""
    target = Path(folder) if folder is not None else exports_dir()
    target.mkdir(parents=True, exist_ok=True)
    stem = f"{_slug(conversation.title)}-{conversation.id}"
    md_path = target / f"{stem}.md"
    json_path = target / f"{stem}.json"
    md_path.write_text(conversation_to_markdown(conversation), encoding="utf-8")
    json_path.write_text(conversation_to_json(conversation), encoding="utf-8")
    return md_path, json_path
