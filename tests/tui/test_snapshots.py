"""Screens as the user sees them, compared with the SVGs in __snapshots__/ (update with --snapshot-update after
checking the change by eye). Fixed terminal size; no clocks or timings on these screens."""

from __future__ import annotations

import pytest
from textual.widgets import Input
from tui_helpers import ask, ready, wait_for

from selfrag_tui.tui.widgets.segment_view import SegmentView

pytestmark = pytest.mark.slow

SIZE = (140, 40)
LLAMAS = "Can you tell me the difference between llamas and alpacas?"


def _still_cursor(pilot) -> None:
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False


def test_chat_with_an_answer(snap_compare, make_app):
    """The chat after the llama/alpaca question: the question, the green RETRIEVED badge with p([Retrieval])
    against the 0.20 threshold in adaptive mode, the answer segment by segment with its citation [n] and
    markers (✓ Relevant · ● Fully supported · ★ Utility 5/5 or what the model judged), and on the right the
    source panel listing the retrieved passages with file, heading or page, search score and verdict, the
    irrelevant ones dimmed. The status bar shows the tiny demo model and 7 documents."""

    async def run_before(pilot) -> None:
        await ready(pilot)
        await ask(pilot, LLAMAS)
        _still_cursor(pilot)

    assert snap_compare(make_app(), run_before=run_before, terminal_size=SIZE)


def test_source_panel_follows_the_selected_segment(snap_compare, make_app):
    """The same answer with its first cited segment selected: the segment is highlighted, the detail line
    under the conversation lists the probability behind each marker and the source, and the source panel
    highlights that segment's passage (camelids.md, Camelids > Alpacas)."""

    async def run_before(pilot) -> None:
        await ready(pilot)
        await ask(pilot, LLAMAS)
        cited = next(v for v in pilot.app.chat.query(SegmentView) if v.segment.citation is not None)
        cited.focus()
        await pilot.pause(0.2)
        _still_cursor(pilot)

    assert snap_compare(make_app(), run_before=run_before, terminal_size=SIZE)


def test_library(snap_compare, make_app):
    """The library with sample_docs/ ingested: the path input with its Add button, then a table of the 7
    documents with title, file (relative to the working folder), status ✓ ok, pages (– for text files),
    passages, and an empty problem column."""

    async def run_before(pilot) -> None:
        await ready(pilot)
        await pilot.press("f3")
        await wait_for(pilot, lambda: len(pilot.app.screen.documents) == 7, what="the library table")
        pilot.app.screen.query_one("#documents").focus()
        await pilot.pause(0.1)
        _still_cursor(pilot)

    assert snap_compare(make_app(), run_before=run_before, terminal_size=SIZE)
