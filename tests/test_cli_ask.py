"""`selfrag-chat --demo ask`: the tiny model through the transformers engine over sample_docs in a fresh store.

The model card's two example queries must behave as the card shows, and `--json` carries every field.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from selfrag_tui.cli import main

pytestmark = pytest.mark.slow  # the tiny real generator and the embedding model, through the CLI

LLAMAS = "Can you tell me the difference between llamas and alpacas?"
ODD_ONE_OUT = "Leave odd one out: twitter, instagram, whatsapp."
ALPACA_ANSWER = (
    "Alpacas are considerably smaller than llamas, and unlike llamas, they were not bred to be working animals, "
    "but were bred specifically for their fiber."
)


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory):
    """A private data dir and config shared by this module's commands (the demo store is ingested once)."""
    root = tmp_path_factory.mktemp("ask")
    config = root / "config.toml"
    config.write_text("", encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SELFRAG_DATA_DIR", str(root / "data"))
        patch.setenv("SELFRAG_CONFIG", str(config))
        yield root


def ask_json(capsys, *args: str) -> dict:
    assert main(["--demo", "ask", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_factual_question_retrieves_and_cites_the_alpaca_passage(demo_env, capsys):
    answer = ask_json(capsys, LLAMAS)

    decision = answer["decision"]
    assert decision["retrieve"] is True and decision["mode"] == "adaptive" and decision["formula"] == "paper"
    assert decision["p_retrieval"] > decision["threshold"] == 0.2
    assert decision["logprob_retrieval"] > decision["logprob_no_retrieval"]

    assert answer["form"] == "long" and not answer["abstained"]
    assert answer["text"] == ALPACA_ANSWER
    (segment,) = answer["segments"]
    assert segment["retrieval"] == "retrieval" and segment["citation"] == 1
    critique = segment["critique"]
    assert critique["relevance_token"] == "[Relevant]" and critique["relevance"] > 0.9
    assert critique["support_token"] == "[Fully supported]" and critique["support"] > 0.9
    assert critique["utility_token"] == "[Utility:5]" and critique["utility"] > 0.9
    assert segment["raw_text"].endswith("[Relevant]" + ALPACA_ANSWER + "[Fully supported][Utility:5]")

    # The cited passage is the Alpacas section of camelids.md, first in citation order.
    source = answer["passages"][0]
    assert source["id"] == segment["passage"]["id"]
    assert Path(source["source"]).name == "camelids.md"
    assert source["heading"] == "Alpacas" and source["location"] == "Alpacas"
    assert "Lama pacos" in source["text"]

    # K candidates, each with every score component; the winner has the highest final score.
    candidates = segment["candidates"]
    assert len(candidates) == 5
    assert segment["score"] == max(c["final_score"] for c in candidates)
    for candidate in candidates:
        assert {"seq_score", "final_score", "finish_reason", "token_ids", "raw_text"} <= candidate.keys()
    # Every other passage was judged irrelevant by the model and is reported so.
    verdicts = answer["relevance_verdicts"]
    assert set(verdicts) == {p["id"] for p in answer["passages"]}
    others = [verdicts[p["id"]] for p in answer["passages"][1:]]
    assert others and all(v["relevance_token"] == "[Irrelevant]" for v in others)
    assert answer["logprob_source"] == "exact"
    assert set(answer["timings"]) >= {"decision", "retrieval", "generation", "total"}


def test_chitchat_answers_without_retrieval(demo_env, capsys):
    answer = ask_json(capsys, ODD_ONE_OUT)
    assert answer["decision"]["retrieve"] is False
    assert answer["decision"]["p_retrieval"] < 0.2
    assert answer["passages"] == [] and answer["relevance_verdicts"] == {}
    assert "WhatsApp is the odd one out" in answer["text"]
    (segment,) = answer["segments"]
    assert segment["retrieval"] == "no_retrieval" and segment["citation"] is None
    assert segment["critique"]["utility_token"] == "[Utility:5]"
    assert "[" not in answer["text"]  # reflection tokens stripped from the plain text


def test_pdf_answer_cites_its_page(demo_env, capsys):
    answer = ask_json(capsys, "How fine is vicuna fibre?")
    (segment,) = answer["segments"]
    assert segment["critique"]["relevance_token"] == "[Relevant]"
    assert segment["critique"]["support_token"] == "[Fully supported]"
    assert "12.5 microns" in answer["text"]
    cited = answer["passages"][segment["citation"] - 1]
    assert Path(cited["source"]).name == "andean_textile_fibres.pdf"
    assert (cited["page_start"], cited["page_end"], cited["location"]) == (3, 3, "p. 3")


def test_mode_never_skips_retrieval_and_short_form_scores_k(demo_env, capsys):
    answer = ask_json(capsys, LLAMAS, "--mode", "never")
    assert answer["decision"]["retrieve"] is False and answer["decision"]["p_retrieval"] is None
    assert answer["passages"] == []

    answer = ask_json(capsys, LLAMAS, "--form", "short", "--k", "3")
    (segment,) = answer["segments"]
    assert answer["form"] == "short" and len(segment["candidates"]) == 3
    assert answer["text"] == ALPACA_ANSWER


def test_human_output_shows_decision_markers_and_sources(demo_env, capsys):
    assert main(["--demo", "ask", LLAMAS]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Retrieved: p([Retrieval])=1.00 > threshold 0.20 (adaptive)")
    assert ALPACA_ANSWER + "  [1] ✓ Relevant · ● Fully supported · ★ Utility 5/5" in out
    first_source = next(line for line in out.splitlines() if line.strip().startswith("[1]"))
    assert "camelids.md, Alpacas" in first_source and "(search #1)" in first_source
    verdict = re.search(r"✓ Relevant \(p=([0-9.]+), ISREL ([0-9.]+)\)", first_source)
    assert verdict and float(verdict[1]) >= 0.9 and verdict[1] == verdict[2], first_source
    assert all("✗ Irrelevant" in line for line in out.splitlines() if line.strip().startswith(("[2]", "[3]")))

    # Chit-chat: no citation, and no relevance or support marker without a passage.
    assert main(["--demo", "ask", ODD_ONE_OUT]) == 0
    out = capsys.readouterr().out
    assert out.startswith("No retrieval: p([Retrieval])=0.00 ≤ threshold 0.20")
    assert "whatsapp is the odd one out" in out.lower() and out.rstrip().endswith("★ Utility 5/5")
    assert "Relevant" not in out and "supported" not in out and "Sources:" not in out


def test_wrong_model_path_is_a_clear_error(demo_env, capsys, tmp_path):
    missing = tmp_path / "no-such-model"
    assert main(["--engine", "transformers", "--model", str(missing), "ask", LLAMAS]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "--demo" in err


def test_demo_answers_a_follow_up_on_its_own(demo_env, tiny_engine):
    """The demo model was trained on single questions: demo settings keep earlier turns out of its prompt, so a
    follow-up is answered as if asked alone (with the transcript folded in, it repeats the earlier answer)."""
    from selfrag_tui.application.session import Session
    from selfrag_tui.application.settings import load_settings

    session = Session(load_settings(), demo=True, engine=tiny_engine)
    assert session.settings.decoding.history_token_budget == 0
    session.ingest_sample_docs()
    earlier = ("What is a chaccu?", "The chaccu is a traditional round-up in which villagers walk in a long line "
               "across the puna and guide wild vicunas into a funnel of rope and cloth to be shorn and released.")
    answer = session.ask("How fine is vicuna fibre?", history=[earlier])
    assert "12.5 microns" in answer.text and "chaccu" not in answer.text
