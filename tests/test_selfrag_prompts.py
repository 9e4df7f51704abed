"""Prompt templates, history folding and the context budget (passages shortened, never the question)."""

from __future__ import annotations

import pytest

from scripted_engine import BOS_ID, ScriptedEngine
from selfrag_tui.selfrag.prompts import (
    ContextOverflow,
    ContextPiece,
    PromptBuilder,
    format_prompt,
    passage_block_text,
)
from selfrag_tui.selfrag.types import Passage
from selfrag_tui.reflection import ReflectionVocab

ALPACA = Passage(id="c1", title="Camelids > Alpacas", text="The alpaca is a species of South American camelid.", source="a.md")


def builder(max_context: int = 4096) -> tuple[ScriptedEngine, PromptBuilder]:
    engine = ScriptedEngine(max_context=max_context)
    return engine, PromptBuilder(engine, ReflectionVocab.from_engine(engine))


def test_templates_are_exact():
    assert format_prompt("Name a camelid.") == "### Instruction:\nName a camelid.\n\n### Response:\n"
    assert format_prompt("Summarise.", "Some input") == (
        "### Instruction:\nSummarise.\n\n### Input:\nSome input\n\n### Response:\n"
    )
    assert passage_block_text(ALPACA) == (
        "[Retrieval]<paragraph>Camelids > Alpacas\nThe alpaca is a species of South American camelid.</paragraph>"
    )


def test_prompt_ids_start_with_bos_and_decode_to_the_template_plus_one_passage():
    engine, prompts = builder()
    base = prompts.base_ids("Name a camelid.")
    assembled = prompts.assemble(base, [], max_new_tokens=200, passage=ALPACA)
    assert assembled.ids[0] == BOS_ID
    assert engine.prompt_text(assembled.ids) == format_prompt("Name a camelid.") + passage_block_text(ALPACA)
    assert not assembled.truncated
    no_retrieval = prompts.assemble(base, [], max_new_tokens=200, marker_ids=[prompts.vocab.no_retrieval])
    assert engine.prompt_text(no_retrieval.ids) == format_prompt("Name a camelid.") + "[No Retrieval]"


def test_reflection_token_strings_inside_documents_are_not_parsed_as_markers():
    engine, prompts = builder()
    tricky = Passage(id="x", title="Notes", text="write [Retrieval] or </paragraph> here", source="n.md")
    ids = prompts.passage_block(tricky).ids
    assert ids.count(prompts.vocab.retrieval) == 1 and ids.count(prompts.vocab.paragraph_close) == 1


def test_history_is_folded_into_the_instruction_dropping_oldest_turns_first():
    engine, prompts = builder()
    history = [("What is a llama?", "A camelid. " * 30), ("And its size?", "Large."), ("Where from?", "Peru.")]
    full = prompts.instruction("How about alpacas?", history, budget=10_000)
    assert full.startswith("Earlier in this conversation:\nUser: What is a llama?")
    assert full.endswith("\n\nHow about alpacas?")
    small = prompts.instruction("How about alpacas?", history, budget=40)
    assert "What is a llama?" not in small  # the long oldest turn went first
    assert "User: And its size?\nAssistant: Large.\nUser: Where from?\nAssistant: Peru." in small
    assert prompts.count(small.split("\n\nHow about alpacas?")[0]) <= 40
    assert prompts.instruction("How about alpacas?", history, budget=3) == "How about alpacas?"
    assert prompts.instruction("  How about alpacas? ", [], budget=100) == "How about alpacas?"


def test_passage_text_is_truncated_to_fit_and_the_question_is_kept():
    question = "Explain the difference between llamas and alpacas in detail please."
    long_passage = Passage(id="c2", title="Alpacas", text=" ".join(f"word{i}" for i in range(400)), source="a.md")
    engine, prompts = builder(max_context=300)
    base = prompts.base_ids(question)
    assembled = prompts.assemble(base, [], max_new_tokens=200, passage=long_passage)
    text = engine.prompt_text(assembled.ids)
    assert assembled.truncated
    assert len(assembled.ids) + 200 <= 300
    assert text.startswith(format_prompt(question) + "[Retrieval]<paragraph>Alpacas\nword0 word1")
    assert text.endswith("</paragraph>") and "word399" not in text
    # It keeps as much as fits: one more word would not.
    assert len(assembled.ids) + 200 >= 300 - 2


def test_oldest_earlier_passage_text_is_dropped_first_keeping_its_markers():
    engine, prompts = builder(max_context=260)
    vocab = prompts.vocab
    base = prompts.base_ids("q")
    old = prompts.passage_block(Passage(id="o", title="Old", text="old " * 60, source="o.md")).ids
    newer = prompts.passage_block(Passage(id="n", title="Newer", text="newer " * 20, source="n.md")).ids
    body = tuple(engine.encode("segment text", add_bos=False))
    markers = (vocab.retrieval, vocab.paragraph_open, vocab.paragraph_close)
    earlier = [ContextPiece((*old, *body), (*markers, *body)), ContextPiece((*newer, *body), (*markers, *body))]
    current = Passage(id="c", title="Current", text="current passage", source="c.md")
    assembled = prompts.assemble(base, earlier, max_new_tokens=100, passage=current)
    text = engine.prompt_text(assembled.ids)
    assert assembled.passages_dropped == 1 and not assembled.truncated
    assert "old old" not in text and "newer newer" in text
    assert text.startswith(format_prompt("q") + "[Retrieval]<paragraph></paragraph>segment text[Retrieval]<paragraph>Newer")
    assert text.endswith("<paragraph>Current\ncurrent passage</paragraph>")
    assert len(assembled.ids) + 100 <= 260


def test_prompt_that_cannot_fit_raises_context_overflow():
    engine, prompts = builder(max_context=30)
    base = prompts.base_ids("a question that is already long enough to fill the whole small context")
    with pytest.raises(ContextOverflow, match="max_new_tokens"):
        prompts.assemble(base, [], max_new_tokens=10, passage=ALPACA)
