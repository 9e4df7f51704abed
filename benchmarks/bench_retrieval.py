"""Retrieval quality on real documents: does search put the passage that holds the answer first (R@1), in the
top five (R@5), and how high on average (MRR over the top 10)? Also ingest speed (passages per second).

Four kinds of corpus (five corpora), read from the folder given by --data (this script downloads nothing):

- `papers`: long multi-section scientific papers with reading-comprehension questions (QASPER-style, from the
  L-Eval collection): `papers/scientific_qa.jsonl` holds the papers with questions, `papers/paper_assistant.jsonl`
  more papers that only compete as distractors. Each paper becomes a Markdown file (its section titles as
  headings). Only questions whose answer is written word for word in the paper are kept; the passages of that
  paper that contain the answer are the right ones.
- `filings`: nine quarterly 10-Q PDFs of one company (Patriot Transportation, 2020-2023) whose PDF titles are
  not usable (`<submission><type> 10-Q`), with 34 hand-written questions in benchmarks/data/filings_questions.json
  that name a quarter or say "latest": the right company is easy, the right quarter is the test.
- `documents`: the same papers with all their questions, plus L-Eval's eight earnings-call transcripts
  (`papers/financial_qa.jsonl`) with theirs, scored by document: is a passage of the right paper or call among
  the first k? (Many paper questions, "What datasets do they use?", name no paper, so R@1 is low here.)
- `paragraphs`: short encyclopedia paragraphs, one note file each: the first ten articles of SQuAD 2.0's
  *training* split (694 paragraphs of ten topics, so the distractors share the right paragraph's subject), with
  the answerable questions (every fourth by default, see --paragraph-stride). The right passage is the paragraph's.
- `biomedical`: PubMed abstracts as BioASQ 12B's golden sets quote them: each abstract becomes a note of its
  title and the quoted sentences in their order, and a question is right when a passage of any abstract it cites
  comes back. The abstracts are excerpts, so passages are shorter than whole abstracts.

Get the data (public GitHub repositories):

    git clone --depth 1 https://github.com/OpenLMLab/LEval /tmp/LEval
    git clone --depth 1 https://github.com/patriottrans/patriottrans.github.io /tmp/pati
    mkdir -p DATA/papers DATA/filings
    cp /tmp/LEval/LEval-data/Open-ended-tasks/{scientific_qa,paper_assistant,financial_qa}.jsonl DATA/papers/
    for q in 20201231 20210331 20210630 20211231 20220331 20220630 20221231 20230331 20230630; do
        cp /tmp/pati/assets/filings/pati-$q-10q.pdf DATA/filings/; done
    git clone --depth 1 https://github.com/PhongNTDo/guide_train_MRC_transformers /tmp/squad
    mkdir -p DATA/paragraphs && cp /tmp/squad/train-v2.0.json DATA/paragraphs/squad2-train-subset.json
    git clone --depth 1 https://github.com/MattMorgis/bioasq-rag /tmp/bioasq
    mkdir -p DATA/biomedical && cp /tmp/bioasq/data/BioASQ-12b/goldset/12B*_golden.json DATA/biomedical/

Run (a few minutes on two cores):

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/bench_retrieval.py --data DATA [--backend torch|onnx|onnx-int8]
        [--corpora papers documents filings paragraphs biomedical] [--methods vector fts hybrid ...]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

FILINGS_QUESTIONS = Path(__file__).resolve().parent / "data" / "filings_questions.json"
DEPTH = 10


@dataclass
class Question:
    text: str
    doc_file: str | tuple[str, ...]
    """File name of the document that answers it (or of each document that does)."""
    answer: str | None
    """Text the right passage holds; None: any passage of the answering document counts."""


def normalise(text: str) -> str:
    """Lower case, whitespace collapsed, and spaces PDF extraction leaves inside numbers ("$. 33") dropped."""
    text = " ".join(text.lower().split())
    return re.sub(r"(?<=[$.(]) (?=\d)", "", text)


_HEADING = re.compile(r"^[A-Z][^.!?:]{1,80}$")


def paper_markdown(title: str, text: str) -> str:
    """A paper as Markdown: short lines that read as section titles ("Introduction", "Related Work") become
    headings, so the paper has sections as a real one does."""
    lines = [f"# {title}", ""]
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if _HEADING.match(line) and len(line.split()) <= 8:
            lines += ["", f"## {line}", ""]
        else:
            lines += [line, ""]
    return "\n".join(lines)


def _papers(data: Path, folder: Path) -> list[tuple[str, dict]]:
    """The L-Eval papers written as Markdown files into `folder`: (file name, row) per row, the rows of
    `paper_assistant.jsonl` (distractors) without questions. A paper L-Eval lists twice (with different
    questions) is written once, so a second copy never competes with the first for every question."""
    rows = [json.loads(line) for line in (data / "papers" / "scientific_qa.jsonl").open(encoding="utf-8")]
    distractors = data / "papers" / "paper_assistant.jsonl"
    if distractors.exists():
        rows += [dict(row, instructions=[], outputs=[]) for row in map(json.loads, distractors.open(encoding="utf-8"))]
    written: dict[str, str] = {}
    out = []
    for index, row in enumerate(rows):
        if row["input"] not in written:
            written[row["input"]] = f"paper-{index:02d}.md"
            (folder / written[row["input"]]).write_text(paper_markdown(f"Paper {index}", row["input"]),
                                                        encoding="utf-8")
        out.append((written[row["input"]], row))
    return out


def build_papers(data: Path, folder: Path, max_questions: int | None) -> list[Question]:
    questions: list[Question] = []
    for name, row in _papers(data, folder):
        body = normalise(row["input"])
        for question, answer in zip(row["instructions"], row["outputs"]):
            answer = answer.strip().rstrip(".")
            if len(answer.split()) >= 2 and normalise(answer) in body:
                questions.append(Question(question, name, answer))
    return questions[:max_questions] if max_questions else questions


def build_filings(data: Path, folder: Path, max_questions: int | None) -> list[Question]:
    import shutil

    for pdf in sorted((data / "filings").glob("*.pdf")):
        shutil.copy(pdf, folder / pdf.name)
    spec = json.loads(FILINGS_QUESTIONS.read_text(encoding="utf-8"))
    questions = [Question(q["q"], q["file"], q["answer"]) for q in spec["questions"]]
    return questions[:max_questions] if max_questions else questions


PARAGRAPH_STRIDE = 4


def build_paragraphs(data: Path, folder: Path, max_questions: int | None) -> list[Question]:
    squad = json.loads((data / "paragraphs" / "squad2-train-subset.json").read_text(encoding="utf-8"))
    questions: list[Question] = []
    for article in squad["data"]:
        topic = re.sub(r"[^A-Za-z0-9]+", "-", article["title"]).strip("-").lower()
        for number, paragraph in enumerate(article["paragraphs"]):
            name = f"{topic}-{number:03d}.txt"
            (folder / name).write_text(paragraph["context"] + "\n", encoding="utf-8")
            for qa in paragraph["qas"]:
                if not qa.get("is_impossible") and qa["answers"]:
                    questions.append(Question(qa["question"].strip(), name, None))
    questions = questions[::PARAGRAPH_STRIDE]
    return questions[:max_questions] if max_questions else questions


def build_biomedical(data: Path, folder: Path, max_questions: int | None) -> list[Question]:
    quoted: dict[str, dict[tuple[int, int], str]] = {}
    questions: list[Question] = []
    for path in sorted((data / "biomedical").glob("*_golden.json")):
        for item in json.loads(path.read_text(encoding="utf-8"))["questions"]:
            cited = []
            for snippet in item.get("snippets", []):
                pmid = snippet["document"].rstrip("/").rsplit("/", 1)[-1]
                order = 0 if snippet["beginSection"] == "title" else 1
                quoted.setdefault(pmid, {})[(order, snippet["offsetInBeginSection"])] = snippet["text"].strip()
                cited.append(f"pubmed-{pmid}.txt")
            if cited:
                questions.append(Question(item["body"].strip(), tuple(dict.fromkeys(cited)), None))
    for pmid, parts in quoted.items():
        texts = [text for _, text in sorted(parts.items())]
        (folder / f"pubmed-{pmid}.txt").write_text("\n\n".join(dict.fromkeys(texts)) + "\n", encoding="utf-8")
    return questions[:max_questions] if max_questions else questions


_ROLE = re.compile(r"^You are asked to act as .*? and answer the question:\s*", re.IGNORECASE)


def build_documents(data: Path, folder: Path, max_questions: int | None) -> list[Question]:
    """Which long document answers? The papers (with every question, not only those answered word for word)
    and, where `papers/financial_qa.jsonl` is there, L-Eval's earnings-call transcripts with their questions:
    a hit is any passage of the right document, as in R@k over documents."""
    questions = [Question(question.strip(), name, None)
                 for name, row in _papers(data, folder) for question in row["instructions"]]
    calls = data / "papers" / "financial_qa.jsonl"
    if calls.exists():
        for index, row in enumerate(map(json.loads, calls.open(encoding="utf-8"))):
            name = f"call-{index:02d}.txt"
            (folder / name).write_text(row["input"] + "\n", encoding="utf-8")
            questions += [Question(_ROLE.sub("", question).strip(), name, None) for question in row["instructions"]]
    return questions[:max_questions] if max_questions else questions


CORPORA = {"papers": build_papers, "documents": build_documents, "filings": build_filings,
           "paragraphs": build_paragraphs, "biomedical": build_biomedical}


def gold_chunks(store, question: Question, documents=None) -> set[str]:
    """Ids of the passages of the answering document(s) whose text holds the answer (any of their passages when
    the question names no answer text)."""
    names = {question.doc_file} if isinstance(question.doc_file, str) else set(question.doc_file)
    needle = normalise(question.answer) if question.answer else None
    records = [r for r in (documents if documents is not None else store.documents()) if Path(r.path).name in names]
    return {hit.chunk_id for record in records for hit in store.chunks_of(record.doc_id)
            if needle is None or needle in normalise(hit.text)}


def evaluate(ranked_ids: list[list[str]], golds: list[set[str]]) -> dict[str, float]:
    r1 = r5 = mrr = 0.0
    for ranked, gold in zip(ranked_ids, golds):
        rank = next((i for i, chunk_id in enumerate(ranked[:DEPTH], start=1) if chunk_id in gold), None)
        r1 += rank == 1
        r5 += rank is not None and rank <= 5
        mrr += 1.0 / rank if rank else 0.0
    n = max(len(golds), 1)
    return {"R@1": r1 / n, "R@5": r5 / n, "MRR": mrr / n}


def methods(names: list[str]):
    """name -> function(store, query) returning ranked hits. Store modes, then the retrieval pipeline's stages."""
    table = {
        "vector": lambda store, q: store.search(q, k=DEPTH, mode="vector"),
        "fts": lambda store, q: store.search(q, k=DEPTH, mode="fts"),
        "hybrid": lambda store, q: store.search(q, k=DEPTH, mode="hybrid"),
    }
    try:
        from ingest import retrieval
    except ImportError:
        retrieval = None
    if retrieval is not None:
        for name, options in retrieval.BENCHMARK_VARIANTS.items():
            table[name] = (lambda opts: lambda store, q: retrieval.search(store, q, k=DEPTH, **opts))(options)
    unknown = [n for n in names if n not in table]
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown}; known: {sorted(table)}")
    return {n: table[n] for n in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="folder with papers/, filings/, paragraphs/ and "
                                                                   "biomedical/ (see above)")
    parser.add_argument("--corpora", nargs="+", default=list(CORPORA), choices=list(CORPORA))
    parser.add_argument("--methods", nargs="+", default=None, help="default: every method known")
    parser.add_argument("--backend", default=None, help="embedding backend: torch, onnx or onnx-int8 (default: "
                                                        "the embedder's default)")
    parser.add_argument("--max-questions", type=int, default=None)
    parser.add_argument("--chunk-words", type=int, default=None, help="passage size (default: the pipeline's)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--keep", type=Path, help="keep each corpus's store under this folder and reuse it on the "
                                                  "next run (unchanged files are not ingested again)")
    parser.add_argument("--as-is", action="store_true", help="with --keep: search the kept stores as they are, "
                                                            "even if this version would cut passages differently")
    args = parser.parse_args()

    from ingest.embedding import Embedder
    from ingest.pipeline import ingest_paths
    from ingest.store import DocumentStore

    started = time.perf_counter()
    embedder = Embedder.load(backend=args.backend) if args.backend else Embedder.load()
    print(f"embedder {embedder.name} backend {getattr(embedder, 'backend', 'torch')} loaded in "
          f"{time.perf_counter() - started:.1f} s; {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")
    chosen = methods(args.methods) if args.methods else _all_methods()
    results: dict[str, dict] = {}
    for corpus in args.corpora:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / corpus
            folder.mkdir()
            questions = CORPORA[corpus](args.data, folder, args.max_questions)
            if args.keep:
                folder = args.keep / f"{corpus}-files"
                folder.mkdir(parents=True, exist_ok=True)
                questions = CORPORA[corpus](args.data, folder, args.max_questions)
            store = DocumentStore.open((args.keep or Path(tmp)) / f"{corpus}-store")
            store.use_embedder(embedder)
            options = {"chunk_words": args.chunk_words} if args.chunk_words else {}
            started = time.perf_counter()
            if args.keep and args.as_is and store.count_chunks():
                from ingest.types import IngestReport

                report = IngestReport(unchanged=[r.path for r in store.documents()])
            else:
                report = ingest_paths(store, [folder], **options)
            ingest_s = time.perf_counter() - started
            report.added.extend(report.unchanged)
            if report.failed:
                print(f"  failed: {report.failed}")
            chunks = store.count_chunks()
            documents = store.documents()
            golds = [gold_chunks(store, q, documents) for q in questions]
            kept = [(q, g) for q, g in zip(questions, golds) if g]
            print(f"\n{corpus}: {len(report.added)} documents, {chunks} passages, ingest {ingest_s:.1f} s "
                  f"({chunks / ingest_s:.1f} passages/s); {len(kept)} of {len(questions)} questions have a right "
                  f"passage")
            results[corpus] = {"documents": len(report.added), "chunks": chunks, "ingest_s": ingest_s,
                               "chunks_per_s": chunks / ingest_s, "questions": len(kept), "methods": {}}
            print(f"  {'method':<22} {'R@1':>6} {'R@5':>6} {'MRR':>6} {'ms/query':>9}")
            for name, run in chosen.items():
                ranked, started = [], time.perf_counter()
                for question, _ in kept:
                    ranked.append([hit.chunk_id for hit in run(store, question.text)])
                elapsed_ms = (time.perf_counter() - started) * 1000 / max(len(kept), 1)
                scores = evaluate(ranked, [g for _, g in kept])
                results[corpus]["methods"][name] = dict(scores, ms_per_query=elapsed_ms)
                print(f"  {name:<22} {scores['R@1']:6.3f} {scores['R@5']:6.3f} {scores['MRR']:6.3f} "
                      f"{elapsed_ms:9.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")


def _all_methods():
    table = methods(["vector", "fts", "hybrid"])
    try:
        from ingest import retrieval

        table.update(methods(list(retrieval.BENCHMARK_VARIANTS)))
    except ImportError:
        pass
    return table


if __name__ == "__main__":
    main()
