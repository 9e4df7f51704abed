"""The Self-RAG decoder's own cost, and what batching the K candidate prompts buys.

1. Decoder overhead: for a set of questions (factual ones that retrieve, chit-chat that does not), the time the
   decoder spends outside the engine and the retriever (prompt building, scoring, beam bookkeeping, events) as a
   share of engine time (decision + generation). Target: <= 5 %.
2. Batching: the K prompts of one retrieval step (the decoder's real prompts) generated in ONE engine call vs K
   separate calls on the same engine, and the ratio.

It runs the real transformers engine, by default with the bundled tiny Self-RAG model; `--model` takes any
Self-RAG model folder or hub name (e.g. selfrag/selfrag_llama2_7b on a GPU). Passages are the sample_docs chunks
as the store holds them; the retriever is a word-overlap ranking over them, so retrieval costs next to nothing and
is reported apart (it is neither decoder nor engine time).

Run: OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 .venv/bin/python benchmarks/bench_decoder.py
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from selfrag_tui.application import locations  # noqa: E402
from selfrag_tui.selfrag.decoder import SelfRagDecoder  # noqa: E402
from selfrag_tui.selfrag.settings import DecodingSettings  # noqa: E402
from selfrag_tui.selfrag.types import Passage  # noqa: E402

TARGET_OVERHEAD = 0.05
_WORDS = re.compile(r"\w+")


def sample_passages() -> list[Passage]:
    """The sample_docs chunks, as the document store would hold them."""
    from ingest.chunking import chunk_document
    from ingest.loaders import load_file

    passages: list[Passage] = []
    for path in sorted(locations.sample_docs_path().iterdir()):
        if path.suffix.lower() not in (".pdf", ".md", ".txt"):
            continue
        document = load_file(path)
        for chunk in chunk_document(document):
            passages.append(
                Passage(
                    id=f"{path.name}#{chunk.ordinal}",
                    title=chunk.title,
                    text=chunk.text,
                    source=str(path),
                    doc_title=document.title,
                    page_start=chunk.page_start,
                    page_end=chunk.page_end,
                    heading=chunk.heading,
                )
            )
    return passages


class OverlapRetriever:
    """Ranks passages by shared words with the query: deterministic and nearly free."""

    def __init__(self, passages: list[Passage]) -> None:
        self.passages = passages
        self.words = [set(_WORDS.findall(f"{p.title} {p.text}".lower())) for p in passages]

    def __call__(self, query: str, k: int) -> list[Passage]:
        query_words = set(_WORDS.findall(query.lower()))
        ranked = sorted(range(len(self.passages)), key=lambda i: (-len(query_words & self.words[i]), i))
        return [self.passages[i] for i in ranked[:k]]


def questions(count: int) -> list[str]:
    qa = json.loads((ROOT / "scripts" / "sample_qa.json").read_text(encoding="utf-8"))
    factual = [item["question"] for item in qa["factual"]]
    chitchat = [item["prompt"] for item in qa["chitchat"]]
    half = max(1, count // 2)
    return factual[:half] + chitchat[: count - half]


def overhead(decoder: SelfRagDecoder, asked: list[str], settings: DecodingSettings, repeats: int) -> None:
    print(f"\n== decoder overhead ({settings.form} form, k={settings.k}, beam {settings.beam_width}) ==")
    print(f"{'question':52} {'retr':>5} {'segs':>4} {'engine ms':>10} {'decoder ms':>10} {'share':>7}")
    engine_total = decoder_total = 0.0
    for question in asked:
        runs = []
        for _ in range(repeats):
            answer = decoder.answer(question, settings=settings)
            t = answer.timings
            engine_s = t["decision"] + t["generation"]
            runs.append((engine_s, t["total"] - engine_s - t["retrieval"], answer))
        engine_s, decoder_s, answer = min(runs, key=lambda run: run[0] + run[1])
        engine_total += engine_s
        decoder_total += decoder_s
        retrieved = "yes" if any(s.passage is not None for s in answer.segments) else "no"
        print(
            f"{question[:52]:52} {retrieved:>5} {len(answer.segments):>4} {engine_s * 1000:10.1f} "
            f"{decoder_s * 1000:10.2f} {decoder_s / engine_s:7.2%}"
        )
    share = decoder_total / engine_total
    print(f"all questions: engine {engine_total * 1000:.1f} ms, decoder {decoder_total * 1000:.2f} ms")
    print(f"decoder overhead / engine time: {share:.2%}  (target <= {TARGET_OVERHEAD:.0%}: "
          f"{'met' if share <= TARGET_OVERHEAD else 'NOT met'})")


def batching(decoder: SelfRagDecoder, question: str, retriever: OverlapRetriever, k: int, max_new: int, repeats: int) -> None:
    engine, prompts = decoder.engine, decoder.prompts
    base = prompts.base_ids(question)
    batch = [prompts.assemble(base, [], max_new_tokens=max_new, passage=p).ids for p in retriever(question, k)]
    stop = (*decoder.vocab.retrieve_ids, engine.eos_token_id)
    score_ids = decoder.vocab.score_ids

    def one_call() -> float:
        start = time.perf_counter()
        engine.generate(batch, max_new_tokens=max_new, stop_token_ids=stop, score_ids=score_ids)
        return time.perf_counter() - start

    def separate_calls() -> float:
        start = time.perf_counter()
        for prompt in batch:
            engine.generate([prompt], max_new_tokens=max_new, stop_token_ids=stop, score_ids=score_ids)
        return time.perf_counter() - start

    one_call(), separate_calls()  # warm-up
    batched = statistics.median(one_call() for _ in range(repeats))
    separate = statistics.median(separate_calls() for _ in range(repeats))
    lengths = [len(p) for p in batch]
    print(f"\n== K={len(batch)} prompts ({min(lengths)}-{max(lengths)} tokens), max_new_tokens={max_new} ==")
    print(f"one batched call   p50 {batched * 1000:9.1f} ms")
    print(f"{len(batch)} separate calls p50 {separate * 1000:9.1f} ms")
    print(f"separate / batched: {separate / batched:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(locations.demo_model_path()), help="Self-RAG model folder or hub name")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: the library's)")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--questions", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-new-tokens", type=int, default=200)
    args = parser.parse_args()

    model = Path(args.model)
    if args.model == str(locations.demo_model_path()) and not (model / "config.json").is_file():
        print(f"The tiny demo model is not at {model}; train it first (scripts/train_tiny_model.py) or pass --model.")
        return 2
    from selfrag_tui.engines.transformers_engine import TransformersEngine

    started = time.perf_counter()
    engine = TransformersEngine.load(args.model, device=args.device, dtype=args.dtype, n_threads=args.threads)
    print(f"engine: transformers, model {args.model}, loaded in {time.perf_counter() - started:.1f} s")
    info = engine.info()
    print(f"device {info.device}, dtype {info.dtype}, context {engine.max_context} tokens")

    passages = sample_passages()
    retriever = OverlapRetriever(passages)
    decoder = SelfRagDecoder(engine, retriever)
    asked = questions(args.questions)
    print(f"{len(passages)} passages from sample_docs; {len(asked)} questions; best of {args.repeats} runs each")
    for form in ("long", "short"):
        settings = DecodingSettings(form=form, k=args.k, max_new_tokens=args.max_new_tokens)
        overhead(decoder, asked, settings, args.repeats)
    batching(decoder, asked[0], retriever, args.k, args.max_new_tokens, args.repeats)
    engine.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
