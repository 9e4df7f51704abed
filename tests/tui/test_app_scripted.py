"""The app's behaviour, screen by screen, driven the way a user drives it, over a scripted engine and scripted
passages (tests/tui/scripted_world.py): no model is loaded, so these run in seconds. The real generator, the real
embedding model and a real store are exercised end to end by test_app.py."""

from __future__ import annotations

import json

from scripted_world import ALPACA_ANSWER, BREAD, HELLO, LLAMAS
from tui_helpers import ask, chat, notifications_shown, screen_text, wait_for

from selfrag_tui.application import locations
from selfrag_tui.tui.screens.candidates import CandidatesScreen
from selfrag_tui.tui.screens.passage import PassageScreen
from selfrag_tui.tui.widgets.segment_view import SegmentView
from selfrag_tui.tui.widgets.turn_view import TurnView

SIZE = (160, 48)


def turn_text(app, index: int = -1) -> str:
    view = list(chat(app).query(TurnView))[index]
    return "\n".join(str(widget.render()) for widget in view.query("Static"))


async def started(pilot) -> None:
    app = pilot.app
    await wait_for(pilot, lambda: app.store_status[0] == "ready", what="the store")


async def test_a_retrieved_answer_shows_decision_markers_sources_and_candidates(scripted_app):
    app = scripted_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await started(pilot)
        await ask(pilot, LLAMAS)

        shown = " ".join(screen_text(app).split())
        assert "⟳ RETRIEVED p([Retrieval])=0.95 > threshold 0.20 (adaptive)" in shown
        words = " ".join(turn_text(app).split())
        assert ALPACA_ANSWER in words
        assert "[1] ✓ Relevant · ● Fully supported · ★ Utility 5/5" in words
        # The source panel lists every retrieved passage with its file, heading and the model's verdict.
        assert "camelids.md, Camelids > Alpacas" in shown
        assert "search #4 · ✗ Irrelevant 0.96" in shown and "search #1 · ✓ Relevant 0.97" in shown

        view = next(v for v in chat(app).query(SegmentView) if v.segment.citation == 1)
        view.focus()
        await pilot.pause(0.1)
        assert chat(app).query_one("#source-list").highlighted == 0
        detail = str(chat(app).query_one("#critique-detail").render())
        assert "p=0.97" in detail  # the probability behind ✓ Relevant

        await pilot.press("ctrl+l", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, PassageScreen), what="the passage")
        shown = screen_text(app)
        assert f"File: {locations.sample_docs_path() / 'camelids.md'}" in shown
        assert "Alpacas are considerably smaller than llamas" in " ".join(shown.split())
        assert "Search rank: 1 (score 0.031)" in shown
        await pilot.press("escape")

        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: isinstance(app.screen, CandidatesScreen), what="the candidate view")
        shown = screen_text(app)
        assert shown.count("★ chosen") == 1
        assert len(app.screen.query(".candidate")) == 4


async def test_markers_cycle_full_compact_plain(scripted_app):
    app = scripted_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await started(pilot)
        await ask(pilot, LLAMAS)
        assert "✓ Relevant" in turn_text(app)
        await pilot.press("ctrl+t")
        assert "✓rel" in turn_text(app) and "✓ Relevant" not in turn_text(app)
        await pilot.press("ctrl+t")
        assert "✓" not in turn_text(app) and "[1]" not in turn_text(app)
        await pilot.press("ctrl+t")
        assert "✓ Relevant" in turn_text(app)


async def test_an_answer_without_retrieval_says_so(scripted_app, world):
    app = scripted_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await started(pilot)
        await ask(pilot, HELLO)
        shown = " ".join(screen_text(app).split())
        assert "∅ NO RETRIEVAL" in shown and "≤ threshold 0.20 (adaptive)" in shown
        assert "Sources — none (answered without retrieving)" in shown
        assert "WhatsApp is the odd one out" in shown
        assert world.queries == []


async def test_irrelevant_passages_make_the_answer_abstain_instead_of_stating_it(scripted_app):
    app = scripted_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await started(pilot)
        await ask(pilot, BREAD)
        answer = chat(app).answers[-1]
        assert answer.abstained
        words = " ".join(turn_text(app).split())
        assert "None of the 2 retrieved passages was judged relevant" in words


async def test_escape_cancels_a_turn_and_puts_the_question_back(scripted_app, world):
    app = scripted_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await started(pilot)
        world.engine.hold()
        prompt = chat(app).query_one("#prompt")
        prompt.value = LLAMAS
        await pilot.press("enter")
        await wait_for(pilot, lambda: world.engine.entered.is_set(), what="the generation to start")
        assert chat(app).query(TurnView)
        await pilot.press("escape")
        await pilot.pause(0.2)
        assert not chat(app).query(TurnView)
        assert prompt.value == LLAMAS
        world.engine.release()
        await pilot.pause(0.3)
        assert not chat(app).query(TurnView), "a late event must not bring the cancelled turn back"
        assert app.session.conversations() == []


async def test_a_failed_turn_says_why_and_keeps_the_question(scripted_app, world):
    app = scripted_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await started(pilot)
        world.fail_retrieval = "the store folder /mnt/notes is not mounted"
        await ask(pilot, LLAMAS)
        assert not chat(app).query(TurnView)
        assert chat(app).query_one("#prompt").value == LLAMAS
        toasts = " ".join(notifications_shown(app).split())
        assert "The answer failed" in toasts and "/mnt/notes is not mounted" in toasts


async def test_a_question_asked_while_the_model_loads_waits_and_is_answered(scripted_app, world):
    app = scripted_app(engine=None)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await started(pilot)
        prompt = chat(app).query_one("#prompt")
        prompt.value = LLAMAS
        await pilot.press("enter")
        await wait_for(pilot, lambda: "waiting for the model to load" in turn_text(app), what="the waiting note")
        assert prompt.value == "", "the question is taken, not bounced back"

        app.session.attach_engine(world.engine, "scripted model")
        await wait_for(pilot, lambda: chat(app).running_key is None, what="the answer")
        assert "[1] ✓ Relevant" in turn_text(app)
        assert app.generator_status == ("ready", "scripted model")


async def test_changed_settings_apply_to_the_rerun_and_are_saved(scripted_app):
    app = scripted_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await started(pilot)
        await ask(pilot, LLAMAS)
        await pilot.press("f4")
        app.screen.query_one("#setting-decoding-mode").value = "never"
        app.screen.query_one("#setting-decoding-k").value = "3"
        app.screen.query_one("#setting-store-rerank").value = False
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: len(chat(app).answers) == 2 and chat(app).running_key is None,
                       what="the re-run", timeout=20)
        first, second = chat(app).answers
        assert second.question == first.question
        assert not second.decision.retrieve and second.decision.mode == "never"
        assert app.session.settings.decoding.k == 3
        assert app.session.settings.store.rerank is False
        saved = locations.config_file().read_text(encoding="utf-8")
        assert 'mode = "never"' in saved and "k = 3" in saved and "rerank = false" in saved
        assert "threshold" not in saved, "only the changed settings are written"


async def test_an_out_of_range_setting_is_refused_with_its_name_and_range(scripted_app):
    app = scripted_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await started(pilot)
        await pilot.press("f4")
        app.screen.query_one("#setting-decoding-threshold").value = "7"
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: "Settings not applied" in notifications_shown(app), what="the refusal")
        toasts = " ".join(notifications_shown(app).split())
        assert "decoding.threshold = 7" in toasts and "0 to 1" in toasts
        assert app.session.settings.decoding.threshold == 0.2
        assert locations.config_file().read_text(encoding="utf-8") == ""


async def test_every_setting_description_is_shown_whole(scripted_app):
    """A description longer than its column wraps onto the next lines instead of being cut mid-sentence."""
    from selfrag_tui.tui.screens.settings import _help, form_fields

    app = scripted_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("f4")
        await pilot.pause(0.2)
        body = app.screen.query_one("#settings-body")
        shown = ""
        for y in range(0, body.virtual_size.height, max(body.size.height - 1, 1)):
            body.scroll_to(y=y, animate=False)
            await pilot.pause(0.05)
            shown += " " + screen_text(app)
        words = " ".join(shown.split())
        long_ones = [_help(spec) for spec in form_fields() if len(_help(spec)) > 100]
        assert long_ones
        for text in long_ones:
            assert " ".join(text.split()) in words, text


async def test_the_key_help_shows_every_binding_id_and_description_whole(scripted_app):
    """F1 lists each action with the id to remap it under ([ui.keybindings]) and what it does; at the default
    size neither is cut off."""
    from selfrag_tui.tui.actions import ACTIONS

    app = scripted_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await pilot.press("f1")
        await pilot.pause(0.2)
        rows = screen_text(app).splitlines()
        for spec in ACTIONS:
            row = next((line for line in rows if f" {spec.id} " in line), None)
            assert row is not None, f"{spec.id} not shown whole"
            assert f"{spec.title}: {spec.help}" in row, row


async def test_a_saved_conversation_reopens_continues_and_exports(scripted_app):
    app = scripted_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await started(pilot)
        await ask(pilot, LLAMAS)
        shown_before = turn_text(app)
        await pilot.press("ctrl+n")
        assert not chat(app).query(TurnView)

        await pilot.press("f5")
        assert LLAMAS in screen_text(app)
        await pilot.press("enter")
        await wait_for(pilot, lambda: bool(chat(app).query(TurnView)), what="the conversation to reopen")
        assert app.screen is chat(app)
        assert turn_text(app) == shown_before

        await ask(pilot, HELLO)
        (summary,) = app.session.conversations()
        assert summary.turn_count == 2, "a new question continues the reopened conversation"

        await pilot.press("ctrl+s")
        exported = sorted((locations.data_dir() / "exports").iterdir())
        assert [p.suffix for p in exported] == [".json", ".md"]
        markdown = exported[1].read_text(encoding="utf-8")
        assert LLAMAS in markdown and "camelids.md" in markdown and "model verdict:" in markdown
        data = json.loads(exported[0].read_text(encoding="utf-8"))
        assert data["turns"][0]["answer"]["decision"]["retrieve"] is True


async def test_deleting_the_open_conversation_starts_a_new_one_on_the_next_question(scripted_app):
    app = scripted_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await started(pilot)
        await ask(pilot, LLAMAS)
        await pilot.press("f5")
        await pilot.press("delete")
        assert app.session.conversations() == []
        await pilot.press("f2")
        await ask(pilot, HELLO)
        (summary,) = app.session.conversations()
        assert summary.turn_count == 1


async def test_every_action_is_in_the_palette_and_keys_remap_from_the_config(scripted_app):
    locations.config_file().write_text('[ui.keybindings]\ntoggle_markers = "f6"\n', encoding="utf-8")
    app = scripted_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await started(pilot)
        await ask(pilot, LLAMAS)
        await pilot.press("f6")
        assert "✓rel" in turn_text(app)

        await pilot.press("ctrl+p")
        await pilot.press(*"Markers")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: "✓" not in turn_text(app), what="the palette command (plain markers)")

        await pilot.press("f1")
        help_text = screen_text(app)
        assert "f6" in help_text and "toggle_markers" in help_text


async def test_the_demo_welcome_says_what_the_demo_knows_and_asks_an_example_with_one_key(world, history):
    from selfrag_tui.application.demo import DEMO_QUESTIONS
    from selfrag_tui.application.session import Session
    from selfrag_tui.application.settings import resolve
    from selfrag_tui.tui.app import SelfRagApp

    session = Session(resolve(), demo=True, engine=world.engine, history=history, retriever=world.retrieve)
    app = SelfRagApp(session, load_generator=False)
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        shown = " ".join(screen_text(app).split())
        assert "It knows only the sample documents" in shown and "a bicycle maintenance handbook" in shown
        assert f"1 {DEMO_QUESTIONS[0]}" in shown
        await pilot.press("1", "enter")
        await wait_for(pilot, lambda: bool(chat(app).answers), what="the example's answer")
        assert chat(app).answers[0].question == DEMO_QUESTIONS[0]
        assert "It knows only the sample documents" not in screen_text(app)


async def test_without_demo_typing_goes_straight_to_the_prompt(scripted_app):
    app = scripted_app()
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        assert "It knows only the sample documents" not in screen_text(app)
        await pilot.press(*"llamas")
        assert chat(app).query_one("#prompt").value == "llamas"


async def test_an_answer_cut_by_the_token_limit_says_so(scripted_app):
    app = scripted_app(decoding={"max_new_tokens": 6, "form": "short"})
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        await ask(pilot, LLAMAS)
        answer = chat(app).answers[-1]
        assert answer.cut
        words = " ".join(turn_text(app).split())
        assert "✂ Cut off:" in words and answer.cut_reason in words


async def test_a_model_that_is_not_there_opens_the_setup_dialog_with_every_way_forward(scripted_app, tmp_path):
    from selfrag_tui.tui.screens.model_setup import ModelSetupScreen

    missing = tmp_path / "selfrag-7b"
    app = scripted_app(engine=None, load_generator=True, model={"engine": "transformers", "model": str(missing)})
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ModelSetupScreen), timeout=120, what="the setup dialog")
        await wait_for(pilot, lambda: "Recommended here:" in screen_text(app), what="the variants")
        shown = " ".join(screen_text(app).split())
        assert f"model folder {missing} does not exist" in shown
        for name in ("hf", "gguf-q8_0", "gguf-q5_k_m", "gguf-q4_k_m"):
            assert name in shown
        assert "★ recommended" in shown and ("· fits" in shown or "does not fit" in shown)
        assert "D demo model now" in shown and "S a server URL" in shown and "P a folder or .gguf" in shown

        # A server that is not there: the dialog says so and stays, nothing changes.
        await pilot.press("s")
        await pilot.press(*"http://127.0.0.1:9/v1", "enter")
        await wait_for(pilot, lambda: "127.0.0.1:9" in str(app.screen.query_one("#setup-outcome").render()),
                       timeout=60, what="the server check")
        assert isinstance(app.screen, ModelSetupScreen)
        assert app.session.settings.model.model == str(missing)

        # A folder that is not a model: said in words.
        await pilot.press("p")
        await pilot.press(*str(tmp_path), "enter")
        await wait_for(pilot, lambda: str(tmp_path) in str(app.screen.query_one("#setup-outcome").render()),
                       timeout=60, what="the folder check")
        assert locations.config_file().read_text(encoding="utf-8") == "", "nothing was saved"

        await pilot.press("escape")
        assert not isinstance(app.screen, ModelSetupScreen)


async def test_keys_typed_faster_than_the_focus_moves_all_reach_the_prompt(world, history):
    """The prompt has the focus from the start. Keys sent in one burst while another widget has the focus (as a
    terminal delivers a fast typist's or a paste's keys) all reach the prompt, in order, although the focus moves
    to it after the first one."""
    from textual import events
    from textual.widgets import Input

    from selfrag_tui.application.demo import DEMO_QUESTIONS
    from selfrag_tui.application.session import Session
    from selfrag_tui.application.settings import resolve
    from selfrag_tui.tui.app import SelfRagApp
    from selfrag_tui.tui.screens.chat import ExampleQuestions

    session = Session(resolve(), demo=True, engine=world.engine, history=history, retriever=world.retrieve)
    app = SelfRagApp(session, load_generator=False)
    question = "what's the admin address of my router?"
    async with app.run_test(size=SIZE) as pilot:
        await started(pilot)
        prompt = chat(app).query_one("#prompt", Input)
        assert app.focused is prompt
        chat(app).query_one(ExampleQuestions).focus()
        await pilot.pause(0.1)
        for character in question:
            app.post_message(events.Key(character, character))
        await wait_for(pilot, lambda: prompt.value == question, what=f"the whole question in the prompt "
                                                                      f"({prompt.value!r} so far)")
        assert app.focused is prompt
        # The race itself, made certain: keys the examples list received before the focus moved, handled after.
        examples = chat(app).query_one(ExampleQuestions)
        for character in " now":
            examples.post_message(events.Key(character, character))
        await wait_for(pilot, lambda: prompt.value == question + " now", what=f"the late keys in the prompt "
                                                                               f"({prompt.value!r} so far)")
        # A question's number and Enter ask that example.
        prompt.value = ""
        await pilot.press("1", "enter")
        await wait_for(pilot, lambda: bool(chat(app).answers), what="the example's answer")
        assert chat(app).answers[0].question == DEMO_QUESTIONS[0]
