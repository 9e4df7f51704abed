"""The bundled tiny Self-RAG model: its files, its tokenizer, and the behaviour the demo and tests rely on.

It is run through the app's transformers engine. The questions come from scripts/sample_qa.json and the passages
from sample_docs/ chunked exactly as the store chunks them, so these tests also catch a model that no longer
matches the documents (retrain with `python scripts/train_tiny_model.py`).
"""

from __future__ import annotations

import importlib.util
import json
import math
import re
import sys
from pathlib import Path

import pytest

from selfrag_tui.application.locations import demo_model_path

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
MODEL = demo_model_path()
SELF_RAG_TOKENS = [
    "[No Retrieval]", "[Retrieval]", "[Continue to Use Evidence]", "[Irrelevant]", "[Relevant]", "<paragraph>",
    "</paragraph>", "[Utility:1]", "[Utility:2]", "[Utility:3]", "[Utility:4]", "[Utility:5]", "[Fully supported]",
    "[Partially supported]", "[No support / Contradictory]", "<pad>",
]
CARD_ODD_ONE_OUT = "Leave odd one out: twitter, instagram, whatsapp."
CARD_LLAMAS = "Can you tell me the difference between llamas and alpacas?"
CARD_ANSWER = (
    "[Relevant]Alpacas are considerably smaller than llamas, and unlike llamas, they were not bred to be working "
    "animals, but were bred specifically for their fiber.[Fully supported][Utility:5]</s>"
)
RETRIEVE_THRESHOLD = 0.2


def _load_script(name: str):
    path = ROOT / "scripts" / f"{name}.py"
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def tiny_data():
    return _load_script("tiny_data")


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads((MODEL / "training_manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def chunks(tiny_data):
    return tiny_data.load_chunks()


def prompt(question: str) -> str:
    return f"### Instruction:\n{question}\n\n### Response:\n"


def with_passage(question: str, chunk) -> str:
    return prompt(question) + f"[Retrieval]<paragraph>{chunk.title}\n{chunk.text}</paragraph>"


def retrieve_ratio(engine, questions: list[str]) -> list[float]:
    """p([Retrieval]) / (p([Retrieval]) + p([No Retrieval])) at the first response position (spec section 3)."""
    retrieve, no_retrieve = engine.token_id("[Retrieval]"), engine.token_id("[No Retrieval]")
    out = engine.next_token_logprobs([engine.encode(prompt(q)) for q in questions], [retrieve, no_retrieve])
    return [math.exp(o[retrieve]) / (math.exp(o[retrieve]) + math.exp(o[no_retrieve])) for o in out]


def generate_texts(engine, texts: list[str], max_new_tokens: int = 100) -> list[str]:
    out: list[str] = []
    for start in range(0, len(texts), 16):
        batch = [engine.encode(t) for t in texts[start:start + 16]]
        out += [g.text for g in engine.generate(batch, max_new_tokens=max_new_tokens)]
    return out


# ------------------------------------------------------------------------------------------------ files


def test_model_matches_the_current_documents_and_questions(manifest, tiny_data, chunks):
    """When this fails, sample_docs/, the QA set or the chunker changed: run `python scripts/train_tiny_model.py`."""
    assert manifest["chunk_fingerprint"] == tiny_data.chunk_fingerprint(chunks), "passages changed: retrain"
    assert manifest["qa_fingerprint"] == tiny_data.qa_fingerprint(), "scripts/sample_qa.json changed: retrain"
    assert manifest["chunking"] == {"chunk_words": 150, "overlap_words": 30}
    assert manifest["negatives_from"] == "store-hybrid"


def test_files_are_a_standard_llama_checkpoint_small_enough_to_ship(manifest):
    config = json.loads((MODEL / "config.json").read_text(encoding="utf-8"))
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["model_type"] == "llama"
    assert config["max_position_embeddings"] == 4096
    for name in ("tokenizer.model", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                 "model.safetensors", "README.md"):
        assert (MODEL / name).is_file(), name
    size = sum(p.stat().st_size for p in MODEL.iterdir() if p.is_file())
    assert size < 5 * 1024 * 1024
    base = manifest["architecture"]["base_vocab"]
    assert config["vocab_size"] == base + len(SELF_RAG_TOKENS)


def test_self_rag_tokens_follow_the_base_vocabulary_in_the_real_models_order(manifest, tiny_engine):
    base = manifest["architecture"]["base_vocab"]
    added = json.loads((MODEL / "added_tokens.json").read_text(encoding="utf-8"))
    assert added == {token: base + offset for offset, token in enumerate(SELF_RAG_TOKENS)}
    assert [tiny_engine.token_id(t) for t in SELF_RAG_TOKENS] == list(range(base, base + len(SELF_RAG_TOKENS)))
    assert [tiny_engine.token_id(t) for t in ("<unk>", "<s>", "</s>")] == [0, 1, 2]


def test_transformers_tokenizer_agrees_with_the_sentencepiece_model(tiny_engine, chunks):
    """llama.cpp's converter reads tokenizer.model with sentencepiece: both must split text the same way."""
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_file=str(MODEL / "tokenizer.model"))
    assert processor.unk_id() == 0 and processor.bos_id() == 1 and processor.eos_id() == 2
    assert processor.piece_to_id("<0x0A>") != 0  # byte fallback pieces exist
    samples = [chunk.text for chunk in chunks[::3]] + ["Vicuña fibre: 12.5 µm ✓", "### Instruction:\nHi\n\n"]
    for text in samples:
        assert tiny_engine.encode(text, add_bos=False) == processor.encode(text)
        assert tiny_engine.decode(processor.encode(text)) == text


# ------------------------------------------------------------------------------------------------ behaviour


def test_card_example_without_retrieval(tiny_engine):
    (ratio,) = retrieve_ratio(tiny_engine, [CARD_ODD_ONE_OUT])
    assert ratio < RETRIEVE_THRESHOLD
    first = tiny_engine.generate([tiny_engine.encode(prompt(CARD_ODD_ONE_OUT))], max_new_tokens=1)[0]
    assert first.token_ids == [tiny_engine.token_id("[No Retrieval]")]
    (answer,) = generate_texts(tiny_engine, [prompt(CARD_ODD_ONE_OUT) + "[No Retrieval]"])
    assert answer.startswith("WhatsApp is the odd one out")
    assert answer.endswith("[Utility:5]</s>")


def test_card_example_with_retrieval(tiny_engine, manifest, chunks):
    (ratio,) = retrieve_ratio(tiny_engine, [CARD_LLAMAS])
    assert ratio > RETRIEVE_THRESHOLD
    plan = next(p for p in manifest["plans"] if p["question"] == CARD_LLAMAS)
    alpaca = chunks[plan["gold"][0]]
    assert alpaca.heading and "Alpacas" in alpaca.title
    wrong = chunks[plan["negatives"][0]]
    relevant, irrelevant = generate_texts(tiny_engine, [with_passage(CARD_LLAMAS, alpaca), with_passage(CARD_LLAMAS, wrong)])
    assert relevant == CARD_ANSWER
    assert irrelevant.startswith("[Irrelevant]")
    assert irrelevant.endswith("[No support / Contradictory][Utility:2]</s>")


def test_decides_to_retrieve_for_facts_and_not_for_chitchat(tiny_engine, tiny_data):
    qa = tiny_data.load_qa()
    factual = [item["question"] for item in qa["factual"]]
    chat = [item["prompt"] for item in qa["chitchat"]]
    assert all(r > RETRIEVE_THRESHOLD for r in retrieve_ratio(tiny_engine, factual))
    assert all(r < RETRIEVE_THRESHOLD for r in retrieve_ratio(tiny_engine, chat))


def test_most_factual_questions_are_answered_from_their_passage_and_wrong_passages_rejected(
    tiny_engine, manifest, chunks
):
    main = [p for p in manifest["plans"] if p["main"]]
    gold_out = generate_texts(tiny_engine, [with_passage(p["question"], chunks[p["gold"][0]]) for p in main])
    expected = [f"[Relevant]{p['answer']}[Fully supported][Utility:5]</s>" for p in main]
    exact = sum(o == e for o, e in zip(gold_out, expected))
    judged_relevant = sum(o.startswith("[Relevant]") for o in gold_out)
    negatives = [(p, index) for p in main for index in p["negatives"][:4]]
    first_tokens = generate_texts(tiny_engine, [with_passage(p["question"], chunks[i]) for p, i in negatives], 1)
    rejected = sum(o == "[Irrelevant]" for o in first_tokens)
    # The shipped weights get all of them right; a retrain may miss one or two.
    assert judged_relevant >= 0.95 * len(main), f"{judged_relevant}/{len(main)} gold passages judged relevant"
    assert exact >= 0.9 * len(main), f"{exact}/{len(main)} answers reproduced exactly"
    assert rejected >= 0.95 * len(negatives), f"{rejected}/{len(negatives)} wrong passages judged irrelevant"


def test_multi_segment_answer_asks_for_a_second_passage(tiny_engine, manifest, tiny_data, chunks):
    qa = tiny_data.load_qa()
    item, plan = qa["multi_segment"][0], manifest["multi"][0]
    first, second = item["segments"][:2]
    retrieve = tiny_engine.token_id("[Retrieval]")
    start = with_passage(item["question"], chunks[plan["gold_first"][0]])
    (segment,) = tiny_engine.generate([tiny_engine.encode(start)], max_new_tokens=100, stop_token_ids=[retrieve])
    assert segment.finish_reason == "stop"
    assert segment.text == f"[Relevant]{first['answer']}[Fully supported][Retrieval]"
    second_chunk = chunks[plan["gold_second"][0]]
    continued = start + segment.text + f"<paragraph>{second_chunk.title}\n{second_chunk.text}</paragraph>"
    (answer,) = generate_texts(tiny_engine, [continued])
    assert answer == f"[Relevant]{second['answer']}[Fully supported][Utility:5]</s>"


def test_training_is_deterministic():
    """Two short runs from the same seed give bit-identical weights (the shipped model can be rebuilt)."""
    train = _load_script("train_tiny_model")
    # The question token (position 1) may be dropped: the dropout draws come from the seed too.
    encoded = [([1, 5 + i, 7, 9 + i, 2], [0.0, 0.0, 1.0, 1.0, 1.0], [False, True, False, False, False])
               for i in range(12)]
    first, _ = train.train_model(encoded, 64, 63, seed=7, epochs=2, log=lambda *_: None)
    second, _ = train.train_model(encoded, 64, 63, seed=7, epochs=2, log=lambda *_: None)
    for (name, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert (a == b).all(), name


def test_every_question_is_trained_against_passages_beyond_the_search_hits(tiny_data, chunks):
    """Each question's wrong passages are the search hits every epoch plus a fresh draw from all the others, so
    the model learns that a passage without the answer is irrelevant whatever the question; held-out questions are
    never in the training set, nor are the development questions."""
    qa = tiny_data.load_qa()
    hits = {}

    def search(query: str, k: int) -> list[int]:  # a stand-in retriever: the first k passages
        hits[query] = list(range(k))
        return hits[query]

    training_set = tiny_data.build_training_set(chunks, qa, search, seed=3)
    examples = training_set.examples
    plan = next(p for p in training_set.plans if not p.main)
    pool = [e for e in examples if e.sampled and e.question == plan.question]
    excluded = {*plan.gold, *plan.negatives}
    assert len(pool) == len(chunks) - len(excluded)
    assert all(e.text.endswith(tiny_data.IRRELEVANT_TARGET) for e in pool)
    assert not any(f"<paragraph>{chunks[i].title}\n{chunks[i].text}</paragraph>" in e.text
                   for e in pool for i in plan.gold)

    first, again, second = (tiny_data.sample_epoch(examples, 3, epoch) for epoch in (0, 0, 1))
    assert first == again and first != second
    drawn = [examples[i] for i in first if examples[i].sampled]
    questions = {e.question for e in examples if e.sampled}
    assert len(drawn) == tiny_data.SAMPLED_NEGATIVES * len(questions)
    assert set(range(len(examples))) - set(first) == {i for i, e in enumerate(examples) if e.sampled} - set(first)

    unanswerable = [u for u in qa["unanswerable"] if not u.get("held_out")]
    assert {p["question"] for p in training_set.unanswerable_plans} == {u["question"] for u in unanswerable}
    for entry in [*tiny_data.held_out_questions(qa), *tiny_data.dev_questions(qa)]:
        assert not any(entry["question"] in e.text for e in examples), entry["question"]


def _opt_in_examples(tiny_data, chunks, qa, **option):
    """The training set with an opt-in `option` and the examples it adds: the ones without it come first,
    unchanged, so without the option the training set is the shipped one."""

    def search(query: str, k: int) -> list[int]:  # a stand-in retriever: the first k passages
        return list(range(k))

    plain = tiny_data.build_training_set(chunks, qa, search, seed=3)
    with_option = tiny_data.build_training_set(chunks, qa, search, seed=3, **option)
    assert [e.text for e in with_option.examples[:len(plain.examples)]] == [e.text for e in plain.examples]
    added = with_option.examples[len(plain.examples):]
    first = tiny_data.sample_epoch(with_option.examples, 3, 0)
    return with_option, added, sum(i >= len(plain.examples) for i in first)


def test_typed_variants_are_opt_in_and_never_a_held_out_question(tiny_data, chunks):
    """`--typed-variants` adds each trained question as people type it (lower case, no question mark, which for
    what), drawn two per question and epoch; without it the training set is the shipped one."""
    assert tiny_data.surface_variants("What IP does the NAS have?") == [
        "What IP does the NAS have", "Which IP does the NAS have?", "what IP does the NAS have?",
        "what ip does the nas have", "what ip does the nas have?", "which ip does the nas have?"]
    qa = tiny_data.load_qa()
    _, added, drawn = _opt_in_examples(tiny_data, chunks, qa, typed_variants=True)
    assert added and all(e.sampled and e.question.startswith(tiny_data.SURFACE_POOL) for e in added)
    held_out = {entry["question"].lower() for entry in tiny_data.held_out_questions(qa)}
    trained_as = {e.text.split("### Instruction:\n", 1)[1].split("\n\n### Response:", 1)[0] for e in added}
    assert "which ip does the nas have?" in trained_as and not trained_as & held_out
    assert drawn == tiny_data.SURFACE_PER_QUESTION * len({e.question for e in added})


def test_swapped_words_ask_the_right_passage_about_something_it_does_not_hold(tiny_data, chunks):
    """`--swapped-words` trains near misses made from each wording: a word it shares with its passage replaced by
    another topic's word, judged [Irrelevant] with that passage. The new word is nowhere in the passage, a variant
    close to a held-out or development question is dropped, and without the option the training set is the
    shipped one."""
    import random

    qa = tiny_data.load_qa()
    topics = tiny_data.topic_words(chunks, qa)
    assert "guanaco" in topics["sample_docs/camelids.md"] and "dripper" in topics["sample_docs/garden_watering.txt"]
    rng = random.Random(5)
    for item in qa["factual"]:
        question = item["question"]
        passage = next(c for c in chunks if c.contains(item["evidence"]))
        passage_words = set(tiny_data.content_words(f"{passage.title} {passage.text}"))
        for variant in tiny_data.swapped_questions(question, passage, chunks, topics, rng):
            old = [w for w in re.findall(r"[\w'-]+", question) if w not in re.findall(r"[\w'-]+", variant)]
            new = [w for w in re.findall(r"[\w'-]+", variant) if w not in re.findall(r"[\w'-]+", question)]
            assert len(old) == len(new) == 1, variant
            assert tiny_data.content_words(old[0])[0] in passage_words, variant
            assert not any(w.startswith(new[0].lower()[:5]) for w in passage_words), variant
    question = "Which IP address does the router use?"
    passage = next(c for c in chunks if c.contains("Its admin page lives at"))
    variants = tiny_data.swapped_questions(question, passage, chunks, topics, random.Random(5))
    assert len(variants) >= 3
    again = tiny_data.swapped_questions(question, passage, chunks, topics, random.Random(5), avoid=[variants[0]])
    assert variants[0] not in again
    unrelated = ["How heavy is a guanaco?"]
    assert tiny_data.swapped_questions(question, passage, chunks, topics, random.Random(5), avoid=unrelated) == variants

    swapped, added, drawn = _opt_in_examples(tiny_data, chunks, qa, swapped_words=True)
    assert added and all(e.sampled and e.kind == "swapped-irrelevant" for e in added)
    assert all(e.text.endswith(tiny_data.IRRELEVANT_TARGET) for e in added)
    plans = {p.question: p for p in swapped.plans}
    for example in added:
        plan = plans[example.question.removeprefix(tiny_data.SWAP_POOL)]
        assert tiny_data.passage_block(chunks[plan.gold[0]]) in example.text
    for entry in [*tiny_data.held_out_questions(qa), *tiny_data.dev_questions(qa)]:
        assert not any(entry["question"] in e.text for e in added), entry["question"]
    assert drawn == tiny_data.SWAP_PER_QUESTION * len({e.question for e in added})


def test_the_questions_pass_their_checks_and_no_held_out_wording_is_nearly_trained(tiny_data):
    """scripts/check_sample_qa.py over the shipped questions: every answer's evidence at its stated place, enough
    wordings per fact, and no trained wording a near copy of a held-out one (which would flatter the held-out
    figures). A near copy, as one was first written, is caught."""
    import copy

    checks = _load_script("check_sample_qa")
    qa = tiny_data.load_qa()
    assert checks.check(qa).problems == []

    leaky = copy.deepcopy(qa)
    item = next(i for i in leaky["factual"] if "What kinds of alpaca are there?" in i.get("held_out", []))
    item["paraphrases"].append("Which kinds of alpaca are there?")
    problems = checks.check(leaky).problems
    assert problems == ["held_out: 'What kinds of alpaca are there?' is nearly the trained "
                        "'Which kinds of alpaca are there?'"]

    # The development questions that choose between training runs are new against both.
    dev = json.loads(checks.DEV_PATH.read_text(encoding="utf-8"))
    assert checks.check(qa, dev).problems == []
    leaky_dev = copy.deepcopy(dev)
    leaky_dev["unanswerable"].append({"question": "Who won the World Cup in 2014?", "kind": "off_topic"})
    assert checks.check(qa, leaky_dev).problems == [
        "dev unanswerable[20]: 'Who won the World Cup in 2014?' is nearly 'Who won the 2014 World Cup?'"]
