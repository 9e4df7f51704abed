"""The 7B Self-RAG model on a CPU through the llama.cpp engine: raw speed, one short-form and one long-form turn,
and what batching the K candidates and reusing cached prefixes buy.

Figures:
1. Prefill (prompt reading) and decode tokens/s of one sequence.
2. K candidate prompts of one retrieval step (the decoder's real prompts over the sample documents): one batched
   call vs K calls one after the other on the same engine. Goal: batched at least 2x faster.
3. A short-form turn with K passages through the real decoder.
4. A long-form turn of three segments through the real decoder; per engine call, the prompt tokens evaluated vs
   the tokens new to that segment (not in any earlier prompt or generation of the turn). Goal: <= 1.2.

The model is normally a randomly initialised Llama-2-7B-shaped GGUF (scripts/make_random_7b_gguf.py): speed
depends on shapes and tensor types, not on weight values. Random weights never write `[Retrieval]`, so the
long-form turn forces its segment structure: retrieval is `always`, and every generation that reaches
`--segment-tokens` tokens ends there as if the model had written `[Retrieval]` (its last token is replaced by it;
that token was never evaluated, exactly as a real stop token). The decoder then opens the next segment with K
new passages after the path's text, as with the real model.

Run (not in CI; ~15 min on 2 cores):
    nice -n 10 .venv/bin/python benchmarks/bench_cpu_7b.py --model /work/models-cache/random-selfrag-7b-q8_0.gguf
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from selfrag_tui.engines.llamacpp_engine import LlamaCppEngine  # noqa: E402
from selfrag_tui.reflection import ReflectionVocab  # noqa: E402
from selfrag_tui.selfrag.decoder import SelfRagDecoder  # noqa: E402
from selfrag_tui.selfrag.settings import DecodingSettings  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_decoder import OverlapRetriever, sample_passages  # noqa: E402  (the same corpus and retriever)

QUESTION = "How long does the warranty last and what does it cover?"
BATCH_GOAL = 2.0
REUSE_GOAL = 1.2


class SeenTokens:
    """A trie of every token sequence the model has read in this turn: what is new to a call is what it adds."""

    def __init__(self) -> None:
        self.root: dict[int, dict] = {}

    def add(self, ids) -> int:
        node, new = self.root, 0
        for token in ids:
            if token not in node:
                node[token] = {}
                new += 1
            node = node[token]
        return new


class ForcedSegments:
    """The llama.cpp engine, with every generation that reaches `segment_tokens` ended by `[Retrieval]`, and a
    record of each call's evaluated and new prompt tokens."""

    def __init__(self, engine: LlamaCppEngine, segment_tokens: int) -> None:
        self.engine = engine
        self.segment_tokens = segment_tokens
        self.vocab = ReflectionVocab.from_engine(engine)
        self.seen = SeenTokens()
        self.calls: list[dict] = []

    def __getattr__(self, name):
        return getattr(self.engine, name)

    def next_token_logprobs(self, prompts, token_ids):
        before = copy.copy(self.engine.counters)
        new = sum(self.seen.add(p) for p in prompts)
        started = time.perf_counter()
        result = self.engine.next_token_logprobs(prompts, token_ids)
        self._record("decision", prompts, new, before, time.perf_counter() - started, 0)
        return result

    def generate(self, prompts, *, max_new_tokens, **kwargs):
        before = copy.copy(self.engine.counters)
        new = sum(self.seen.add(p) for p in prompts)
        started = time.perf_counter()
        cap = min(max_new_tokens, self.segment_tokens)
        generations = self.engine.generate(prompts, max_new_tokens=cap, **kwargs)
        forced = []
        for prompt, generation in zip(prompts, generations):
            self.seen.add(list(prompt) + generation.token_ids[:-1])
            if generation.finish_reason == "length" and len(generation.token_ids) == self.segment_tokens:
                ids = [*generation.token_ids[:-1], self.vocab.retrieval]
                generation = replace(generation, token_ids=ids, text=self.engine.decode(ids), finish_reason="stop")
            forced.append(generation)
        paragraphs = max(list(p).count(self.vocab.paragraph_open) for p in prompts)
        self._record(f"segment {paragraphs}", prompts, new, before, time.perf_counter() - started,
                     sum(len(g.token_ids) for g in generations))
        return forced

    def _record(self, what, prompts, new, before, seconds, generated) -> None:
        after = self.engine.counters
        self.calls.append(dict(
            what=what, prompts=len(prompts), prompt_tokens=sum(len(p) for p in prompts), new=new,
            evaluated=after.evaluated_tokens - before.evaluated_tokens, generated=generated, seconds=seconds,
        ))


def load_average() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"


def raw_speed(engine: LlamaCppEngine, prefill_tokens: int, decode_tokens: int) -> tuple[float, float]:
    prompt = [engine.bos_token_id] + engine.encode(" ".join(p.text for p in sample_passages()), add_bos=False)
    prompt = prompt[:prefill_tokens]
    engine.clear_cache()
    started = time.perf_counter()
    engine.next_token_logprobs([prompt], [engine.eos_token_id])
    prefill = len(prompt) / (time.perf_counter() - started)
    started = time.perf_counter()
    (generation,) = engine.generate([prompt], max_new_tokens=decode_tokens)
    decode = len(generation.token_ids) / (time.perf_counter() - started)  # the prompt is cached: one token read
    print(f"prefill: {len(prompt)} tokens at {prefill:.1f} tokens/s")
    print(f"decode:  {len(generation.token_ids)} tokens at {decode:.2f} tokens/s (one sequence)")
    return prefill, decode


def batched_vs_sequential(engine: LlamaCppEngine, k: int, max_new: int, passage_words: int) -> float:
    decoder = SelfRagDecoder(engine, lambda q, n: [])
    retriever = OverlapRetriever(trimmed_passages(passage_words))
    base = decoder.prompts.base_ids(QUESTION)
    prompts = [decoder.prompts.assemble(base, [], max_new_tokens=max_new, passage=p).ids for p in retriever(QUESTION, k)]
    kwargs = dict(max_new_tokens=max_new, score_ids=decoder.vocab.score_ids)  # no stop: every candidate runs full
    engine.clear_cache()
    started = time.perf_counter()
    for prompt in prompts:
        engine.generate([prompt], **kwargs)
    sequential = time.perf_counter() - started
    engine.clear_cache()
    started = time.perf_counter()
    engine.generate(prompts, **kwargs)
    batched = time.perf_counter() - started
    lengths = [len(p) for p in prompts]
    print(f"\n== K={k} candidates, prompts {min(lengths)}-{max(lengths)} tokens, {max_new} new tokens each ==")
    print(f"sequential ({k} calls): {sequential:7.1f} s")
    print(f"batched (one call):    {batched:7.1f} s")
    ratio = sequential / batched
    print(f"sequential / batched: {ratio:.2f}x  (goal >= {BATCH_GOAL:.1f}x: {'met' if ratio >= BATCH_GOAL else 'NOT met'})")
    return ratio


def trimmed_passages(words: int):
    return [replace(p, text=" ".join(p.text.split()[:words])) for p in sample_passages()]


def short_form(engine: LlamaCppEngine, k: int, max_new: int, passage_words: int) -> None:
    engine.clear_cache()
    settings = DecodingSettings(form="short", mode="always", k=k, max_new_tokens=max_new)
    decoder = SelfRagDecoder(engine, OverlapRetriever(trimmed_passages(passage_words)), settings)
    before = copy.copy(engine.counters)
    started = time.perf_counter()
    answer = decoder.answer(QUESTION)
    seconds = time.perf_counter() - started
    after = engine.counters
    print(f"\n== short-form turn: K={k}, max_new_tokens={max_new}, passages of {passage_words} words ==")
    print(f"turn: {seconds:.1f} s (generation {answer.timings['generation']:.1f} s); prompt tokens "
          f"{after.prompt_tokens - before.prompt_tokens}, evaluated {after.evaluated_tokens - before.evaluated_tokens}, "
          f"generated {after.generated_tokens - before.generated_tokens}")


def long_form(engine: LlamaCppEngine, k: int, segment_tokens: int, passage_words: int, beam: int) -> float:
    engine.clear_cache()
    forced = ForcedSegments(engine, segment_tokens)
    settings = DecodingSettings(form="long", mode="always", k=k, max_segments=3, beam_width=beam,
                                max_new_tokens=segment_tokens)
    decoder = SelfRagDecoder(forced, OverlapRetriever(trimmed_passages(passage_words)), settings)
    started = time.perf_counter()
    answer = decoder.answer(QUESTION)
    seconds = time.perf_counter() - started
    print(f"\n== long-form turn: 3 segments forced at {segment_tokens} tokens, K={k}, beam {beam}, passages of "
          f"{passage_words} words ==")
    print(f"turn: {seconds:.1f} s, {len(answer.segments)} segments in the answer")
    print(f"{'call':12} {'prompts':>7} {'prompt tok':>10} {'new':>6} {'evaluated':>9} {'eval/new':>8} {'gen':>5} {'s':>7}")
    worst = 0.0
    per_segment: dict[str, list[int]] = {}
    for call in forced.calls:
        ratio = call["evaluated"] / max(call["new"], 1)
        print(f"{call['what']:12} {call['prompts']:7} {call['prompt_tokens']:10} {call['new']:6} {call['evaluated']:9} "
              f"{ratio:8.2f} {call['generated']:5} {call['seconds']:7.1f}")
        totals = per_segment.setdefault(call["what"], [0, 0, 0])
        totals[0] += call["new"]
        totals[1] += call["evaluated"]
        totals[2] += call["prompt_tokens"]
    for what, (new, evaluated, prompt_tokens) in per_segment.items():
        ratio = evaluated / max(new, 1)
        if what.startswith("segment"):
            worst = max(worst, ratio)
        print(f"{what}: new {new}, evaluated {evaluated} ({ratio:.2f}x new), handed in {prompt_tokens} "
              f"(without the cache: {prompt_tokens / max(evaluated, 1):.1f}x more)")
    print(f"worst segment evaluated / new: {worst:.2f}  (goal <= {REUSE_GOAL}: {'met' if worst <= REUSE_GOAL else 'NOT met'})")
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="/work/models-cache/random-selfrag-7b-q8_0.gguf")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads (default: every usable CPU)")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=32, help="new tokens per candidate in figure 2 and 3")
    parser.add_argument("--segment-tokens", type=int, default=16, help="tokens per forced long-form segment")
    parser.add_argument("--passage-words", type=int, default=150, help="words per passage (the store's chunks: 150)")
    parser.add_argument("--beam", type=int, default=2)
    parser.add_argument("--prefill-tokens", type=int, default=512)
    parser.add_argument("--decode-tokens", type=int, default=16)
    parser.add_argument("--kv-cache-tokens", type=int, default=None)
    parser.add_argument("--only", choices=["speed", "batch", "short", "long"], nargs="*", default=None)
    args = parser.parse_args()
    only = set(args.only or ["speed", "batch", "short", "long"])
    print(f"model {args.model}; {os.cpu_count()} CPUs; load average at start {load_average()}")
    started = time.perf_counter()
    engine = LlamaCppEngine.load(args.model, n_threads=args.threads, kv_cache_tokens=args.kv_cache_tokens)
    print(f"loaded in {time.perf_counter() - started:.1f} s (context {engine.max_context})")
    if "speed" in only:
        raw_speed(engine, args.prefill_tokens, args.decode_tokens)
    if "batch" in only:
        batched_vs_sequential(engine, args.k, args.max_new_tokens, args.passage_words)
    if "short" in only:
        short_form(engine, args.k, args.max_new_tokens, args.passage_words)
    if "long" in only:
        long_form(engine, args.k, args.segment_tokens, args.passage_words, args.beam)
    print(f"\nload average at end {load_average()}")
    engine.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
