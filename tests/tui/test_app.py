"""The app end to end, driven the way a user drives it, with the tiny real generator, the real embedding model and
a real LanceDB store: answers from the real model, ingest from the library, a model that cannot load. Screen
behaviours that do not need a real model are tested faster in test_app_scripted.py."""

from __future__ import annotations


import pytest
from tui_helpers import ask, chat, ready, screen_text, wait_for

from selfrag_tui.application import locations
from selfrag_tui.tui.screens.candidates import CandidatesScreen
from selfrag_tui.tui.screens.model_setup import ModelSetupScreen
from selfrag_tui.tui.screens.passage import PassageScreen
from selfrag_tui.tui.markers import MATCH_STYLE
from selfrag_tui.tui.widgets.segment_view import SegmentView
from selfrag_tui.tui.widgets.turn_view import TurnView

pytestmark = pytest.mark.slow

SIZE = (160, 48)
LLAMAS = "Can you tell me the difference between llamas and alpacas?"
ODD_ONE_OUT = "Leave odd one out: twitter, instagram, whatsapp."


def turn_text(app, index: int = -1) -> str:
    """The words of one turn as rendered (question, badge, answer with markers)."""
    view = list(chat(app).query(TurnView))[index]
    return "\n".join(str(widget.render()) for widget in view.query("Static"))


async def test_factual_question_shows_retrieval_markers_and_the_cited_source(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await ask(pilot, LLAMAS)

        answer = chat(app).answers[-1]
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
        view = next(v for v in chat(app).query(SegmentView) if v.segment.citation == first.citation)
        view.focus()
        await pilot.pause(0.1)
        assert chat(app).query_one("#source-list").highlighted == first.citation - 1
        shown = screen_text(app)
        assert "Alpacas" in first.passage.location
        assert f"camelids.md, {first.passage.location}" in shown
        assert "p=" in str(chat(app).query_one("#critique-detail").render())

        # Enter on the highlighted source opens the full passage with its neighbours and the file path.
        await pilot.press("ctrl+l", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, PassageScreen) and app.screen.query(".chunk").first()
                       and "neighbouring passage" in screen_text(app), what="the passage with its neighbours")
        shown = screen_text(app)
        assert f"File: {locations.sample_docs_path() / 'camelids.md'}" in shown
        assert "Alpacas are considerably smaller than llamas" in " ".join(shown.split())
        # The sentence the search matched best is underlined in the passage.
        match = first.passage.match
        assert match and match in " ".join(first.passage.text.split())
        current = app.screen.query_one(".chunk.-current").content
        underlined = [current.plain[s.start:s.end] for s in current.spans if s.style == MATCH_STYLE]
        assert [" ".join(u.split()) for u in underlined] == [match]
        await pilot.press("escape")

        # The candidate view lists the K candidates of the retrieval step with their scores; one is chosen.
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, CandidatesScreen), what="the candidate view")
        shown = screen_text(app)
        assert shown.count("★ chosen") >= 1
        assert all(name in shown for name in ("ISREL", "ISSUP", "ISUSE", "seq", "final"))
        assert len(app.screen.query(".candidate")) == sum(len(s.candidates) for s in answer.segments)


async def test_chit_chat_is_answered_without_retrieval(make_app):
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await ask(pilot, ODD_ONE_OUT)

        answer = chat(app).answers[-1]
        assert not answer.decision.retrieve
        shown = screen_text(app)
        assert "∅ NO RETRIEVAL" in shown
        assert "≤ threshold 0.20 (adaptive)" in shown
        assert "Sources — none (answered without retrieving)" in shown
        assert answer.text.strip() and answer.text.split()[0] in shown


async def test_ingest_sample_docs_from_the_library_while_the_chat_stays_usable(make_app, empty_store):
    app = make_app(store=empty_store)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f3")
        await pilot.press("ctrl+a", *"sample_d", "tab")
        path_input = app.screen.query_one("#path")
        assert path_input.value == "sample_docs/"
        await pilot.press("enter")
        # The status line says an ingest runs (on a fast machine it may already be done when we look).
        await wait_for(pilot, lambda: app.ingest_status[0] == "busy" or app.session.last_ingest_report is not None,
                       what="the ingest to start")

        await pilot.press("f2")
        await pilot.press(*"llamas?")
        assert chat(app).query_one("#prompt").value == "llamas?"

        await wait_for(pilot, lambda: not app.session.ingest_running, timeout=180, what="the ingest")
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


async def test_unavailable_model_offers_the_demo_model_in_one_key(make_app, tmp_path):
    missing = tmp_path / "no-such-model"
    app = make_app(engine=None, model={"engine": "transformers", "model": str(missing)})
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ModelSetupScreen)
                       and "No usable model yet" in screen_text(app), what="the model setup dialog")
        shown = " ".join(screen_text(app).split())
        assert str(missing) in shown

        await pilot.press("d")
        await wait_for(pilot, lambda: app.generator_status[0] == "ready", what="the demo model")
        assert app.generator_status[1] == "tiny demo model"
        await ask(pilot, ODD_ONE_OUT)
        assert chat(app).answers


async def test_a_model_folder_typed_in_the_setup_dialog_is_verified_saved_and_loaded(make_app, tmp_path):
    missing = tmp_path / "no-such-model"
    app = make_app(engine=None, model={"engine": "transformers", "model": str(missing)})
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ModelSetupScreen)
                       and "No usable model yet" in screen_text(app), what="the model setup dialog")
        await pilot.press("p")
        await pilot.press(*str(locations.demo_model_path()), "enter")
        await wait_for(pilot, lambda: app.generator_status[0] == "ready", timeout=120, what="the model to load")
        assert not isinstance(app.screen, ModelSetupScreen)
        assert app.session.settings.model.model == str(locations.demo_model_path())
        saved = locations.config_file().read_text(encoding="utf-8")
        assert f'model = "{locations.demo_model_path()}"' in saved
        await ask(pilot, LLAMAS)
        assert chat(app).answers[-1].decision.retrieve


async def test_library_works_while_the_generator_loads(make_app):
    app = make_app(engine=None)
    async with app.run_test(size=SIZE) as pilot:
        assert app.generator_status[0] == "loading"
        await pilot.press("f3")
        await wait_for(pilot, lambda: len(app.screen.documents) == 7, what="the library table")
        await wait_for(pilot, lambda: app.generator_status[0] == "ready", what="the generator")


async def test_escape_in_the_library_stops_an_ingest(make_app, empty_store):
    from selfrag_tui.application.session import MODEL_LOAD_LOCK

    app = make_app(store=empty_store)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f3")
        app.screen.query_one("#path").value = str(locations.sample_docs_path())
        # Hold the model-load lock so the ingest is still loading its embedder when Esc arrives.
        with MODEL_LOAD_LOCK:
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.session.ingest_running, what="the ingest to start")
            await pilot.press("escape")
            assert app.ingest_status == ("busy", "stopping…")

        await wait_for(pilot, lambda: not app.session.ingest_running, timeout=180, what="the ingest to stop")
        assert app.session.last_ingest_report.cancelled
        await wait_for(pilot, lambda: "Stopped:" in screen_text(app), what="the library's summary of the stop")
        assert empty_store.documents() == []


async def test_the_setup_dialog_downloads_the_chosen_variant_with_progress_and_loads_it(make_app, tmp_path,
                                                                                       monkeypatch):
    """The download runs against a hub on loopback (HF_ENDPOINT, as for a hub mirror) serving the tiny model's 4-bit
    GGUF under the real name."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install '.[llamacpp]')")
    from hub_server import Hub
    from huggingface_hub import constants

    from selfrag_tui.engines.gguf_convert import convert

    gguf = convert(locations.demo_model_path(), tmp_path / "t.gguf", outtype="q4_k_m")
    hub = Hub({"m4r1/selfrag_llama2_7b-GGUF": {"selfrag_llama2_7b.q4_k_m.gguf": gguf.read_bytes()}})
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)  # a hub mirror, as users of one set it
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    try:
        app = make_app(engine=None, model={"engine": "auto", "model": "selfrag/selfrag_llama2_7b"})
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, ModelSetupScreen) and app.screen.statuses,
                           timeout=120, what="the setup dialog's variants")
            dialog = app.screen
            assert "is not on this machine" in " ".join(screen_text(app).split())
            dialog.query_one("#variants").highlighted = [s.variant.name for s in dialog.statuses].index("gguf-q4_k_m")
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.generator_status[0] == "ready", timeout=120, what="the downloaded model")
            assert app.session.settings.model.engine == "llamacpp"
            assert app.session.settings.model.model.endswith("selfrag_llama2_7b.q4_k_m.gguf")
            assert "llamacpp" in locations.config_file().read_text(encoding="utf-8")
            assert any(method == "GET" and path.endswith(".gguf") for method, path, _ in hub.requests)
            await ask(pilot, LLAMAS)
            assert chat(app).answers
    finally:
        hub.close()


async def test_an_encrypted_pdf_is_unlocked_from_the_library_with_a_typed_password(make_app, empty_store, tmp_path):
    from ingest.pipeline import ingest_paths
    from pdf_factory import encrypted_pdf
    from selfrag_tui.tui.screens.password import PasswordScreen

    locked = encrypted_pdf(tmp_path / "statement.pdf", "heron-42", "The statement lists the kestrel fund.")
    assert "needs a password" in ingest_paths(empty_store, [locked]).failed[str(locked)]
    app = make_app(store=empty_store)
    async with app.run_test(size=SIZE) as pilot:
        await ready(pilot)
        await pilot.press("f3")
        await wait_for(pilot, lambda: len(app.screen.documents) == 1, what="the library table")
        shown = " ".join(screen_text(app).split())
        assert "needs a password" in shown and "Press Enter to type its password" in shown

        async def unlock_with(password: str) -> str:
            before = app.session.last_ingest_report
            app.screen.query_one("#documents").focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, PasswordScreen), what="the password prompt")
            prompt = " ".join(screen_text(app).split())
            assert "opens only with its password" in prompt or "did not open" in prompt
            await pilot.press(*password)
            assert password not in screen_text(app)  # the field is masked
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.session.last_ingest_report is not before
                           and not app.session.ingest_running, what="the file to be read again")
            await wait_for(pilot, lambda: app.screen.documents and app.screen.documents[0].status
                           == empty_store.document(str(locked)).status, what="the table to refresh")
            return screen_text(app)

        shown = await unlock_with("falcon-7")
        assert "wrong password" in shown and empty_store.document(str(locked)).status == "failed"
        assert "falcon-7" not in shown

        shown = await unlock_with("heron-42")
        assert empty_store.document(str(locked)).status == "ok" and "✓ ok" in shown
        assert [h.path for h in empty_store.search("kestrel fund", k=1, mode="fts")] == [str(locked)]
        assert "heron-42" not in shown and "heron-42" not in repr(app.workers)
