"""The llama.cpp engine runs the K candidates as parallel sequences of one batch and continues from cached
prefixes; neither may change a token or a logprob. The reference is the plain path: each prompt alone, read from
its first token (the cache cleared before it)."""

from __future__ import annotations

import threading

import pytest

from engine_agreement import build_prompts, sample_cases
from selfrag_tui.engines.base import GenerationCancelled
from selfrag_tui.reflection import ReflectionVocab

# f32 attention cache on both paths: what differs is only the order of floating-point sums.
LOGPROB_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def engine(tiny_gguf):
    from selfrag_tui.engines.llamacpp_engine import LlamaCppEngine

    loaded = LlamaCppEngine.load(tiny_gguf, n_threads=1, max_context=1024, kv_cache_tokens=4096,
                                 kv_cache_dtype="f32")
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def vocab(engine):
    return ReflectionVocab.from_engine(engine)


@pytest.fixture(scope="module")
def candidates(engine):
    """The decoder's short-form step: one prompt per passage, all sharing the instruction."""
    return build_prompts(engine.encode, sample_cases())[1]


def alone(engine, prompts, **kwargs):
    """The plain path: every prompt by itself on an empty cache."""
    results = []
    for prompt in prompts:
        engine.clear_cache()
        results.extend(engine.generate([prompt], **kwargs))
    return results


def distinct_prefixes(prompts) -> int:
    """Tokens of the prompts counted once per distinct prefix they end: what a reader that never repeats a
    shared prefix must evaluate."""
    return len({tuple(prompt[: n + 1]) for prompt in prompts for n in range(len(prompt))})


def assert_same(expected, actual):
    assert len(actual) == len(expected)
    for want, got in zip(expected, actual):
        assert got.token_ids == want.token_ids
        assert got.finish_reason == want.finish_reason
        assert got.token_logprobs == pytest.approx(want.token_logprobs, abs=LOGPROB_TOLERANCE)
        assert len(got.score_logprobs) == len(want.score_logprobs)
        for got_row, want_row in zip(got.score_logprobs, want.score_logprobs):
            assert got_row.keys() == want_row.keys()
            assert list(got_row.values()) == pytest.approx(list(want_row.values()), abs=LOGPROB_TOLERANCE)


def test_k_candidates_in_one_batch_give_the_tokens_and_logprobs_of_each_prompt_alone(engine, vocab, candidates):
    kwargs = dict(max_new_tokens=40, stop_token_ids=vocab.retrieve_ids, score_ids=vocab.score_ids)
    expected = alone(engine, candidates, **kwargs)
    assert len({tuple(g.token_ids) for g in expected}) > 1, "the candidates should differ"
    engine.clear_cache()
    before = engine.counters
    prompt_tokens, evaluated, steps = before.prompt_tokens, before.evaluated_tokens, before.decode_steps
    batched = engine.generate(candidates, **kwargs)
    assert_same(expected, batched)
    after = engine.counters
    assert after.prompt_tokens - prompt_tokens == sum(len(p) for p in candidates)
    # What the candidates share (the instruction; the first and last also share their question) is read once.
    assert after.evaluated_tokens - evaluated == distinct_prefixes(candidates) < sum(len(p) for p in candidates)
    # One decode step serves every running candidate.
    assert after.decode_steps - steps == max(len(g.token_ids) for g in batched) - 1


def test_next_token_logprobs_batched_and_cached_match_the_plain_path(engine, vocab):
    base = build_prompts(engine.encode, sample_cases())[0]
    ids = list(range(engine.n_vocab))
    expected = []
    for prompt in base:
        engine.clear_cache()
        expected.extend(engine.next_token_logprobs([prompt], ids))
    engine.clear_cache()
    for batched in (engine.next_token_logprobs(base, ids), engine.next_token_logprobs(base, ids)):  # 2nd: cached
        for want, got in zip(expected, batched, strict=True):
            assert list(got.values()) == pytest.approx(list(want.values()), abs=LOGPROB_TOLERANCE)


def test_a_prompt_that_extends_a_cached_one_reads_only_its_new_tokens(engine, vocab, candidates):
    """A long-form segment: the prompt is the previous prompt, its segment, and a new marker and passage."""
    kwargs = dict(max_new_tokens=12, stop_token_ids=vocab.retrieve_ids, score_ids=vocab.score_ids)
    engine.clear_cache()
    (first,) = engine.generate([candidates[0]], **kwargs)
    evaluated = engine.counters.evaluated_tokens
    suffix = engine.encode("[Retrieval]<paragraph>The second passage.</paragraph>", add_bos=False)
    follow_up = candidates[0] + first.token_ids[:-1] + suffix
    (cached,) = engine.generate([follow_up], **kwargs)
    # Everything but the suffix is in the cache (the last generated token was never evaluated: it was replaced).
    assert engine.counters.evaluated_tokens - evaluated == len(suffix)
    assert_same(alone(engine, [follow_up], **kwargs), [cached])


def test_a_segment_cut_by_max_new_tokens_goes_on_from_its_cache(engine, vocab, candidates):
    """The decoder's continuation call: same prompt plus what was generated; one token to read."""
    kwargs = dict(stop_token_ids=vocab.retrieve_ids, score_ids=vocab.score_ids)
    engine.clear_cache()
    (whole,) = engine.generate([candidates[1]], max_new_tokens=30, **kwargs)
    assert len(whole.token_ids) > 8, "the tiny model should write more than 8 tokens here"
    engine.clear_cache()
    (head,) = engine.generate(candidates[1:4], max_new_tokens=8, **kwargs)[:1]
    evaluated = engine.counters.evaluated_tokens
    (tail,) = engine.generate([candidates[1] + head.token_ids], max_new_tokens=22, **kwargs)
    assert engine.counters.evaluated_tokens - evaluated == 1
    assert head.token_ids + tail.token_ids == whole.token_ids
    assert head.token_logprobs + tail.token_logprobs == pytest.approx(whole.token_logprobs, abs=LOGPROB_TOLERANCE)


def test_beams_keep_their_own_cached_paths(engine, vocab, candidates):
    """Two paths continued in turn (beam width 2): each continues from its own cache, not the other's."""
    kwargs = dict(max_new_tokens=10, stop_token_ids=vocab.retrieve_ids, score_ids=vocab.score_ids)
    engine.clear_cache()
    firsts = engine.generate(candidates, **kwargs)
    suffix = engine.encode("[Retrieval]<paragraph>More.</paragraph>", add_bos=False)
    paths = [candidates[i] + firsts[i].token_ids[:-1] + suffix for i in (3, 0)]
    evaluated = engine.counters.evaluated_tokens
    second = [engine.generate([path, path + suffix], **kwargs) for path in paths]
    # Each call reads the suffix once for both prompts (shared), then the second prompt's extra suffix: nothing
    # of the cached paths again.
    assert engine.counters.evaluated_tokens - evaluated == 2 * (2 * len(suffix))
    for path, got in zip(paths, second):
        assert_same(alone(engine, [path, path + suffix], **kwargs), got)


def test_stop_ids_end_each_candidate_on_its_own(engine, vocab, candidates):
    kwargs = dict(max_new_tokens=60, score_ids=vocab.score_ids)
    plain = alone(engine, candidates, **kwargs)
    # Stop every candidate at the first reflection token the plain run produced; the others run on.
    stops = {t for g in plain for t in g.token_ids if t in vocab.score_ids}
    assert stops, "the tiny model should write reflection tokens"
    expected = alone(engine, candidates, stop_token_ids=sorted(stops), **kwargs)
    assert {g.finish_reason for g in expected} & {"stop"}
    engine.clear_cache()
    batched = engine.generate(candidates, stop_token_ids=sorted(stops), **kwargs)
    assert_same(expected, batched)
    for generation in batched:
        if generation.finish_reason == "stop":
            assert generation.token_ids[-1] in stops
            assert not set(generation.token_ids[:-1]) & stops


class CancelAfter(threading.Event):
    """A cancel event the user sets after the engine has looked at it `checks` times (between steps)."""

    def __init__(self, checks: int) -> None:
        super().__init__()
        self.checks = checks
        self.seen = 0

    def is_set(self) -> bool:
        self.seen += 1
        if self.seen > self.checks:
            self.set()
        return super().is_set()


def test_cancel_stops_a_batch_and_leaves_the_cache_consistent(engine, vocab, candidates):
    kwargs = dict(max_new_tokens=40, stop_token_ids=vocab.retrieve_ids, score_ids=vocab.score_ids)
    expected = alone(engine, candidates, **kwargs)
    engine.clear_cache()
    steps, generated = engine.counters.decode_steps, engine.counters.generated_tokens
    cancel = CancelAfter(checks=6)  # the prompts' chunks, then a few generation steps
    with pytest.raises(GenerationCancelled):
        engine.generate(candidates, cancel=cancel, **kwargs)
    assert 0 < engine.counters.decode_steps - steps < max(len(g.token_ids) for g in expected) - 1
    assert engine.counters.generated_tokens == generated  # nothing is returned from a cancelled call
    # The half-generated sequences stay cached; the next call continues from them and still agrees.
    assert_same(expected, engine.generate(candidates, **kwargs))


def test_a_batch_larger_than_the_cache_runs_in_groups_with_the_same_results(tiny_gguf, vocab, candidates, capfd):
    from selfrag_tui.engines.llamacpp_engine import LlamaCppEngine

    small = LlamaCppEngine.load(tiny_gguf, n_threads=1, max_context=512, kv_cache_tokens=512,
                                kv_cache_dtype="f32")
    try:
        kwargs = dict(max_new_tokens=40, stop_token_ids=vocab.retrieve_ids, score_ids=vocab.score_ids)
        expected = alone(small, candidates, **kwargs)
        small.clear_cache()
        batched = small.generate(candidates, **kwargs)
        assert small.counters.splits > 0
        assert_same(expected, batched)
        # llama.cpp's warning before each eviction must not reach the terminal (it would scribble on the UI).
        assert "memory slot" not in capfd.readouterr().err
    finally:
        small.close()


class ForcedSegments:
    """The engine with every generation that reaches `segment_tokens` ended by `[Retrieval]` (its last token
    replaced, as a real stop token is never evaluated), so a long-form turn has several segments; plain=True
    runs each prompt alone on an empty cache. Records, per generate call, the prompt tokens evaluated and the
    tokens new to the turn (not in any earlier prompt or generation)."""

    def __init__(self, engine, segment_tokens: int, *, plain: bool) -> None:
        self.engine = engine
        self.segment_tokens = segment_tokens
        self.plain = plain
        self.vocab = ReflectionVocab.from_engine(engine)
        self.seen: dict = {}
        self.calls: list[tuple[int, int]] = []

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def _new(self, ids) -> int:
        node, new = self.seen, 0
        for token in ids:
            if token not in node:
                node[token] = {}
                new += 1
            node = node[token]
        return new

    def next_token_logprobs(self, prompts, token_ids):
        for prompt in prompts:
            self._new(prompt)
        if self.plain:
            return [self._alone(lambda: self.engine.next_token_logprobs([p], token_ids)) for p in prompts]
        return self.engine.next_token_logprobs(prompts, token_ids)

    def generate(self, prompts, *, max_new_tokens, **kwargs):
        from dataclasses import replace

        new = sum(self._new(p) for p in prompts)
        evaluated = self.engine.counters.evaluated_tokens
        cap = min(max_new_tokens, self.segment_tokens)
        if self.plain:
            generations = [self._alone(lambda: self.engine.generate([p], max_new_tokens=cap, **kwargs)) for p in prompts]
        else:
            generations = self.engine.generate(prompts, max_new_tokens=cap, **kwargs)
        self.calls.append((new, self.engine.counters.evaluated_tokens - evaluated))
        forced = []
        for prompt, generation in zip(prompts, generations):
            self._new(list(prompt) + generation.token_ids[:-1])
            if generation.finish_reason == "length" and len(generation.token_ids) == self.segment_tokens:
                ids = [*generation.token_ids[:-1], self.vocab.retrieval]
                generation = replace(generation, token_ids=ids, text=self.engine.decode(ids), finish_reason="stop")
            forced.append(generation)
        return forced

    def _alone(self, call):
        self.engine.clear_cache()
        (result,) = call()
        return result


def test_long_form_turn_reads_only_new_tokens_and_answers_as_the_plain_path(engine, vocab):
    from selfrag_tui.selfrag.decoder import SelfRagDecoder
    from selfrag_tui.selfrag.settings import DecodingSettings
    from selfrag_tui.selfrag.types import Passage

    cases = sample_cases()
    passages = [Passage(id=f"p{i}", title=title, text=text, source="sample") for i, (_, title, text) in enumerate(cases)]
    settings = DecodingSettings(form="long", mode="always", k=3, max_segments=3, beam_width=2, max_new_tokens=6)

    def turn(plain: bool):
        engine.clear_cache()
        forced = ForcedSegments(engine, 6, plain=plain)
        answer = SelfRagDecoder(forced, lambda query, k: passages[:k], settings).answer(cases[0][0])
        return answer, forced.calls

    plain, _ = turn(plain=True)
    cached, calls = turn(plain=False)
    assert len(cached.segments) == 3 and len(calls) == 5  # 1 + beam 2 x 2 later segments, K=3 prompts each
    assert [s.text for s in cached.segments] == [s.text for s in plain.segments]
    assert cached.score == pytest.approx(plain.score, abs=LOGPROB_TOLERANCE)
    for got, want in zip(cached.segments, plain.segments):
        assert [c.final_score for c in got.candidates] == pytest.approx(
            [c.final_score for c in want.candidates], abs=LOGPROB_TOLERANCE
        )
    # A later segment reads its marker and passages, not the question and the path's earlier segments again.
    for new, evaluated in calls[1:]:
        assert evaluated <= 1.2 * new, calls


def test_the_kv_cache_setting_reaches_the_engine(tiny_gguf, vocab, candidates):
    """model.kv_cache_tokens sizes the cache the candidates share: at the context length they run in groups, with
    room for all of them in one batch."""
    from selfrag_tui.engines.loader import load_engine
    from selfrag_tui.engines.settings import ModelSettings

    kwargs = dict(max_new_tokens=40, stop_token_ids=vocab.retrieve_ids, score_ids=vocab.score_ids)
    splits = {}
    for cache in (None, 8192):
        settings = ModelSettings(model=str(tiny_gguf), engine="llamacpp", n_threads=1, max_model_len=512,
                                 kv_cache_tokens=cache, kv_cache_dtype="f32")
        loaded = load_engine(settings)
        try:
            loaded.generate(candidates, **kwargs)
            splits[cache] = loaded.counters.splits
        finally:
            loaded.close()
    assert splits[None] > 0 and splits[8192] == 0
