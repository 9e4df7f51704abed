"""Exports keep every verdict and every source with its file and page; the JSON reads back into answers."""

from __future__ import annotations

import json

from answer_factory import chit_chat_answer, retrieved_answer
from selfrag_tui.application.export import conversation_to_json, conversation_to_markdown, export_conversation
from selfrag_tui.application.history import HistoryStore, answer_from_dict


def _conversation(tmp_path, *answers):
    store = HistoryStore.open(tmp_path / "history.sqlite3")
    conversation_id = store.new_conversation(now=0.0)
    for answer in answers:
        store.add_turn(conversation_id, answer)
    return store.load(conversation_id)


def test_markdown_shows_decision_segments_with_verdicts_and_sources_with_location(tmp_path):
    markdown = conversation_to_markdown(_conversation(tmp_path, retrieved_answer(), chit_chat_answer()))

    assert "## 1. Can you tell me the difference between llamas and alpacas?" in markdown
    assert "**Retrieval:** retrieved: p([Retrieval])=0.93 > threshold 0.20 (adaptive)" in markdown
    assert ("Alpacas are smaller than llamas and are kept for their fibre. [1] _(Relevant (p=0.97, ISREL 0.97); "
            "Fully supported (p=0.91, ISSUP 0.93); Utility 5/5 (p=0.80, ISUSE +0.85))_") in markdown
    assert ("1. **Camelids > Alpacas** — `/docs/camelids.md`, Camelids > Alpacas; search #1; "
            "model verdict: Relevant (p=0.97, ISREL 0.97)") in markdown
    # Where search put a passage, as the app's source panel says; a passage saved without its rank keeps its score.
    assert ("2. **Bicycle Maintenance Handbook** — `/docs/bicycle_maintenance_handbook.pdf`, p. 3; score 0.201; "
            "model verdict: Irrelevant (p=0.96, ISREL 0.04)") in markdown
    assert "**Retrieval:** no retrieval: p([Retrieval])=0.03 ≤ threshold 0.20 (adaptive)" in markdown


def test_markdown_says_when_the_answer_is_not_to_be_taken_as_fact(tmp_path):
    markdown = conversation_to_markdown(_conversation(tmp_path, retrieved_answer(abstained=True)))

    assert "> **Not answered with confidence:** the best candidate is not supported." in markdown


def test_markdown_drops_escape_sequences_from_document_text(tmp_path):
    answer = retrieved_answer(question="What does \x1b[31mred\x1b[0m mean?\x07")

    markdown = conversation_to_markdown(_conversation(tmp_path, answer))

    assert "\x1b" not in markdown and "\x07" not in markdown
    assert "What does red mean?" in markdown


def test_json_holds_every_field_and_reads_back_into_the_same_answers(tmp_path):
    answers = (retrieved_answer(), chit_chat_answer())
    data = json.loads(conversation_to_json(_conversation(tmp_path, *answers)))

    assert data["format"] == "selfrag-chat.conversation/1"
    first = data["turns"][0]["answer"]
    assert first["passages"][1]["location"] == "p. 3"
    assert first["relevance_verdicts"]["chunk-bikes-7"]["relevance_token"] == "[Irrelevant]"
    assert first["segments"][0]["candidates"][0]["critique"]["probabilities"]["[Fully supported]"] == 0.91
    assert tuple(answer_from_dict(turn["answer"]) for turn in data["turns"]) == answers


def test_export_writes_markdown_and_json_side_by_side(tmp_path):
    conversation = _conversation(tmp_path, retrieved_answer())

    md_path, json_path = export_conversation(conversation, tmp_path / "out")

    assert md_path.name == f"can-you-tell-me-the-difference-between-llamas-and-{conversation.id}.md"
    assert md_path.with_suffix(".json") == json_path
    assert md_path.read_text(encoding="utf-8") == conversation_to_markdown(conversation)
    assert json.loads(json_path.read_text(encoding="utf-8"))["title"] == conversation.title
