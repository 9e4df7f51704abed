"""A small scripted world for the fast app tests: a scripted Self-RAG engine that answers three questions the
way the real model does (one retrieved and well supported, one answered without retrieving, one whose passages
are all irrelevant so the app abstains), and a retriever handing out fixed passages of sample_docs/.

The answers are fixed, so screens rendered from them do not move when the demo model is retrained or a library
is upgraded. Only the UI is under test here; the real generator and store are exercised by the slow tier.
"""

from __future__ import annotations

import math
import threading

from scripted_engine import ScriptedEngine, eos, reply, tok, words

from selfrag_tui.application import locations
from selfrag_tui.selfrag.prompts import passage_block_text
from selfrag_tui.selfrag.types import Passage

LLAMAS = "Can you tell me the difference between llamas and alpacas?"
HELLO = "Leave odd one out: twitter, instagram, whatsapp."
BREAD = "How long should sourdough proof?"
ALPACA_ANSWER = "Alpacas are smaller than llamas and are bred for their fleece."


def _passage(file: str, heading: str, text: str, n: int, score: float) -> Passage:
    path = str(locations.sample_docs_path() / file)
    return Passage(id=f"{file}#{n}", title=f"{heading}", text=text, source=path, doc_title=heading.split(" > ")[0],
                   heading=heading, score=score)


ALPACAS = _passage("camelids.md", "Camelids > Alpacas", "Alpacas are considerably smaller than llamas and are bred "
                   "for fleece, not as pack animals.", 1, 0.031)
LLAMA_P = _passage("camelids.md", "Camelids > Llamas", "Llamas are large pack animals of the Andes.", 0, 0.029)
TEXTILES = _passage("andean_textile_fibres.pdf", "Andean textile fibres", "Vicuna fibre is the finest.", 2, 0.016)
SOURDOUGH = _passage("sourdough.md", "Sourdough > Starter", "Feed the starter twice a day.", 3, 0.015)


def _rel(p: float) -> dict[str, float]:
    return {"[Relevant]": math.log(p), "[Irrelevant]": math.log(1 - p)}


def _sup(full: float, partial: float, none: float) -> dict[str, float]:
    return {"[Fully supported]": math.log(full), "[Partially supported]": math.log(partial),
            "[No support / Contradictory]": math.log(none)}


def _use(*probs: float) -> dict[str, float]:
    return {f"[Utility:{k}]": math.log(p) for k, p in enumerate(probs, start=1)}


def _candidate(text: str, rel: float, sup: tuple[float, float, float], support_token: str,
               use: tuple[float, ...], utility_token: str) -> list:
    relevant = "[Relevant]" if rel >= 0.5 else "[Irrelevant]"
    return reply(
        tok(relevant, _rel(rel)[relevant], _rel(rel)),
        words(text),
        tok(support_token, _sup(*sup)[support_token], _sup(*sup)),
        tok(utility_token, _use(*use)[utility_token], _use(*use)),
        eos(),
    )


def _asks(question: str):
    return lambda prompt: f"### Instruction:\n{question}" in prompt or f"\n{question}\n\n### Response:" in prompt


def _decides(question: str):
    return lambda prompt: _asks(question)(prompt) and prompt.endswith("### Response:\n")


def _after(question: str, suffix: str):
    return lambda prompt: _asks(question)(prompt) and prompt.endswith(suffix)


class ScriptedWorld:
    """The engine and retriever of the fast app tests, with a gate to hold a generation mid-turn."""

    def __init__(self) -> None:
        self.engine = GatedEngine(self._script())
        self.queries: list[str] = []
        self.fail_retrieval: str | None = None

    def retrieve(self, query: str, k: int) -> list[Passage]:
        self.queries.append(query)
        if self.fail_retrieval:
            raise RuntimeError(self.fail_retrieval)
        if "sourdough" in query.lower():
            return [TEXTILES, LLAMA_P][:k]
        return [ALPACAS, LLAMA_P, TEXTILES, SOURDOUGH][:k]

    @staticmethod
    def _script() -> ScriptedEngine:
        engine = ScriptedEngine(model_name="scripted-selfrag")
        retrieve = {"[Retrieval]": math.log(0.93), "[No Retrieval]": math.log(0.05)}
        no_retrieve = {"[Retrieval]": math.log(0.02), "[No Retrieval]": math.log(0.95)}
        engine.decide(_decides(LLAMAS), retrieve)
        engine.decide(_decides(BREAD), retrieve)
        engine.decide(_decides(HELLO), no_retrieve)
        good = ("[Fully supported]", (0.9, 0.08, 0.02), (0.01, 0.01, 0.03, 0.05, 0.9), "[Utility:5]")
        engine.on(_after(LLAMAS, passage_block_text(ALPACAS)),
                  _candidate(ALPACA_ANSWER, 0.97, good[1], good[0], good[2], good[3]))
        engine.on(_after(LLAMAS, passage_block_text(LLAMA_P)),
                  _candidate("Llamas carry loads.", 0.7, (0.3, 0.5, 0.2), "[Partially supported]",
                             (0.1, 0.2, 0.4, 0.2, 0.1), "[Utility:3]"))
        for p in (TEXTILES, SOURDOUGH):
            engine.on(_after(LLAMAS, passage_block_text(p)),
                      _candidate("Vicunas are wild.", 0.04, (0.05, 0.15, 0.8), "[No support / Contradictory]",
                                 (0.6, 0.2, 0.1, 0.05, 0.05), "[Utility:1]"))
        for p in (TEXTILES, LLAMA_P):
            engine.on(_after(BREAD, passage_block_text(p)),
                      _candidate("Proof it overnight.", 0.06, (0.1, 0.2, 0.7), "[No support / Contradictory]",
                                 (0.5, 0.3, 0.1, 0.05, 0.05), "[Utility:2]"))
        engine.on(_after(LLAMAS, "[No Retrieval]"),
                  reply(words("Llamas are larger than alpacas."), tok("[Utility:4]", -0.3), eos()))
        engine.on(_after(HELLO, "[No Retrieval]"),
                  reply(words("WhatsApp is the odd one out: it is a messenger."), tok("[Utility:4]", -0.2), eos()))
        return engine


class GatedEngine:
    """The scripted engine; with `hold()`, its next generation waits until `release()` (so Esc lands mid-turn)."""

    def __init__(self, engine: ScriptedEngine) -> None:
        self._engine = engine
        self.entered = threading.Event()
        self._gate = threading.Event()
        self._gate.set()

    def __getattr__(self, name):
        return getattr(self._engine, name)

    def hold(self) -> None:
        self.entered.clear()
        self._gate.clear()

    def release(self) -> None:
        self._gate.set()

    def generate(self, prompts, **kwargs):
        self.entered.set()
        cancel = kwargs.get("cancel")
        while not self._gate.wait(0.01):
            if cancel is not None and cancel.is_set():
                break
        return self._engine.generate(prompts, **kwargs)
