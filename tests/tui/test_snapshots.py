"""Screens as the user sees them, compared with the SVGs in __snapshots__/ (update with --snapshot-update after
checking the change by eye). Fixed terminal size; no clocks or timings on these screens.

The chat snapshots render scripted answers (tests/tui/scripted_world.py), so they move only when the app's
rendering changes, not when the demo model is retrained or a library upgraded. The library snapshot ingests the
real sample documents."""

from __future__ import annotations

import pytest
from scripted_world import LLAMAS
from textual.widgets import Input
from tui_helpers import ask, chat, ready, wait_for

from selfrag_tui.tui.widgets.segment_view import SegmentView

SIZE = (140, 40)


def _still_cursor(pilot) -> None:
    for field in pilot.app.screen.query(Input):
        field.cursor_blink = False


async def _answered(pilot) -> None:
    await wait_for(pilot, lambda: pilot.app.store_status[0] == "ready", what="the store")
    await ask(pilot, LLAMAS)
    _still_cursor(pilot)


def test_chat_with_an_answer(snap_compare, scripted_app):
    """The chat after the llama/alpaca question: the question, the green RETRIEVED badge with p([Retrieval])=0.95
    against the 0.20 threshold in adaptive mode, the answer with its citation [1] and markers ✓ Relevant ·
    ● Fully supported · ★ Utility 5/5, and on the right the source panel listing the four passages with file,
    heading, search place and verdict, the two irrelevant ones dimmed."""
    assert snap_compare(scripted_app(), run_before=_answered, terminal_size=SIZE)


def test_source_panel_follows_the_selected_segment(snap_compare, scripted_app):
    """The same answer with its cited segment selected: the segment is highlighted, the detail line under the
    conversation lists the probability behind each marker and the source, and the source panel highlights
    passage [1] (camelids.md, Camelids > Alpacas)."""

    async def run_before(pilot) -> None:
        await _answered(pilot)
        cited = next(v for v in chat(pilot.app).query(SegmentView) if v.segment.citation is not None)
        cited.focus()
        await pilot.pause(0.2)
        _still_cursor(pilot)

    assert snap_compare(scripted_app(), run_before=run_before, terminal_size=SIZE)


@pytest.mark.slow
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
