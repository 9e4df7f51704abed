"""The Self-RAG decoder: adaptive retrieval, short form (best of K) and long form (segment beam search).

SELFRAG_SPEC sections 3-6. The decoder is pure Python over the `Engine` interface and a retriever function
`(query, k) -> passages`, so the app wires the document store in and tests hand it any passages. It reports
progress as typed events from the thread it runs in and checks cancellation between steps.

Long form implements the paper's Algorithm 1, not the released script (which never re-retrieves, always scores
utility 0, builds wrong sibling prompts and drops shorter finished paths): every segment decides retrieval from
the model's own retrieve-group distribution (keeping the current passage when the model chose
`[Continue to Use Evidence]`), retrieves with the question plus the previous segment, scores K candidates, and
the beam keeps the best partial paths by the sum of segment scores; the answer is the finished path with the best
mean segment score, whatever its depth (with the sum, the longest path would win almost always).

Limits (spec 6.3): a segment cut by `max_new_tokens` goes on from where it stopped, within a budget of
`max_segments x max_new_tokens` generated tokens per answer (`max_new_tokens` in short form); an answer that runs
out of budget or context is returned and marked cut. A passage that does not fit the context is shortened for
its own candidate; the other candidates and the answer go on.
"""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass, replace
from typing import Callable, Literal, Sequence

from selfrag_tui.selfrag.settings import DecodingSettings
from selfrag_tui.engines.base import Engine, EngineError, Generation, GenerationCancelled
from selfrag_tui.selfrag.decision import decide_after, decide_initial
from selfrag_tui.selfrag.prompts import (
    AssembledPrompt,
    ContextOverflow,
    ContextPiece,
    PromptBuilder,
    passage_block_text,
)
from selfrag_tui.selfrag.scoring import critique, final_score, sequence_score
from selfrag_tui.selfrag.types import (
    Answer,
    Cancelled,
    Candidate,
    CandidateScored,
    Critique,
    DecisionMade,
    DecoderEvent,
    Done,
    Failed,
    Passage,
    PassagesRetrieved,
    RetrievalDecision,
    Segment,
    SegmentChosen,
    SegmentRetrieval,
    TextDelta,
)
from selfrag_tui.reflection import NO_SUPPORT, ReflectionVocab

Retriever = Callable[[str, int], Sequence[Passage]]
EventSink = Callable[[DecoderEvent], None]

# Context tokens kept free for a passage when deciding how much chat history fits.
PASSAGE_ROOM = 256
# Below this, a candidate is not taken as relevant / supported (abstention).
RELEVANCE_FLOOR = 0.5
SUPPORT_FLOOR = 0.5


class DecodeCancelled(Exception):
    """The user cancelled the answer; a `Cancelled` event was emitted."""


class DecodeError(ValueError):
    """A question the model cannot take; the message says what to change. (Settings are validated where they are
    made: `DecodingSettings` rejects out-of-range values with the setting's name.)"""


# Why an answer stopped before the model finished it: a segment ran out of the answer's token budget or of the
# context while going on; or the model asked for a next segment when no budget or no context was left for it.
CutReason = Literal["budget", "context", "next_budget", "next_context"]


@dataclass(frozen=True)
class _Step:
    """One segment of a path, with what the next prompt needs from it."""

    segment: Segment
    piece: ContextPiece
    generation: Generation
    plain_ids: tuple[int, ...]
    ends_path: bool
    cut: CutReason | None = None


@dataclass(frozen=True)
class _Path:
    steps: tuple[_Step, ...] = ()
    score: float = 0.0
    """Sum of segment scores: what the beam ranks partial paths of equal depth by."""
    finished: bool = False
    cut: CutReason | None = None

    @property
    def mean(self) -> float:
        """Mean segment score: what finished paths of different depths are compared by (spec 6.5)."""
        return self.score / max(len(self.steps), 1)

    @property
    def generated(self) -> int:
        """Tokens generated along the path, counted against the answer's budget."""
        return sum(len(step.generation.token_ids) for step in self.steps)

    def current_passage(self) -> Passage | None:
        """The passage in context for `[Continue to Use Evidence]`: the one read by the path's latest retrieval
        segment (continue segments carry the same passage; `[No Retrieval]` ones carry none)."""
        for step in reversed(self.steps):
            if step.segment.passage is not None:
                return step.segment.passage
        return None


@dataclass(frozen=True)
class _Request:
    """One prompt of a segment, to be generated until a stop token, EOS, the budget or the context ends it."""

    assemble: Callable[[Sequence[int], int], AssembledPrompt]
    """(ids generated so far in this segment, new tokens for the call) -> the prompt, fitted to the context."""


@dataclass(frozen=True)
class _Outcome:
    """A request's whole generation (every call merged) and the prompt as last placed."""

    prompt: AssembledPrompt
    generation: Generation
    truncated: bool
    cut: CutReason | None


class _Turn:
    """State of one `answer` call: events, cancellation, timings, passages seen."""

    def __init__(
        self, question: str, settings: DecodingSettings, on_event: EventSink | None, cancel: threading.Event | None
    ) -> None:
        self.question = question
        self.settings = settings
        self.on_event = on_event
        self.cancel = cancel
        self.timings = {"decision": 0.0, "retrieval": 0.0, "generation": 0.0, "total": 0.0}
        self.retrieved: dict[str, Passage] = {}
        self.verdicts: dict[str, Critique] = {}
        self.searches = 0
        self.empty_searches = 0
        self.logprob_sources: set[str] = set()
        self.citations: dict[str, int] = {}
        self.committed: list[Segment] = []
        self.streamed = False
        # Generated tokens an answer may use (spec 6.3): a segment cut by max_new_tokens goes on within it.
        self.budget = settings.max_new_tokens * (settings.max_segments if settings.form == "long" else 1)

    def emit(self, event: DecoderEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    def check_cancel(self) -> None:
        if self.cancel is not None and self.cancel.is_set():
            raise DecodeCancelled()

    def cite(self, segment: Segment) -> Segment:
        """Give the segment its citation number: passages are numbered by id in order of first use."""
        if segment.passage is None:
            return segment
        number = self.citations.setdefault(segment.passage.id, len(self.citations) + 1)
        return replace(segment, citation=number)

    def commit(self, segments: Sequence[Segment]) -> None:
        """Emit `SegmentChosen` for segments now certain to be in the answer (each once, in order)."""
        for segment in segments[len(self.committed) :]:
            chosen = self.cite(segment)
            self.committed.append(chosen)
            self.emit(SegmentChosen(chosen))


class SelfRagDecoder:
    """Answers questions with a Self-RAG model over an engine, retrieving through `retriever(query, k)`."""

    def __init__(
        self, engine: Engine, retriever: Retriever, settings: DecodingSettings = DecodingSettings()
    ) -> None:
        self.engine = engine
        self.retriever = retriever
        self.settings = settings
        self.vocab = ReflectionVocab.from_engine(engine)
        self.prompts = PromptBuilder(engine, self.vocab)
        self._strip_ids = self.vocab.special_ids | {engine.eos_token_id}

    # ------------------------------------------------------------------------------------------------------------
    def answer(
        self,
        question: str,
        *,
        history: Sequence[tuple[str, str]] = (),
        on_event: EventSink | None = None,
        cancel: threading.Event | None = None,
        settings: DecodingSettings | None = None,
    ) -> Answer:
        """Answer `question` (the latest user turn; `history` holds earlier (user, assistant) turns).

        Emits events as work happens. On cancellation emits `Cancelled` and raises DecodeCancelled; on any
        other error emits `Failed` and re-raises.
        """
        settings = settings or self.settings
        turn = _Turn(question.strip(), settings, on_event, cancel)
        started = time.perf_counter()
        try:
            if not turn.question:
                raise DecodeError("The question is empty.")
            turn.check_cancel()
            result = self._answer(turn, history)
        except (DecodeCancelled, GenerationCancelled) as exc:
            turn.emit(Cancelled())
            raise DecodeCancelled() from exc
        except Exception as exc:
            turn.emit(Failed(str(exc) or type(exc).__name__))
            raise
        result.timings["total"] = time.perf_counter() - started
        turn.emit(Done(result))
        return result

    # ------------------------------------------------------------------------------------------------------------
    def _answer(self, turn: _Turn, history: Sequence[tuple[str, str]]) -> Answer:
        settings = turn.settings
        base_ids = self._base_ids(turn, history)
        started = time.perf_counter()
        decision = decide_initial(self.engine, base_ids, self.vocab, settings)
        turn.timings["decision"] += time.perf_counter() - started
        turn.emit(DecisionMade(0, decision))
        turn.check_cancel()
        if settings.form == "short":
            path = self._short_form(turn, base_ids, decision)
        else:
            path = self._long_form(turn, base_ids, decision)
        turn.commit([step.segment for step in path.steps])
        return self._build_answer(turn, decision, path)

    def _base_ids(self, turn: _Turn, history: Sequence[tuple[str, str]]) -> list[int]:
        """The base prompt, with as much history as leaves room for a passage and the new tokens."""
        settings = turn.settings
        bare = self.prompts.base_ids(turn.question)
        markers = len(self.prompts.markers_only)
        if len(bare) + markers + settings.max_new_tokens > self.engine.max_context:
            raise DecodeError(
                f"The question is {len(bare)} tokens long; with {settings.max_new_tokens} new tokens it does not "
                f"fit the {self.engine.max_context}-token context of the model '{self.engine.model_name}'. "
                f"Ask a shorter question or lower decoding.max_new_tokens."
            )
        room = self.engine.max_context - settings.max_new_tokens - len(bare) - PASSAGE_ROOM
        budget = min(settings.history_token_budget, max(0, room))
        if not history or budget == 0:
            return bare
        return self.prompts.base_ids(self.prompts.instruction(turn.question, history, budget))

    # -- short form ----------------------------------------------------------------------------------------------
    def _short_form(self, turn: _Turn, base_ids: list[int], decision: RetrievalDecision) -> _Path:
        """One segment: K passages, K prompts, one batched call, the best candidate (ties to the lower index)."""
        stop = (self.engine.eos_token_id,)
        if decision.retrieve:
            passages = self._retrieve(turn, 0, turn.question)
            if passages:
                steps = self._retrieval_steps(turn, base_ids, _Path(), 0, decision, passages, stop)
                best = self._pick_short(turn, steps)
                return _Path((best,), best.segment.score, True, best.cut)
        step = self._plain_step(turn, base_ids, _Path(), 0, decision, stop, stream=True)
        return _Path((step,), step.segment.score, True, step.cut)

    def _pick_short(self, turn: _Turn, steps: list[_Step]) -> _Step:
        if not turn.settings.closed_set:
            return _first_max(steps, lambda step: step.segment.score)
        # Closed-set questions: the answer string with the highest summed score wins, then its best candidate.
        totals: dict[str, float] = {}
        for step in steps:
            key = _normalise_answer(step.segment.text)
            totals[key] = totals.get(key, 0.0) + step.segment.score
        best_key = _first_max(list(totals), lambda key: totals[key])
        return _first_max(
            [step for step in steps if _normalise_answer(step.segment.text) == best_key],
            lambda step: step.segment.score,
        )

    # -- long form -----------------------------------------------------------------------------------------------
    def _long_form(self, turn: _Turn, base_ids: list[int], decision: RetrievalDecision) -> _Path:
        settings = turn.settings
        stop = (*self.vocab.retrieve_ids, self.engine.eos_token_id)
        beams = [_Path()]
        finished: list[_Path] = []
        for t in range(settings.max_segments):
            expansions: list[_Path] = []
            for beam in beams:
                turn.check_cancel()
                if beam.generated >= turn.budget:
                    # The model asked for another segment, but the answer has used its whole budget.
                    finished.append(replace(beam, finished=True, cut="next_budget"))
                    continue
                if t == 0:
                    step_decision = decision
                else:
                    step_decision = decide_after(
                        beam.steps[-1].generation, self.vocab, settings, has_passage=beam.current_passage() is not None
                    )
                    turn.emit(DecisionMade(t, step_decision))
                # Streaming is safe only when this continuation is certain to be in the answer.
                certain = len(beams) == 1 and not finished
                expansions.extend(self._expand(turn, base_ids, beam, t, step_decision, stop, stream=certain))
            # Partial paths are all of depth t + 1 here, so ranking by the sum ranks by the mean too.
            ranked = sorted(expansions, key=lambda path: -path.score)  # stable: ties keep beam, passage order
            beams = []
            for path in ranked:
                if path.finished or t == settings.max_segments - 1:
                    finished.append(replace(path, finished=True))
                elif len(beams) < settings.beam_width:
                    beams.append(path)
            turn.commit(_common_prefix([*beams, *finished]))
            if not beams:
                break
        # Finished paths differ in depth: compare them by their mean segment score (spec 6.5).
        return _first_max(finished, lambda path: path.mean)

    def _expand(
        self,
        turn: _Turn,
        base_ids: list[int],
        beam: _Path,
        t: int,
        decision: RetrievalDecision,
        stop: tuple[int, ...],
        *,
        stream: bool,
    ) -> list[_Path]:
        """Every continuation of `beam` by one segment (K with retrieval, one without)."""
        try:
            if decision.retrieve:
                # No search for a path that has no room left for even an empty passage block.
                self.prompts.assemble(
                    base_ids,
                    [step.piece for step in beam.steps],
                    max_new_tokens=min(turn.settings.max_new_tokens, turn.budget - beam.generated),
                    marker_ids=self.prompts.markers_only,
                )
                # The query is the question plus the segment just before this one (not the first).
                query = turn.question if t == 0 else f"{turn.question} {beam.steps[-1].segment.text}".strip()
                passages = self._retrieve(turn, t, query)
                if passages:
                    steps = self._retrieval_steps(turn, base_ids, beam, t, decision, passages, stop)
                    return [self._extend(beam, step) for step in steps]
            step = self._plain_step(turn, base_ids, beam, t, decision, stop, stream=stream)
        except ContextOverflow:
            if t == 0:
                raise
            # The question and this path's own segments fill the context: the path ends here, cut; the other
            # beams go on.
            return [replace(beam, finished=True, cut="next_context")]
        return [self._extend(beam, step)]

    @staticmethod
    def _extend(beam: _Path, step: _Step) -> _Path:
        return _Path((*beam.steps, step), beam.score + step.segment.score, step.ends_path, step.cut)

    # -- steps ---------------------------------------------------------------------------------------------------
    def _retrieve(self, turn: _Turn, t: int, query: str) -> list[Passage]:
        turn.check_cancel()
        started = time.perf_counter()
        passages = list(self.retriever(query, turn.settings.k))[: turn.settings.k]
        turn.timings["retrieval"] += time.perf_counter() - started
        turn.searches += 1
        if not passages:
            turn.empty_searches += 1
        for passage in passages:
            turn.retrieved.setdefault(passage.id, passage)
        turn.emit(PassagesRetrieved(t, query, tuple(passages)))
        turn.check_cancel()
        return passages

    def _retrieval_steps(
        self,
        turn: _Turn,
        base_ids: list[int],
        beam: _Path,
        t: int,
        decision: RetrievalDecision,
        passages: Sequence[Passage],
        stop: tuple[int, ...],
    ) -> list[_Step]:
        """K prompts (one passage each), one batched engine call, K scored candidates."""
        earlier = [step.piece for step in beam.steps]

        def request(passage: Passage) -> _Request:
            return _Request(
                lambda generated, new_tokens: self.prompts.assemble(
                    base_ids, earlier, max_new_tokens=new_tokens, passage=passage, generated=generated
                )
            )

        outcomes = self._run_segment(turn, beam, [request(passage) for passage in passages], stop)
        candidates = []
        for index, (passage, outcome) in enumerate(zip(passages, outcomes, strict=True)):
            candidate = self._candidate(
                turn, outcome.generation, passage, index, with_passage=True, evidence=True, truncated=outcome.truncated
            )
            turn.verdicts.setdefault(passage.id, candidate.critique)
            candidates.append(candidate)
            turn.emit(CandidateScored(t, candidate))
        siblings = tuple(candidates)
        return [
            self._make_step(t, "retrieval", decision, candidate, outcome, siblings, outcome.prompt.tail)
            for candidate, outcome in zip(candidates, outcomes, strict=True)
        ]

    def _plain_step(
        self,
        turn: _Turn,
        base_ids: list[int],
        beam: _Path,
        t: int,
        decision: RetrievalDecision,
        stop: tuple[int, ...],
        *,
        stream: bool,
    ) -> _Step:
        """Continue without a new passage: `[No Retrieval]`, or `[Continue to Use Evidence]` when the decision
        chose it (spec 6.2), with the path's current passage still in context."""
        passage = beam.current_passage() if decision.continue_evidence else None
        if passage is not None:
            kind: SegmentRetrieval = "continue"
            marker = (self.vocab.continue_evidence,)
        else:
            kind, marker = "no_retrieval", (self.vocab.no_retrieval,)
        earlier = [step.piece for step in beam.steps]
        request = _Request(
            lambda generated, new_tokens: self.prompts.assemble(
                base_ids, earlier, max_new_tokens=new_tokens, marker_ids=marker, generated=generated
            )
        )
        (outcome,) = self._run_segment(turn, beam, [request], stop, stream=stream)
        # A continue segment is judged on support and utility but not relevance: no `</paragraph>` precedes it,
        # and the passage keeps the verdict it got when it was read (spec 6.1).
        candidate = self._candidate(
            turn, outcome.generation, passage, None, with_passage=False, evidence=kind == "continue"
        )
        turn.emit(CandidateScored(t, candidate))
        return self._make_step(t, kind, decision, candidate, outcome, (candidate,), marker)

    def _run_segment(
        self,
        turn: _Turn,
        beam: _Path,
        requests: Sequence[_Request],
        stop: tuple[int, ...],
        *,
        stream: bool = False,
    ) -> list[_Outcome]:
        """Generate every request of one segment in batched calls until each reaches a stop token or EOS.

        A generation cut by `max_new_tokens` is not a finished segment (spec 6.3): it goes on from where it
        stopped (same prompt and passage, no new decision) while the path's token budget and the context allow;
        otherwise it is marked cut. Raises ContextOverflow only when the first call does not fit, which is the
        same for every request of the segment (a passage that does not fit is shortened by the prompt builder).
        """
        settings = turn.settings
        left = turn.budget - beam.generated
        new_tokens = min(settings.max_new_tokens, left)
        prompts = [request.assemble((), new_tokens) for request in requests]
        generations = self._generate(turn, [prompt.ids for prompt in prompts], stop, new_tokens, stream=stream)
        truncated = [prompt.truncated for prompt in prompts]
        cut: list[CutReason | None] = [None] * len(requests)
        while True:
            pending: list[int] = []
            next_prompts: list[AssembledPrompt] = []
            next_tokens = settings.max_new_tokens
            for index, generation in enumerate(generations):
                if generation.finish_reason != "length" or cut[index] is not None:
                    continue
                room = left - len(generation.token_ids)
                if room <= 0:
                    cut[index] = "budget"
                    continue
                pending.append(index)
                next_tokens = min(next_tokens, room)
            if not pending:
                break
            kept: list[int] = []
            for index in pending:
                try:
                    prompt = requests[index].assemble(tuple(generations[index].token_ids), next_tokens)
                except ContextOverflow:
                    cut[index] = "context"
                    continue
                prompts[index] = prompt
                truncated[index] = truncated[index] or prompt.truncated
                kept.append(index)
                next_prompts.append(prompt)
            if not kept:
                break
            more = self._generate(
                turn, [prompt.ids for prompt in next_prompts], stop, next_tokens, stream=stream, continuing=True
            )
            for index, extra in zip(kept, more, strict=True):
                if not extra.token_ids:  # an engine that makes no progress must not loop forever
                    cut[index] = "budget"
                generations[index] = _joined(generations[index], extra)
        return [
            _Outcome(prompt, generation, was_truncated, reason)
            for prompt, generation, was_truncated, reason in zip(prompts, generations, truncated, cut, strict=True)
        ]

    def _make_step(
        self,
        t: int,
        kind: SegmentRetrieval,
        decision: RetrievalDecision,
        candidate: Candidate,
        outcome: _Outcome,
        siblings: tuple[Candidate, ...],
        head: Sequence[int],
    ) -> _Step:
        generated = list(candidate.token_ids)
        ends_path = outcome.cut is not None or not (generated and generated[-1] in self.vocab.retrieve_ids)
        # The stop token opens the next segment, which brings its own marker; EOS ends the answer.
        body = generated[:-1] if generated and generated[-1] in (*self.vocab.retrieve_ids, self.engine.eos_token_id) else generated
        full = (*head, *body)
        without_passage = (*self.prompts.markers_only, *body) if kind == "retrieval" else None
        segment = Segment(
            index=t,
            retrieval=kind,
            decision=decision,
            text=candidate.text,
            raw_text=self._raw_text(head, body, candidate),
            critique=candidate.critique,
            score=candidate.final_score,
            passage=candidate.passage,
            candidates=siblings,
            cut=outcome.cut is not None,
        )
        plain = tuple(token for token in body if token not in self._strip_ids)
        return _Step(segment, ContextPiece(tuple(full), without_passage), outcome.generation, plain, ends_path, outcome.cut)

    def _raw_text(self, head: Sequence[int], body: Sequence[int], candidate: Candidate) -> str:
        """The segment as the model saw it; the passage block's text is rebuilt rather than decoded (cheaper)."""
        if candidate.passage is not None and candidate.passage_index is not None and not candidate.passage_truncated:
            return passage_block_text(candidate.passage) + self.engine.decode(list(body))
        return self.engine.decode([*head, *body])

    def _candidate(
        self,
        turn: _Turn,
        generation: Generation,
        passage: Passage | None,
        index: int | None,
        *,
        with_passage: bool,
        evidence: bool,
        truncated: bool = False,
    ) -> Candidate:
        review = critique(generation, self.vocab, with_passage=with_passage, evidence=evidence)
        seq = sequence_score(generation)
        return Candidate(
            passage_index=index,
            passage=passage,
            text=self._plain_text(generation.token_ids),
            raw_text=generation.text,
            token_ids=tuple(generation.token_ids),
            critique=review,
            seq_score=seq,
            final_score=final_score(review, seq, turn.settings),
            finish_reason=generation.finish_reason,
            cumulative_logprob=generation.cumulative_logprob,
            passage_truncated=truncated,
        )

    def _plain_text(self, token_ids: Sequence[int]) -> str:
        return self.engine.decode([token for token in token_ids if token not in self._strip_ids]).strip()

    def _generate(
        self,
        turn: _Turn,
        prompts: list[list[int]],
        stop: tuple[int, ...],
        max_new_tokens: int,
        *,
        stream: bool = False,
        continuing: bool = False,
    ) -> list[Generation]:
        turn.check_cancel()
        on_token = None
        if stream and len(prompts) == 1:
            # A segment that goes on after max_new_tokens streams on from where it stopped.
            segment_started = continuing

            def on_token(token_id: int, delta: str) -> None:
                # Reflection tokens are shown as markers from the critique, not as text.
                nonlocal segment_started
                if token_id in self._strip_ids or not delta:
                    return
                if not segment_started:
                    # Segments are joined by one space in the answer text; stream them the same way.
                    delta = delta.lstrip()
                    if not delta:
                        return
                    if turn.streamed:
                        delta = " " + delta
                    segment_started = True
                turn.streamed = True
                turn.emit(TextDelta(delta))

        started = time.perf_counter()
        generations = self.engine.generate(
            prompts,
            max_new_tokens=max_new_tokens,
            stop_token_ids=stop,
            score_ids=self.vocab.score_ids,
            cancel=turn.cancel,
            on_token=on_token,
        )
        turn.timings["generation"] += time.perf_counter() - started
        if len(generations) != len(prompts):
            raise EngineError(
                f"The engine '{self.engine.name}' returned {len(generations)} generations for {len(prompts)} prompts."
            )
        for generation in generations:
            turn.logprob_sources.add(generation.logprob_source)
            if generation.finish_reason == "cancelled":
                raise DecodeCancelled()
        turn.check_cancel()
        return generations

    # -- the answer ----------------------------------------------------------------------------------------------
    def _build_answer(self, turn: _Turn, decision: RetrievalDecision, path: _Path) -> Answer:
        segments = tuple(turn.committed)
        # Citation n is passages[n-1]: passages the answer uses first, then the rest in order of retrieval.
        for passage_id in turn.retrieved:
            turn.citations.setdefault(passage_id, len(turn.citations) + 1)
        passages = tuple(
            sorted((turn.retrieved[pid] for pid in turn.citations), key=lambda p: turn.citations[p.id])
        )
        verdicts = dict(turn.verdicts)
        for segment in segments:
            # Only a segment that read its passage judged it: continue segments keep the passage's verdict.
            if segment.passage is not None and segment.critique.relevance is not None:
                verdicts[segment.passage.id] = segment.critique
        reason = self._abstain_reason(turn, segments, verdicts)
        plain_parts = [self.engine.decode(list(step.plain_ids)).strip() for step in path.steps]
        sources = turn.logprob_sources
        cut_segment = len(segments) - 1 if path.cut is not None and segments else None
        return Answer(
            question=turn.question,
            form=turn.settings.form,
            decision=decision,
            segments=segments,
            passages=passages,
            text=" ".join(part for part in plain_parts if part),
            raw_text="".join(segment.raw_text for segment in segments),
            score=path.mean,
            relevance_verdicts=verdicts,
            abstained=reason is not None,
            abstain_reason=reason,
            timings=dict(turn.timings),
            logprob_source="topk" if "topk" in sources else "exact",
            cut=cut_segment is not None,
            cut_segment=cut_segment,
            cut_reason=self._cut_reason(turn, path.cut, cut_segment, len(segments)) if cut_segment is not None else None,
        )

    def _cut_reason(self, turn: _Turn, cut: CutReason, index: int, count: int) -> str:
        settings = turn.settings
        where = f"Segment {index + 1}" if count > 1 else "The answer"
        context = f"the {self.engine.max_context}-token context of the model '{self.engine.model_name}'"
        if settings.form == "short":
            limit = f"decoding.max_new_tokens = {settings.max_new_tokens}"
        else:
            limit = (
                f"{turn.budget} generated tokens, decoding.max_new_tokens ({settings.max_new_tokens}) x "
                f"decoding.max_segments ({settings.max_segments})"
            )
        if cut == "budget":
            return (
                f"{where} was cut before the model finished it: the answer reached its limit of {limit}. "
                f"Raise decoding.max_new_tokens for a longer answer."
            )
        if cut == "context":
            return (
                f"{where} was cut before the model finished it: it filled {context}. "
                f"Ask a shorter question or lower decoding.max_new_tokens."
            )
        if cut == "next_budget":
            return (
                f"The answer stops after segment {index + 1}, unfinished: the model asked to go on, but the answer "
                f"reached its limit of {limit}. Raise decoding.max_new_tokens for a longer answer."
            )
        return (
            f"The answer stops after segment {index + 1}, unfinished: the model asked to go on, but the next segment "
            f"does not fit {context}. Lower decoding.max_new_tokens for room to go on."
        )

    def _abstain_reason(
        self, turn: _Turn, segments: Sequence[Segment], verdicts: dict[str, Critique]
    ) -> str | None:
        """Why the answer should not be taken as fact, in words; None when nothing argues against it."""
        reasons: list[str] = []
        if any(segment.decision.retrieve for segment in segments):
            if not turn.retrieved:
                reasons.append("The model needed to look something up, but the search found no passages.")
            else:
                best = max((v.relevance or 0.0) for v in verdicts.values()) if verdicts else 0.0
                if best <= RELEVANCE_FLOOR:
                    reasons.append(
                        f"None of the {len(turn.retrieved)} retrieved passages was judged relevant "
                        f"(highest relevance {best:.2f})."
                    )
        for segment in segments:
            review = segment.critique
            checked = segment.retrieval == "retrieval" or review.support_token is not None
            if segment.passage is None or not checked:
                continue
            support = review.support or 0.0
            if review.support_token == NO_SUPPORT or support < SUPPORT_FLOOR:
                token = review.support_token or "no support rating"
                where = f"segment {segment.index + 1}" if len(segments) > 1 else "the answer"
                reasons.append(
                    f"The model did not find {where} supported by its source [{segment.citation}] "
                    f"({token}, support {support:.2f})."
                )
        return " ".join(reasons) if reasons else None


def _joined(first: Generation, more: Generation) -> Generation:
    """One generation from a segment generated in several calls (the second goes on where the first stopped)."""
    return Generation(
        token_ids=[*first.token_ids, *more.token_ids],
        text=first.text + more.text,
        token_logprobs=[*first.token_logprobs, *more.token_logprobs],
        score_logprobs=[*first.score_logprobs, *more.score_logprobs],
        cumulative_logprob=first.cumulative_logprob + more.cumulative_logprob,
        finish_reason=more.finish_reason,
        logprob_source="topk" if "topk" in (first.logprob_source, more.logprob_source) else "exact",
    )


def _common_prefix(paths: Sequence[_Path]) -> list[Segment]:
    if not paths:
        return []
    prefix: list[Segment] = []
    for depth in range(min(len(path.steps) for path in paths)):
        step = paths[0].steps[depth]
        if any(path.steps[depth] is not step for path in paths[1:]):
            break
        prefix.append(step.segment)
    return prefix


def _first_max(items, key):
    """The item with the highest key; the first one on ties (lower passage index, earlier path)."""
    best, best_key = None, -math.inf
    for item in items:
        value = key(item)
        if best is None or value > best_key:
            best, best_key = item, value
    return best


_PUNCTUATION = re.compile(r"[^\w\s]")


def _normalise_answer(text: str) -> str:
    return " ".join(_PUNCTUATION.sub(" ", text.lower()).split())
