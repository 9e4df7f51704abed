"""What an answer says about itself where people read it: `ask` prints a cut answer with a note, and
`ask --json` (Answer.to_dict) carries the cut fields, which the history reads back."""

from __future__ import annotations

import json
import math

from answer_factory import retrieved_answer
from scripted_engine import ScriptedEngine, eos, reply, words
from selfrag_tui.application.history import answer_from_dict
from selfrag_tui.commands.ask import format_answer
from selfrag_tui.selfrag.decoder import SelfRagDecoder
from selfrag_tui.selfrag.prompts import format_prompt
from selfrag_tui.selfrag.settings import DecodingSettings

Q = "List the camelids."
SKIP = {"[Retrieval]": math.log(0.01), "[No Retrieval]": math.log(0.9)}


def cut_answer():
    engine = ScriptedEngine().decide(format_prompt(Q), SKIP)
    engine.on("[No Retrieval]", reply(words("Llamas, alpacas, guanacos, vicunas, camels and more."), eos()))
    decoder = SelfRagDecoder(engine, lambda query, k: [])
    return decoder.answer(Q, settings=DecodingSettings(max_new_tokens=4, max_segments=2))


def test_a_cut_answer_says_so_in_the_terminal_and_in_json():
    answer = cut_answer()
    assert answer.text == "Llamas, alpacas, guanacos,"  # 8 tokens: the budget of 2 segments x 4
    printed = format_answer(answer)
    assert "Llamas, alpacas, guanacos," in printed
    note = next(line for line in printed.splitlines() if line.startswith("Cut short: "))
    assert "limit of 8 generated tokens" in note and "decoding.max_new_tokens" in note
    data = json.loads(json.dumps(answer.to_dict()))
    assert data["cut"] is True and data["cut_segment"] == 0 and data["cut_reason"] == answer.cut_reason
    assert data["segments"][0]["cut"] is True
    again = answer_from_dict(data)
    assert (again.cut, again.cut_segment, again.cut_reason, again.segments[0].cut) == (True, 0, answer.cut_reason, True)


def test_a_finished_answer_has_no_cut_note():
    answer = retrieved_answer()
    assert not answer.cut and answer.to_dict()["cut"] is False
    assert "Cut short" not in format_answer(answer)
