"""Finished answers built field by field, for tests of what is done with an answer (history, export, display).

The values follow SELFRAG_SPEC: a retrieved turn with two passages, one judged relevant and cited by a fully
supported segment, one judged irrelevant; and a no-retrieval chit-chat turn.
"""

from __future__ import annotations

from selfrag_tui.selfrag.types import Answer, Candidate, Critique, Passage, RetrievalDecision, Segment

ALPACAS = Passage(
    id="chunk-camelids-2",
    title="Camelids > Alpacas",
    text="Alpacas are considerably smaller than llamas and were bred for their fibre.",
    source="/docs/camelids.md",
    doc_title="Camelids",
    heading="Camelids > Alpacas",
    score=0.812,
    rank=1,
)
BIKES = Passage(
    id="chunk-bikes-7",
    title="Bicycle Maintenance Handbook",
    text="Check the tyre pressure every week.",
    source="/docs/bicycle_maintenance_handbook.pdf",
    doc_title="Bicycle Maintenance Handbook",
    page_start=3,
    page_end=3,
    score=0.201,
    notes=("read by OCR (p. 3): may hold misread words",),
)


def retrieved_answer(question: str = "Can you tell me the difference between llamas and alpacas?",
                     *, abstained: bool = False) -> Answer:
    decision = RetrievalDecision(retrieve=True, mode="adaptive", threshold=0.2, p_retrieval=0.93,
                                 logprob_retrieval=-0.07, logprob_no_retrieval=-2.7)
    relevant = Critique(
        relevance=0.97, relevance_token="[Relevant]", support=0.93, support_token="[Fully supported]",
        utility=0.85, utility_token="[Utility:5]",
        probabilities={"[Relevant]": 0.97, "[Irrelevant]": 0.03, "[Fully supported]": 0.91,
                       "[Partially supported]": 0.06, "[No support / Contradictory]": 0.03, "[Utility:5]": 0.8},
    )
    irrelevant = Critique(relevance=0.04, relevance_token="[Irrelevant]", support=0.0, utility=-0.5,
                          utility_token="[Utility:2]", probabilities={"[Relevant]": 0.04, "[Irrelevant]": 0.96})
    text = "Alpacas are smaller than llamas and are kept for their fibre."
    winner = Candidate(0, ALPACAS, text, "[Relevant]" + text + "[Fully supported][Utility:5]", (5, 6, 7),
                       relevant, seq_score=0.9, final_score=3.2, finish_reason="eos", cumulative_logprob=-1.2)
    loser = Candidate(1, BIKES, "Check your tyres.", "[Irrelevant]Check your tyres.[Utility:2]", (8, 9),
                      irrelevant, seq_score=0.7, final_score=0.5, finish_reason="eos", cumulative_logprob=-2.0)
    segment = Segment(index=0, retrieval="retrieval", decision=decision, text=text, raw_text=winner.raw_text,
                      critique=relevant, score=3.2, passage=ALPACAS, citation=1, candidates=(winner, loser))
    return Answer(
        question=question, form="long", decision=decision, segments=(segment,), passages=(ALPACAS, BIKES),
        text=text, raw_text=winner.raw_text, score=3.2,
        relevance_verdicts={ALPACAS.id: relevant, BIKES.id: irrelevant},
        abstained=abstained, abstain_reason="the best candidate is not supported" if abstained else None,
        timings={"total": 1.5},
    )


def chit_chat_answer(question: str = "Leave odd one out: twitter, instagram, whatsapp.") -> Answer:
    decision = RetrievalDecision(retrieve=False, mode="adaptive", threshold=0.2, p_retrieval=0.03)
    critique = Critique(utility=1.0, utility_token="[Utility:5]", probabilities={"[Utility:5]": 0.99})
    text = "WhatsApp is the odd one out: it is a messaging app."
    segment = Segment(index=0, retrieval="no_retrieval", decision=decision, text=text, raw_text=text,
                      critique=critique, score=1.4)
    return Answer(question=question, form="long", decision=decision, segments=(segment,), passages=(),
                  text=text, raw_text=text, score=1.4)
