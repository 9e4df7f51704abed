"""Ingest throughput against the physical limit, and the cost of an unchanged re-ingest.

1. ingest throughput / raw embedding throughput on the same passages (target >= 0.85): how much the pipeline
   (discovery, hashing, PDF parsing, chunking, LanceDB writes, index upkeep) adds on top of embedding.
2. first ingest time / unchanged re-ingest time (target >= 50x): re-running on an unchanged folder only hashes.
3. with several --backends: each backend's ingest throughput / the first one's (onnx-int8 / torch target >= 2).

Run: HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_ingest.py [--docs N] [--backends torch onnx-int8]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

WORDS = ("the of and to in is was for on that with as by at from it an be this which or are have had not but "
         "were their they one all been has more when there can who so what about out up some them into than "
         "water soil garden llama alpaca fleece shearing pasture hay bicycle chain brake tyre gear router "
         "network cable signal bread starter dough oven flour crust proof yeast season spring summer autumn "
         "winter morning evening farm valley river mountain village market price weight height distance "
         "kilogram metre hour minute week month year small large quick slow careful simple common rare").split()


def sentence(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(8, 22))]
    return " ".join(words).capitalize() + "."


def make_corpus(folder: Path, docs: int, seed: int = 7) -> None:
    """Markdown notes with headings, plain-text notes and multi-page PDFs, a few hundred words to pages each."""
    from fpdf import FPDF

    rng = random.Random(seed)
    for i in range(docs):
        kind = i % 3
        if kind == 0:
            sections = [f"## Section {s}\n\n" + " ".join(sentence(rng) for _ in range(rng.randint(6, 14)))
                        for s in range(rng.randint(2, 4))]
            (folder / f"note{i:03d}.md").write_text(f"# Note {i}\n\n" + "\n\n".join(sections), encoding="utf-8")
        elif kind == 1:
            (folder / f"text{i:03d}.txt").write_text(" ".join(sentence(rng) for _ in range(rng.randint(20, 40))),
                                                     encoding="utf-8")
        else:
            pdf = FPDF()
            pdf.set_font("Helvetica", size=9)
            for _ in range(rng.randint(2, 4)):
                pdf.add_page()
                pdf.multi_cell(0, 4, " ".join(sentence(rng) for _ in range(rng.randint(12, 20))))
            pdf.output(str(folder / f"paper{i:03d}.pdf"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--docs", type=int, default=36, help="documents in the synthetic corpus (default 36)")
    parser.add_argument("--backends", nargs="+", default=["onnx-int8"],
                        help="embedding backends to compare (torch, onnx, onnx-int8); the first is the reference")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice; 1 resists CPU contention)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    from ingest.chunking import chunk_document
    from ingest.embedding import Embedder
    from ingest.loaders import load_file
    from ingest.pipeline import discover, ingest_paths
    from ingest.store import DocumentStore

    import torch

    rates: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus"
        corpus.mkdir()
        make_corpus(corpus, args.docs)
        files = discover([corpus]).files
        texts = [c.embedding_text() for f in files for c in chunk_document(load_file(f.path))]
        for backend in args.backends:
            started = time.perf_counter()
            embedder = Embedder.load(backend=backend)
            print(f"\nembedder {embedder.name} ({embedder.dimension}-d, {embedder.backend}) loaded in "
                  f"{time.perf_counter() - started:.1f} s; torch threads {torch.get_num_threads()}, load average "
                  f"{os.getloadavg()[0]:.1f}" + (f"; {embedder.note}" if embedder.note else ""))
            embedder.embed(texts[:32])  # warm-up: first batches pay one-off allocation costs

            started = time.perf_counter()
            embedder.embed(texts, batch_size=32)
            raw_s = time.perf_counter() - started
            raw_rate = len(texts) / raw_s

            store = DocumentStore.open(Path(tmp) / f"store-{backend}")
            store.use_embedder(embedder)
            started = time.perf_counter()
            report = ingest_paths(store, [corpus])
            ingest_s = time.perf_counter() - started
            assert report.ok and store.count_chunks() == len(texts), (report.failed, store.count_chunks(), len(texts))
            ingest_rate = rates[backend] = len(texts) / ingest_s

            started = time.perf_counter()
            again = ingest_paths(store, [corpus])
            unchanged_s = time.perf_counter() - started
            assert len(again.unchanged) == len(files)

            print(f"corpus: {len(files)} files, {len(texts)} passages")
            print(f"raw embedding        {raw_s:7.2f} s  {raw_rate:7.1f} passages/s")
            print(f"ingest (first run)   {ingest_s:7.2f} s  {ingest_rate:7.1f} passages/s")
            print(f"ingest (unchanged)   {unchanged_s * 1000:7.1f} ms")
            print(f"ingest / raw embedding throughput: {ingest_rate / raw_rate:.2f}  (target >= 0.85)")
            print(f"first ingest / unchanged re-ingest: {ingest_s / unchanged_s:.0f}x  (target >= 50x)")
    reference = args.backends[0]
    for backend in args.backends[1:]:
        print(f"ingest throughput {backend} / {reference}: {rates[backend] / rates[reference]:.2f}")


if __name__ == "__main__":
    main()
