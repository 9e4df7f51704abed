"""The app, driven the way a user drives it: keys, the prompt, the library's path input; with the tiny real
generator, the real embedding model and a real LanceDB store."""

from __future__ import annotations

import json
import threading

import pytest
from tui_helpers import ask, ready, screen_text, wait_for

from selfrag_tui.application import locations
from selfrag_tui.tui.screens.candidates import CandidatesScreen
from selfrag_tui.tui.screens.model_error import ModelErrorScreen
from selfrag_tui.tui.screens.passage import PassageScreen
from selfrag_tui.tui.widgets.segment_view import SegmentView
from selfrag_tui.tui.widgets.turn_view import TurnView

pytestmark = pytest.mark.slow

SIZE = (160, 48)
LLAMAS = "Can you tell me the difference between llamas and alpacas?"
ODD_ONE_OUT = "Leave odd one out: twitter, instagram, whatsapp."


def turn_text(app, index: int = -1) -> str:
    """The words of one turn as rendered (question, badge, answer with markers)."""
    view = list(app.chat.query(TurnView))[index]
    return "\n".join(str(widget.render()) for widget in view.query("Static"))


async def test_factual_question_shows_retrieval_markers_and_the_cited_source(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await ask(pilot, LLAMAS)

        answer = app.chat.answers[-1]
        shown = screen_text(app)
        assert "⟳ RETRIEVED" in shown
        assert f"p([Retrieval])={answer.decision.p_retrieval:.2f} > threshold 0.20 (adaptive)" in shown
        cited = [s for s in answer.segments if s.citation is not None]
        assert cited, "the factual answer cites a passage"
        first = cited[0]
        assert first.passage.source.endswith("sample_docs/camelids.md")
        words = turn_text(app)
        assert f"[{first.citation}] ✓ Relevant" in words
        assert any(w in words for w in ("● Fully supported", "◐ Partially supported", "○ No support"))

        # Moving to the cited segment highlights its passage in the source panel, with file and heading.
        view = next(v for v in app.chat.query(SegmentView) if v.segment.citation == first.citation)
        view.focus()
        await pilot.pause(0.1)
        assert app.chat.query_one("#source-list").highlighted == first.citation - 1
        shown = screen_text(app)
        assert "Alpacas" in first.passage.location
        assert f"camelids.md, {first.passage.location}" in shown
        assert "p=" in str(app.chat.query_one("#critique-detail").render())

        # Enter on the highlighted source opens the full passage with its neighbours and the file path.
        await pilot.press("ctrl+l", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, PassageScreen) and app.screen.query(".chunk").first()
                       and "neighbouring passage" in screen_text(app), what="the passage with its neighbours")
        shown = screen_text(app)
        assert f"File: {locations.sample_docs_path() / 'camelids.md'}" in shown
        assert "Alpacas are considerably smaller than llamas" in " ".join(shown.split())
        await pilot.press("escape")

        # The candidate view lists the K candidates of the retrieval step with their scores; one is chosen.
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, CandidatesScreen), what="the candidate view")
        shown = screen_text(app)
        assert shown.count("★ chosen") >= 1
        assert all(name in shown for name in ("ISREL", "ISSUP", "ISUSE", "seq", "final"))
        assert len(app.screen.query(".candidate")) == sum(len(s.candidates) for s in answer.segments)


async def test_marker_key_cycles_full_compact_plain(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await ask(pilot, LLAMAS)
        assert "✓ Relevant" in turn_text(app)

        await pilot.press("ctrl+t")
        assert "✓rel" in turn_text(app) and "✓ Relevant" not in turn_text(app)
        await pilot.press("ctrl+t")
        assert "✓" not in turn_text(app) and "[1]" not in turn_text(app)
        await pilot.press("ctrl+t")
        assert "✓ Relevant" in turn_text(app)


async def test_chit_chat_is_answered_without_retrieval(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await ask(pilot, ODD_ONE_OUT)

        answer = app.chat.answers[-1]
        assert not answer.decision.retrieve
        shown = screen_text(app)
        assert "∅ NO RETRIEVAL" in shown
        assert "≤ threshold 0.20 (adaptive)" in shown
        assert "Sources — none (answered without retrieving)" in shown
        assert answer.text.strip() and answer.text.split()[0] in shown


class GatedEngine:
    """The tiny engine, held at its first generation until the test opens the gate (so Esc lands mid-turn)."""

    def __init__(self, engine) -> None:
        self._engine = engine
        self.entered = threading.Event()
        self.gate = threading.Event()

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def generate(self, prompts, **kwargs):
        self.entered.set()
        cancel = kwargs.get("cancel")
        while not self.gate.wait(0.01):
            if cancel is not None and cancel.is_set():
                break
        return self._engine.generate(prompts, **kwargs)


async def test_escape_cancels_a_turn_and_leaves_no_half_built_message(make_app, tui_engine):
    engine = GatedEngine(tui_engine)
    app = make_app(engine=engine)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        prompt = app.chat.query_one("#prompt")
        prompt.value = LLAMAS
        await pilot.press("enter")
        await wait_for(pilot, engine.entered.is_set, what="generation to start")
        await wait_for(pilot, lambda: "⟳ RETRIEVED" in screen_text(app), what="the badge of the running turn")
        assert prompt.value == ""

        await pilot.press("escape")

        assert not app.chat.query(TurnView)
        assert LLAMAS not in screen_text(app).replace(prompt.value, "")
        assert prompt.value == LLAMAS
        turn_workers = [w for w in app.workers if w.group == "turn"]
        await wait_for(pilot, lambda: all(w.is_finished for w in turn_workers), what="the cancelled worker to stop")
        assert not app.chat.query(TurnView), "a late event must not bring the cancelled turn back"
        assert app.history.list_conversations() == []

        engine.gate.set()
        await ask(pilot, LLAMAS)
        assert len(app.chat.query(TurnView)) == 1 and app.chat.answers


async def test_failed_turn_keeps_the_question_in_the_input(make_app):
    app = make_app(decoding={"mode": "always"})
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        app.store = None  # the store went away (e.g. its folder was unmounted): retrieval fails
        await ask(pilot, LLAMAS)

        assert not app.chat.query(TurnView)
        assert app.chat.query_one("#prompt").value == LLAMAS
        assert any("The answer failed" in (n.title or "") and "store" in n.message for n in app._notifications)


async def test_changed_setting_applies_to_the_rerun_and_is_saved(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await ask(pilot, LLAMAS)
        assert app.chat.answers[-1].decision.retrieve

        await pilot.press("f4")
        app.screen.query_one("#setting-decoding-mode").value = "never"
        app.screen.query_one("#setting-decoding-k").value = "3"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: len(app.chat.answers) == 2 and app.chat.running_key is None,
                       what="the re-run")

        first, second = app.chat.answers
        assert second.question == first.question
        assert not second.decision.retrieve and second.decision.mode == "never"
        assert "forced by mode 'never'" in screen_text(app)
        saved = locations.config_file().read_text(encoding="utf-8")
        assert 'mode = "never"' in saved and "k = 3" in saved
        # A demo session saves the user's choices, never the demo model in place of theirs.
        assert "tiny-selfrag" not in saved


async def test_a_saved_conversation_reopens_and_exports(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await ask(pilot, LLAMAS)
        shown_before = turn_text(app)
        await pilot.press("ctrl+n")
        assert not app.chat.query(TurnView)

        await pilot.press("f5")
        assert LLAMAS in screen_text(app)
        await pilot.press("enter")
        await wait_for(pilot, lambda: bool(app.chat.query(TurnView)), what="the conversation to reopen")
        assert app.screen is app.chat
        assert turn_text(app) == shown_before

        await pilot.press("ctrl+s")
        exported = sorted((locations.data_dir() / "exports").iterdir())
        assert [p.suffix for p in exported] == [".json", ".md"]
        markdown = exported[1].read_text(encoding="utf-8")
        assert LLAMAS in markdown and "camelids.md" in markdown and "model verdict:" in markdown
        data = json.loads(exported[0].read_text(encoding="utf-8"))
        assert data["turns"][0]["answer"]["decision"]["retrieve"] is True


async def test_ingest_sample_docs_from_the_library_while_the_chat_stays_usable(make_app, empty_store):
    app = make_app(store=empty_store)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f3")
        await pilot.press("ctrl+a", *"sample_d", "tab")
        path_input = app.screen.query_one("#path")
        assert path_input.value == "sample_docs/"
        await pilot.press("enter")
        assert app.ingest_running

        await pilot.press("f2")
        await pilot.press(*"llamas?")
        assert app.chat.query_one("#prompt").value == "llamas?"

        await wait_for(pilot, lambda: not app.ingest_running, timeout=180, what="the ingest")
        await pilot.press("f3")
        await wait_for(pilot, lambda: len(app.screen.documents) == 7, what="the library table")
        shown = screen_text(app)
        assert "Done: 7 added" in shown
        assert "sample_docs/camelids.md" in shown and "✓ ok" in shown
        await wait_for(pilot, lambda: app.store_status[1].startswith("7 document(s)"), what="the status bar")


async def test_document_markup_and_escape_sequences_render_literally(make_app, empty_store, tmp_path):
    from ingest.pipeline import ingest_paths

    note = tmp_path / "fleece.md"
    note.write_text(
        "# Fleece [bold]care[/bold]\n\n"
        "Wash alpaca fleece [red]gently[/red] in \x1b[31mcold\x1b[0m water [Relevant] and dry it flat.\x07 "
        "Never wring it. [link=https://example.com]click[/link]\n",
        encoding="utf-8",
    )
    report = ingest_paths(empty_store, [note])
    assert report.ok, report.failed
    app = make_app(store=empty_store, decoding={"mode": "always", "k": 1})
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await ask(pilot, "How do I wash alpaca fleece?")

        shown = screen_text(app)
        assert "Fleece [bold]care[/bold]" in shown
        await pilot.press("ctrl+l", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, PassageScreen), what="the passage")
        shown = " ".join(screen_text(app).split())
        assert "[red]gently[/red]" in shown
        assert "water [Relevant] and dry it flat." in shown
        assert "[link=https://example.com]click[/link]" in shown
        assert "\x1b" not in shown and "\x07" not in shown


async def test_unavailable_model_says_why_and_offers_the_demo_model_in_one_key(make_app, tmp_path):
    missing = tmp_path / "no-such-model"
    app = make_app(engine=None, model={"engine": "transformers", "model": str(missing)})
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ModelErrorScreen) and "could not" in screen_text(app),
                       what="the model error")
        shown = " ".join(screen_text(app).split())
        assert "The generator could not be loaded" in shown
        assert str(missing) in shown
        assert "D use the bundled demo model now" in shown

        await pilot.press("d")
        await wait_for(pilot, lambda: app.generator_status[0] == "ready", what="the demo model")
        assert app.generator_status[1] == "tiny demo model"
        await ask(pilot, ODD_ONE_OUT)
        assert app.chat.answers


async def test_library_works_while_the_generator_loads(make_app):
    app = make_app(engine=None)
    async with app.run_test(size=SIZE) as pilot:
        assert app.generator_status[0] == "loading"
        await pilot.press("f3")
        await wait_for(pilot, lambda: len(app.screen.documents) == 7, what="the library table")
        await wait_for(pilot, lambda: app.generator_status[0] == "ready", what="the generator")


async def test_every_action_is_in_the_palette_and_keys_remap_from_the_config(make_app):
    app = make_app(ui={"keybindings": {"toggle_markers": "f6"}})
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await ask(pilot, LLAMAS)

        await pilot.press("f6")
        assert app.chat.marker_style == "compact"

        await pilot.press("ctrl+p")
        await pilot.press(*"Markers")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.chat.marker_style == "plain", what="the palette command")

        await pilot.press("f1")
        help_text = screen_text(app)
        assert "f6" in help_text and "toggle_markers" in help_text


async def test_escape_in_the_library_stops_an_ingest(make_app, empty_store):
    from selfrag_tui.tui import app as app_module

    app = make_app(store=empty_store)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f3")
        app.screen.query_one("#path").value = str(locations.sample_docs_path())
        # Hold the model-load lock so the ingest is still loading its embedder when Esc arrives.
        with app_module._model_load_lock:
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.ingest_running, what="the ingest to start")
            await pilot.press("escape")
            assert app.ingest_status == ("busy", "stopping…")

        await wait_for(pilot, lambda: not app.ingest_running, timeout=180, what="the ingest to stop")
        assert app.last_ingest_report.cancelled
        assert "Stopped:" in screen_text(app)
        assert empty_store.documents() == []
