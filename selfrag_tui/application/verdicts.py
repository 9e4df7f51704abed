"""Words and symbols for the model's judgements, shared by the app's markers, `ask` and the exports.

Every verdict has a word and a symbol so it reads without colour; the level ("good", "mid", "bad") only picks
the colour. Pure Python, no Textual.
"""

from __future__ import annotations

import math

import re
from dataclasses import dataclass
from typing import Literal

from selfrag_tui.selfrag.types import Critique, RetrievalDecision

Level = Literal["good", "mid", "bad", "none"]

_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI sequences (colours, cursor moves)
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC sequences (titles, hyperlinks, clipboard)
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS / SOS / PM / APC strings
    r"|\x1b[@-Z\\-_]?"  # other escapes, and a lone ESC
    r"|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"  # C0 and C1 controls except tab, newline, carriage return
)


def clean_text(text: str) -> str:
    """Text from a document or the model with escape sequences and control characters removed.

    Displayed text must never move the cursor, recolour the terminal or set its title. Tabs become spaces and
    carriage returns newlines, so layout stays what the reader expects.
    """
    text = _CONTROL.sub("", text)
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\t", "    ")


_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_UNSAFE = re.compile(f"[\\x00-\\x1f\\x7f-\\x9f{_BIDI}\\ud800-\\udfff]")


def _picture(match: re.Match[str]) -> str:
    ch = match.group()
    code = ord(ch)
    if code == 0x1B:
        return "\u241b"  # ␛
    if code < 0x20:
        return chr(0x2400 + code)  # Control Pictures: ␀ … ␟ (␉ for tab, ␊ for newline)
    if code == 0x7F:
        return "\u2421"  # ␡
    if 0xD800 <= code <= 0xDFFF:
        return "\ufffd"  # half of a character pair (a file name that is not valid UTF-8)
    return f"\u27e8U+{code:04X}\u27e9"  # ⟨U+202E⟩: C1 controls and bidi overrides, named


def visible_text(text: str, *, multiline: bool = True) -> str:
    """Text from a document, a file name or the model, safe to print to a terminal: every control character is
    shown as a visible symbol (ESC as ␛, so `␛[31m` reads as the escape it is), C1 controls and bidi overrides as
    `⟨U+202E⟩`. Nothing that reaches the terminal can move the cursor, recolour it, set its title or clipboard,
    ring its bell, or reorder the characters around it. Newlines stay when `multiline` (tabs become spaces);
    single-line fields (names, titles) show them as ␊."""
    if multiline:
        text = text.replace("\r\n", "\n").replace("\t", "    ")
        return "\n".join(_UNSAFE.sub(_picture, line) for line in text.split("\n"))
    return _UNSAFE.sub(_picture, text)


_JSON_UNSAFE = re.compile(f"[\\x7f-\\x9f{_BIDI}\\ud800-\\udfff]")


def safe_json(value: object, **options) -> str:
    """`json.dumps` for the terminal: exact data (every string decodes to what it was), with C1 controls, bidi
    overrides and unpaired surrogates written as `\\uXXXX` escapes rather than raw (json already escapes C0)."""
    import json

    text = json.dumps(value, ensure_ascii=False, **options)
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


@dataclass(frozen=True)
class Verdict:
    """One judgement of the model, ready to display."""

    kind: Literal["relevance", "support", "utility"]
    token: str | None
    label: str
    """Words: `Relevant`, `Fully supported`, `Utility 4/5`."""
    short: str
    """Compact form: `rel`, `full`, `U4`."""
    symbol: str
    level: Level
    probability: float | None
    """Probability of the generated token among its group, where the engine gave it."""
    score: float | None
    """The critique score the decoder computed (ISREL, ISSUP in [0, 1], ISUSE in [-1, 1])."""

    def describe(self) -> str:
        """One line with the numbers, e.g. `Fully supported (p=0.91, ISSUP 0.93)`."""
        numbers = self.numbers()
        return f"{self.label} ({numbers})" if numbers else self.label

    def numbers(self) -> str:
        """The probability and the score, e.g. `p=0.91, ISSUP 0.93`."""
        parts = []
        if self.probability is not None:
            parts.append(f"p={self.probability:.2f}")
        if self.score is not None:
            name = {"relevance": "ISREL", "support": "ISSUP", "utility": "ISUSE"}[self.kind]
            parts.append(f"{name} {self.score:+.2f}" if self.kind == "utility" else f"{name} {self.score:.2f}")
        return ", ".join(parts)


def _probability(critique: Critique, token: str | None) -> float | None:
    if token is None:
        return None
    value = critique.probabilities.get(token)
    return float(value) if value is not None else None


def relevance_verdict(critique: Critique) -> Verdict | None:
    token = critique.relevance_token
    if token is None and critique.relevance is None:
        return None
    relevant = token == "[Relevant]" if token is not None else (critique.relevance or 0.0) >= 0.5
    probability = _probability(critique, token)
    if probability is None and critique.relevance is not None:
        probability = critique.relevance if relevant else 1.0 - critique.relevance
    if relevant:
        return Verdict("relevance", token, "Relevant", "rel", "✓", "good", probability, critique.relevance)
    return Verdict("relevance", token, "Irrelevant", "irrel", "✗", "bad", probability, critique.relevance)


_SUPPORT = {
    "[Fully supported]": ("Fully supported", "full", "●", "good"),
    "[Partially supported]": ("Partially supported", "partial", "◐", "mid"),
    "[No support / Contradictory]": ("No support", "none", "○", "bad"),
}


def support_verdict(critique: Critique) -> Verdict | None:
    token = critique.support_token
    if token in _SUPPORT:
        label, short, symbol, level = _SUPPORT[token]
        return Verdict(
            "support", token, label, short, symbol, level, _probability(critique, token), critique.support  # type: ignore[arg-type]
        )
    if critique.support is None:
        return None
    # A passage was used but the model generated no support token: the score counts as 0 (spec section 4).
    return Verdict("support", None, "Support not stated", "unstated", "?", "bad", None, critique.support)


_UTILITY = re.compile(r"\[Utility:(\d)\]")


def utility_verdict(critique: Critique) -> Verdict | None:
    token = critique.utility_token
    match = _UTILITY.fullmatch(token) if token else None
    if match is None:
        return None
    rating = int(match.group(1))
    level: Level = "good" if rating >= 4 else "mid" if rating == 3 else "bad"
    return Verdict(
        "utility", token, f"Utility {rating}/5", f"U{rating}", "★", level, _probability(critique, token),
        critique.utility,
    )


def verdicts(critique: Critique, *, with_passage: bool = True) -> list[Verdict]:
    """The judgements present in a critique, in reading order: relevance, support, utility.

    Without a passage only utility means anything: relevance and support judge a passage, and a support token
    the model emits after `[No Retrieval]` has nothing to be supported by.
    """
    if not with_passage:
        return [v for v in (utility_verdict(critique),) if v]
    return [v for v in (relevance_verdict(critique), support_verdict(critique), utility_verdict(critique)) if v]


def decision_summary(decision: RetrievalDecision) -> str:
    """`retrieved: p=0.93 > threshold 0.20 (adaptive)` and the like, in words."""
    if getattr(decision, "continue_evidence", False):
        p_continue = math.exp(decision.logprob_continue) if decision.logprob_continue is not None else None
        said = f" (p([Continue to Use Evidence])={p_continue:.2f})" if p_continue is not None else ""
        return f"continued with the current passage{said}"
    verb = "retrieved" if decision.retrieve else "no retrieval"
    if decision.p_retrieval is None:
        return f"{verb}: forced by mode '{decision.mode}'"
    comparison = ">" if decision.retrieve else "≤"
    formula = "" if decision.formula == "paper" else f", {decision.formula} formula"
    return (
        f"{verb}: p([Retrieval])={decision.p_retrieval:.2f} {comparison} threshold {decision.threshold:.2f} "
        f"({decision.mode}{formula})"
    )
