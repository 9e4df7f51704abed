"""The tiny demo model on questions it was never trained on, asked through the app (Session.ask, demo settings).

A model that memorised which question goes with which answer judges a passage by the question it recognises: asked
in new words it calls an unrelated passage `[Relevant]`, marks the answer `[Fully supported]` and does not abstain.
These tests ask a fixed sample of the held-out questions of scripts/sample_qa.json (never trained on) and require
that the judgements follow the passage in front of the model. The full held-out table is in the model's README and
in training_manifest.json; `python scripts/tiny_eval.py` reproduces it.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent


def _load_script(name: str):
    path = ROOT / "scripts" / f"{name}.py"
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_eval():
    return _load_script("tiny_eval")


@pytest.fixture(scope="module")
def demo_session(tiny_engine, tmp_path_factory):
    """A demo session over sample_docs in a fresh store, answering with the shared tiny engine."""
    from selfrag_tui.application.session import Session
    from selfrag_tui.application.settings import Settings

    root = tmp_path_factory.mktemp("held-out")
    config = root / "config.toml"
    config.write_text("", encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SELFRAG_DATA_DIR", str(root / "data"))
        patch.setenv("SELFRAG_CONFIG", str(config))
        session = Session(Settings(), demo=True, engine=tiny_engine)
        session.ingest_sample_docs()
        yield session
        session.close()


# A fixed sample of the held-out questions: every fifth paraphrase (eight facts across all six documents' topics)
# and one off-topic and one near-miss question.
PARAPHRASE_SAMPLE = slice(0, None, 5)
UNANSWERABLE_SAMPLE = ("Who won the 2014 World Cup?", "How long is an alpaca pregnant?")


@pytest.fixture(scope="module")
def held_out(tiny_eval):
    entries = tiny_eval.questions()
    paraphrases = [e for e in entries if e["kind"] == "paraphrase"][PARAPHRASE_SAMPLE]
    unanswerable = [e for e in entries if e["question"] in UNANSWERABLE_SAMPLE]
    assert len(unanswerable) == len(UNANSWERABLE_SAMPLE), "a sampled held-out question left sample_qa.json"
    return paraphrases, unanswerable


@pytest.fixture(scope="module")
def results(tiny_eval, demo_session, held_out):
    paraphrases, unanswerable = held_out
    return [tiny_eval.ask(demo_session, entry) for entry in [*paraphrases, *unanswerable]]


def test_held_out_questions_were_never_trained_on(tiny_eval, held_out):
    manifest = json.loads((ROOT / "selfrag_tui/models/tiny-selfrag/training_manifest.json").read_text("utf-8"))
    trained = {plan["question"] for plan in manifest["plans"]} | {p["question"] for p in manifest["unanswerable"]}
    held = [e["question"] for e in tiny_eval.questions()]
    assert held and not set(held) & trained
    assert set(manifest["held_out"]) == set(held)


# The goal is none: ✓ Relevant with ● Fully supported never shown for a passage without the answer, and no answer
# taken from such a passage without abstaining. The shipped weights miss it on 1 of the 46 held-out questions (the
# README's table: "What is the router's serial number?", not in this sample), so the sample holds them to none.
WRONG_RELEVANT_SUPPORTED_AT_MOST = 0


def test_a_wrong_passage_is_hardly_ever_relevant_and_fully_supported(results):
    """The promise of the markers, as far as the shipped demo weights keep it (see above)."""
    wrong_supported = [(r.question, r.text) for r in results if r.wrong_relevant_supported]
    answered_from_wrong = [(r.question, r.text) for r in results if r.answered_from_wrong]
    assert len(wrong_supported) <= WRONG_RELEVANT_SUPPORTED_AT_MOST, wrong_supported
    assert len(answered_from_wrong) <= WRONG_RELEVANT_SUPPORTED_AT_MOST, answered_from_wrong


# Any answer shown that is not the right one, whichever passage it cites: the sample's "Is an alpaca just a small
# llama?" gets another sentence of the right passage, marked Relevant and Fully supported (3 of the 46 held-out
# questions in the README's table).
WRONG_ANSWER_SHOWN_AT_MOST = 1


def test_a_wrong_answer_is_hardly_ever_shown_without_abstaining(results):
    """The rows above count the passage cited; a user reads the answer. One that is not the fact asked for, from
    the right passage or not, is the same confident wrong answer."""
    shown = [(r.question, r.text) for r in results if r.wrong_answer_shown]
    assert len(shown) <= WRONG_ANSWER_SHOWN_AT_MOST, shown


def test_wrong_passages_are_judged_irrelevant(results, tiny_eval):
    wrong = [v for r in results for v in r.wrong_passages]
    irrelevant = sum(v <= tiny_eval.RELEVANT for v in wrong)
    assert len(wrong) >= 4 * len(results)
    assert irrelevant >= 0.95 * len(wrong), f"{irrelevant}/{len(wrong)} wrong passages judged irrelevant"


def test_unanswerable_questions_retrieve_and_abstain(results):
    unanswerable = [r for r in results if not r.answerable]
    for result in unanswerable:
        assert result.retrieved, result.question
        assert result.abstained, (result.question, result.text)
        assert not result.right_passages


def test_paraphrases_find_and_judge_their_passage(results, tiny_eval):
    """Reworded questions still retrieve; the passage holding the answer is judged relevant for most of them, and
    an answer that is not the right one is flagged rather than presented as fact."""
    paraphrases = [r for r in results if r.answerable]
    assert all(r.retrieved for r in paraphrases)
    with_right = [r for r in paraphrases if r.right_passages]
    judged = sum(max(r.right_passages) > tiny_eval.RELEVANT for r in with_right)
    right = sum(r.right_answer for r in paraphrases)
    assert judged >= 0.6 * len(with_right), f"{judged}/{len(with_right)} right passages judged relevant"
    assert right >= 0.5 * len(paraphrases), f"{right}/{len(paraphrases)} right answers"


def test_a_newcomers_first_question_is_answered_from_the_garden_notes(tiny_eval, demo_session):
    """Asked in everyday words, the watering question cites garden_watering.txt, and the passages about sourdough
    or fibre that the search also returns are judged irrelevant."""
    answer = demo_session.ask("How often should I water tomatoes in summer?")
    assert answer.decision.retrieve and not answer.abstained
    assert answer.text == "In summer it runs twice a day, at 06:30 and at 19:00, for eight minutes each time."
    (segment,) = answer.segments
    assert Path(segment.passage.source).name == "garden_watering.txt"
    assert segment.critique.relevance_token == "[Relevant]"
    assert segment.critique.support_token == "[Fully supported]"
    others = [p for p in answer.passages if p.id != segment.passage.id]
    assert others
    for passage in others:
        assert answer.relevance_verdicts[passage.id].relevance <= tiny_eval.RELEVANT, passage.source


def test_readme_shows_the_figures_of_the_shipped_weights():
    """The held-out table in the README is the one measured for these weights (training_manifest.json)."""
    model = ROOT / "selfrag_tui/models/tiny-selfrag"
    manifest = json.loads((model / "training_manifest.json").read_text(encoding="utf-8"))
    readme = (model / "README.md").read_text(encoding="utf-8")
    figures = manifest["held_out_figures"]
    assert figures
    for name, value in figures.items():
        assert any(name in line and f"| {value} |" in line for line in readme.splitlines()), (name, value)


def test_every_welcome_question_is_answered_from_its_document(demo_session):
    """The questions the demo's welcome offers (one key each) are answered, not abstained on: a newcomer's first
    key press shows the model retrieving, judging and citing. Factual ones cite the sample document that holds the
    answer, with [Relevant] and [Fully supported]."""
    from selfrag_tui.application.demo import DEMO_QUESTIONS

    for question in DEMO_QUESTIONS:
        answer = demo_session.ask(question)
        assert not answer.abstained and answer.text, (question, answer.text)
        if answer.decision.retrieve:
            for segment in answer.segments:
                assert segment.critique.relevance_token == "[Relevant]", (question, segment.text)
                assert segment.critique.support_token == "[Fully supported]", (question, segment.text)
