"""Conversations persist with every decision, segment, critique and source, and reopen exactly."""

from __future__ import annotations

import sqlite3

import pytest

from answer_factory import chit_chat_answer, retrieved_answer
from selfrag_tui.application.history import HistoryStore, answer_from_dict


@pytest.fixture
def history(tmp_path):
    store = HistoryStore.open(tmp_path / "history.sqlite3")
    yield store
    store.close()


def test_a_saved_turn_reopens_equal_to_the_answer_shown(history):
    answer = retrieved_answer()
    conversation_id = history.new_conversation()
    history.add_turn(conversation_id, answer, settings={"k": 5, "mode": "adaptive"})

    reopened = history.load(conversation_id)

    assert reopened.turns[0].answer == answer
    assert reopened.turns[0].settings == {"k": 5, "mode": "adaptive"}
    assert reopened.turns[0].answer.segments[0].candidates[1].passage.page_start == 3


def test_first_question_names_the_conversation_and_turns_keep_their_order(history):
    conversation_id = history.new_conversation()
    history.add_turn(conversation_id, retrieved_answer(), now=10.0)
    history.add_turn(conversation_id, chit_chat_answer(), now=20.0)

    conversation = history.load(conversation_id)

    assert conversation.title == "Can you tell me the difference between llamas and alpacas?"
    assert [t.question for t in conversation.turns] == [
        "Can you tell me the difference between llamas and alpacas?",
        "Leave odd one out: twitter, instagram, whatsapp.",
    ]
    assert conversation.chat_history()[1] == (
        "Leave odd one out: twitter, instagram, whatsapp.", "WhatsApp is the odd one out: it is a messaging app.")


def test_list_puts_the_most_recently_used_conversation_first(history):
    older = history.new_conversation(now=1.0)
    newer = history.new_conversation(now=2.0)
    history.add_turn(older, chit_chat_answer(), now=3.0)

    summaries = history.list_conversations()

    assert [s.id for s in summaries] == [older, newer]
    assert summaries[0].turn_count == 1 and summaries[1].turn_count == 0


def test_sources_and_verdicts_are_readable_as_plain_tables(history):
    conversation_id = history.new_conversation()
    history.add_turn(conversation_id, retrieved_answer())

    rows = [dict(row) for row in history.iter_sources(conversation_id)]

    assert [(r["citation"], r["path"], r["page_start"], r["relevance_token"]) for r in rows] == [
        (1, "/docs/camelids.md", None, "[Relevant]"),
        (2, "/docs/bicycle_maintenance_handbook.pdf", 3, "[Irrelevant]"),
    ]
    db = sqlite3.connect(history.path)
    turn = db.execute("SELECT retrieved, p_retrieval, threshold, mode FROM turns").fetchone()
    segment = db.execute("SELECT citation, support_token, utility_token FROM segments").fetchone()
    assert turn == (1, 0.93, 0.2, "adaptive")
    assert segment == (1, "[Fully supported]", "[Utility:5]")


def test_deleting_a_conversation_deletes_its_turns_segments_and_sources(history):
    conversation_id = history.new_conversation()
    history.add_turn(conversation_id, retrieved_answer())

    history.delete(conversation_id)

    db = sqlite3.connect(history.path)
    db.execute("PRAGMA foreign_keys = ON")
    counts = [db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("turns", "segments", "sources")]
    assert counts == [0, 0, 0]
    with pytest.raises(KeyError, match=str(conversation_id)):
        history.load(conversation_id)


def test_a_history_file_from_a_newer_version_is_refused_with_the_file_named(tmp_path):
    path = tmp_path / "history.sqlite3"
    HistoryStore.open(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()

    with pytest.raises(RuntimeError, match="history.sqlite3.*newer selfrag-chat"):
        HistoryStore.open(path)


def test_answers_read_back_ignore_fields_they_do_not_know():
    data = retrieved_answer().to_dict()
    data["from_a_later_version"] = 1
    data["segments"][0]["critique"]["another_score"] = 0.5

    assert answer_from_dict(data) == retrieved_answer()


def test_history_and_export_import_no_textual():
    import subprocess
    import sys

    code = ("import sys, selfrag_tui.application.history, selfrag_tui.application.export; "
            "print(sorted(m for m in ('textual', 'torch', 'lancedb') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "[]"
