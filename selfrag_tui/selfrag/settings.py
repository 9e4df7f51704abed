"""The decoder's settings: one pydantic model, the single definition of every decoding knob, its default (the
paper's, SELFRAG_SPEC sections 3-6) and its allowed range.

The application's settings schema nests this model as its `[decoding]` section, the CLI's flags and the app's
settings screen are generated from it, and the decoder reads it directly: there is no second copy to keep in
step. `title` is the label a person reads; `description` is the help line.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RetrievalMode = Literal["adaptive", "always", "never"]
ThresholdFormula = Literal["paper", "released"]
AnswerForm = Literal["long", "short"]


class DecodingSettings(BaseModel):
    """Knobs of the Self-RAG decoder."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    mode: RetrievalMode = Field(
        "adaptive", title="Retrieval mode", description="adaptive: the model decides; always / never: forced"
    )
    form: AnswerForm = Field(
        "long", title="Answer form", description="long: segment-by-segment beam search; short: best of K in one segment"
    )
    threshold: float = Field(
        0.2, ge=0.0, le=1.0, title="Threshold",
        description="retrieve when p([Retrieval]) / (p([Retrieval]) + p([No Retrieval])) is above this",
    )
    threshold_formula: ThresholdFormula = Field(
        "paper", title="Threshold formula",
        description="released reproduces the official script's log-ratio, only for comparisons",
    )
    k: int = Field(5, ge=1, le=50, title="Passages (K)", description="passages retrieved per step, one candidate each")
    rerank_candidates: int = Field(
        0, ge=0, le=100, title="Model reranks",
        description="0 = off; else the model judges this many search results for relevance and keeps the best K "
                    "(one model step each: slow on a CPU)",
    )
    w_rel: float = Field(1.0, ge=0.0, le=10.0, title="Weight ISREL", description="weight of the relevance score")
    w_sup: float = Field(1.0, ge=0.0, le=10.0, title="Weight ISSUP", description="weight of the support score")
    w_use: float = Field(0.5, ge=0.0, le=10.0, title="Weight ISUSE", description="weight of the utility score")
    use_seqscore: bool = Field(
        True, title="Sequence score", description="add the mean token probability to each candidate's score"
    )
    beam_width: int = Field(2, ge=1, le=16, title="Beam width", description="partial answers kept per step (long form)")
    max_segments: int = Field(
        6, ge=1, le=32, title="Max segments", description="segments per answer at most (long form)"
    )
    max_new_tokens: int = Field(
        200, ge=1, le=4096, title="Max new tokens",
        description="tokens per generation step; a segment cut here goes on, within max segments x this per answer "
        "(this alone in short form), and an answer cut by that limit is marked cut",
    )
    history_token_budget: int = Field(
        1024, ge=0, le=32768, title="History tokens",
        description="tokens of earlier chat turns folded into the prompt (oldest dropped first); 0 answers every "
        "question on its own. Self-RAG was trained on single turns, so the transcript is a best effort",
    )
    closed_set: bool = Field(
        False, title="Closed set",
        description="short form only: sum candidate scores per normalised answer (multiple choice, true/false)",
    )
