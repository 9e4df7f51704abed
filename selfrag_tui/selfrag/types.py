"""Result types and progress events of the Self-RAG decoder.

These are what the CLI (`ask --json`) and the app render. They are plain dataclasses so they serialise with
`dataclasses.asdict` and cross thread boundaries safely.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from selfrag_tui.selfrag.settings import AnswerForm, RetrievalMode, ThresholdFormula  # noqa: F401 - re-exported
# What the model marked a segment with: a retrieve-group token.
SegmentRetrieval = Literal["retrieval", "no_retrieval", "continue"]


OCR_NOTE = "read by OCR"


@dataclass(frozen=True)
class Passage:
    """One retrieved chunk, with where it came from, as the decoder and the UI see it."""

    id: str
    """Stable chunk id from the store; citations are numbered by first appearance of this id."""
    title: str
    """Document title + section; the prompt shows `"{title}\\n{text}"`."""
    text: str
    source: str
    """File path of the document."""
    doc_title: str = ""
    page_start: int | None = None
    page_end: int | None = None
    heading: str | None = None
    """Heading path for Markdown, e.g. `"Camelids > Alpacas"`."""
    score: float = 0.0
    """Search score (higher is better) from the store's search mode."""
    match: str | None = None
    """The sentence of `text` that matched the question best (from the sentence rerank), if it was read."""
    notes: tuple[str, ...] = ()
    """What to know about where the text came from, shown beside it: the report it belongs to ("Patriot
    Transportation Holding, Inc. · 10-Q · period ended 2022-06-30"), "read by OCR (p. 3)"."""
    rank: int | None = None
    """Its place (1 = first) in the search results for its query, before any rerank by the model; None where not
    known (a passage from a retriever that does not say, or a chat saved before ranks were kept)."""

    @property
    def search_place(self) -> str:
        """Where search put it, as shown beside it: "search #2", or "score 0.812" where the rank is unknown (the
        score alone means something only against its neighbours)."""
        return f"search #{self.rank}" if self.rank is not None else f"score {self.score:.3f}"

    @property
    def ocr(self) -> bool:
        """Its text was read from a scan by OCR (may hold recognition errors)."""
        return any(note.startswith(OCR_NOTE) for note in self.notes)

    @property
    def location(self) -> str:
        """Human-readable place in the document: `p. 3`, `pp. 3-4`, or the heading path."""
        if self.page_start is not None:
            if self.page_end is not None and self.page_end != self.page_start:
                return f"pp. {self.page_start}-{self.page_end}"
            return f"p. {self.page_start}"
        return self.heading or ""


@dataclass(frozen=True)
class RetrievalDecision:
    """Whether to retrieve, and why (spec section 3)."""

    retrieve: bool
    mode: RetrievalMode
    threshold: float
    formula: ThresholdFormula = "paper"
    p_retrieval: float | None = None
    """The ratio compared with the threshold (None when the mode forced the decision without a model call)."""
    logprob_retrieval: float | None = None
    logprob_no_retrieval: float | None = None
    continue_evidence: bool = False
    """The model chose `[Continue to Use Evidence]` (t > 0, adaptive): the segment goes on with the passage already
    in context, without a new search (spec 6.2). `retrieve` is then False."""
    logprob_continue: float | None = None
    """Logprob of `[Continue to Use Evidence]` where the previous segment stopped (None at t = 0 and when forced)."""


@dataclass(frozen=True)
class Critique:
    """The model's reflection on one generation (spec section 4). Scores are None when not applicable."""

    relevance: float | None = None
    """ISREL: P(Relevant) / (P(Relevant) + P(Irrelevant)) at the first generated position."""
    relevance_token: str | None = None
    """The token generated there, e.g. `[Relevant]`."""
    support: float | None = None
    """ISSUP score in [0, 1]; 0 when no support token was generated (and a passage was used)."""
    support_token: str | None = None
    utility: float | None = None
    """ISUSE score in [-1, 1]; 0 when no utility token was generated."""
    utility_token: str | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    """Normalised probability of each token in the group at the position where it was read, by token string."""


@dataclass(frozen=True)
class Candidate:
    """One generation for one passage (or none), scored."""

    passage_index: int | None
    """Index into the passages retrieved for this step; None for the no-retrieval continuation."""
    passage: Passage | None
    text: str
    """Answer text with reflection tokens stripped."""
    raw_text: str
    """Generated text with special tokens kept."""
    token_ids: tuple[int, ...]
    critique: Critique
    seq_score: float
    """exp(cumulative_logprob / max(n, 1))."""
    final_score: float
    finish_reason: str
    cumulative_logprob: float = 0.0
    passage_truncated: bool = False
    """Whether the passage text was shortened to fit the model's context in this candidate's prompt."""


@dataclass(frozen=True)
class Segment:
    """One segment of a (long-form) answer as chosen by the beam search; short form has exactly one."""

    index: int
    retrieval: SegmentRetrieval
    decision: RetrievalDecision
    text: str
    raw_text: str
    critique: Critique
    score: float
    passage: Passage | None = None
    citation: int | None = None
    """1-based citation number into `Answer.passages`; None when the segment used no passage."""
    candidates: tuple[Candidate, ...] = ()
    """Every candidate generated for this segment (K for retrieval steps), for the candidate view."""
    cut: bool = False
    """The segment stopped before the model finished it (the answer's token budget or the model's context ran
    out): its text may end mid-sentence. `Answer.cut_reason` says why."""


@dataclass(frozen=True)
class Answer:
    """The finished answer to one question."""

    question: str
    form: AnswerForm
    decision: RetrievalDecision
    """The first (turn-level) retrieval decision."""
    segments: tuple[Segment, ...]
    passages: tuple[Passage, ...]
    """Every passage retrieved during the turn, in citation order (citation n is passages[n-1])."""
    text: str
    """Plain answer text, reflection tokens stripped."""
    raw_text: str
    """Answer text with reflection tokens and passage markers kept, as the model produced it."""
    score: float
    """Mean segment score of the returned path: finished paths of different lengths are compared by it (spec 6.5);
    for one segment it is that segment's score."""
    relevance_verdicts: dict[str, Critique] = field(default_factory=dict)
    """Per passage id, the model's relevance judgement (from the candidate generated with that passage)."""
    abstained: bool = False
    abstain_reason: str | None = None
    """Why the answer should not be taken as fact (nothing relevant retrieved, best candidate unsupported)."""
    timings: dict[str, float] = field(default_factory=dict)
    logprob_source: str = "exact"
    """How reflection logprobs were obtained by the engine: `exact` or `topk`."""
    cut: bool = False
    """The answer is unfinished: the model wanted to go on, but the answer's token budget or the model's context
    ran out (spec 6.3). Reaching `max_segments` is a normal end, not a cut."""
    cut_segment: int | None = None
    """0-based index into `segments` of the segment where the answer was cut (None when not cut)."""
    cut_reason: str | None = None
    """Why and where the answer was cut, in words (None when not cut)."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for passage, pdata in zip(self.passages, data["passages"], strict=True):
            pdata["location"] = passage.location
        return data


# ---------------------------------------------------------------------------------------------------------------
# Progress events: the decoder calls `on_event(event)` as work happens, from the thread it runs in.


@dataclass(frozen=True)
class DecisionMade:
    segment_index: int
    decision: RetrievalDecision


@dataclass(frozen=True)
class PassagesRetrieved:
    segment_index: int
    query: str
    passages: tuple[Passage, ...]


@dataclass(frozen=True)
class CandidateScored:
    segment_index: int
    candidate: Candidate


@dataclass(frozen=True)
class SegmentChosen:
    segment: Segment


@dataclass(frozen=True)
class TextDelta:
    """Streamed answer text (no-retrieval path), reflection tokens already stripped."""

    text: str


@dataclass(frozen=True)
class Done:
    answer: Answer


@dataclass(frozen=True)
class Cancelled:
    pass


@dataclass(frozen=True)
class Failed:
    error: str


DecoderEvent = DecisionMade | PassagesRetrieved | CandidateScored | SegmentChosen | TextDelta | Done | Cancelled | Failed
