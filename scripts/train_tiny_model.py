"""Train the tiny Self-RAG demo model shipped in selfrag_tui/models/tiny-selfrag/.

A Llama-architecture model of a few hundred thousand parameters with a Llama-2-style SentencePiece tokenizer and
the 16 Self-RAG tokens laid out as in selfrag/selfrag_llama2_7b (right after the base vocabulary, same order),
trained on Self-RAG-formatted examples built from sample_docs/ and scripts/sample_qa.json (see tiny_data.py).
It memorises the demo questions; it is not a language model. Deterministic: same inputs, same weights.

    .venv/bin/python scripts/train_tiny_model.py            # build data, train, save, verify (~6 min on CPU)
    .venv/bin/python scripts/train_tiny_model.py --verify   # only verify the saved model

Retrain whenever sample_docs/, the QA set or the chunker change (tests compare the fingerprints in
training_manifest.json with the current ones).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

sys.path.insert(0, str(Path(__file__).resolve().parent))
import tiny_data  # noqa: E402  (a sibling script, not a package)
from tiny_data import EOS, NOT_IN_PASSAGE, SELF_RAG_TOKENS, ROOT  # noqa: E402

OUT_DIR = ROOT / "selfrag_tui" / "models" / "tiny-selfrag"
SEED = 1234
BASE_VOCAB = 3000
"""SentencePiece pieces (incl. <unk>, <s>, </s> and 256 byte pieces); the Self-RAG tokens come after them."""
HIDDEN = 128
LAYERS = 3
HEADS = 4
INTERMEDIATE = 384
MAX_POSITIONS = 4096  # like Llama-2; RoPE has no learned positions, so this costs nothing
EPOCHS = 40
TOKENS_PER_BATCH = 2048
LEARNING_RATE = 4e-3
WARMUP_STEPS = 30


# ----------------------------------------------------------------------------------------------- tokenizer


def train_tokenizer(lines: list[str], out: Path) -> int:
    """A Llama-2-like SentencePiece BPE model: <unk>=0, <s>=1, </s>=2, byte fallback, digits split."""
    import sentencepiece as spm

    prefix = out / "tokenizer"
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_prefix=str(prefix),
        model_type="bpe",
        vocab_size=BASE_VOCAB,
        hard_vocab_limit=False,
        byte_fallback=True,
        split_digits=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        add_dummy_prefix=True,
        allow_whitespace_only_pieces=True,
        character_coverage=1.0,
        shuffle_input_sentence=False,
        num_threads=1,
        minloglevel=2,
    )
    (out / "tokenizer.vocab").unlink()
    # The trainer records the output path in the model file; drop it so the file is the same wherever it is built.
    from sentencepiece import sentencepiece_model_pb2

    model_file = out / "tokenizer.model"
    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model_file.read_bytes())
    proto.trainer_spec.model_prefix = "tokenizer"
    model_file.write_bytes(proto.SerializeToString())
    return spm.SentencePieceProcessor(model_file=str(model_file)).get_piece_size()


def write_tokenizer_files(out: Path, base_vocab: int) -> None:
    """The files the real model ships next to tokenizer.model, so transformers and llama.cpp read it the same way."""
    added = {token: base_vocab + offset for offset, token in enumerate(SELF_RAG_TOKENS)}
    (out / "added_tokens.json").write_text(json.dumps(added, indent=2) + "\n", encoding="utf-8")

    def entry(content: str) -> dict:
        return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
                "special": True}

    decoder = {"0": entry("<unk>"), "1": entry("<s>"), "2": entry("</s>")}
    decoder.update({str(token_id): entry(token) for token, token_id in added.items()})
    config = {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": decoder,
        "additional_special_tokens": list(SELF_RAG_TOKENS[:-1]),
        "bos_token": "<s>",
        "clean_up_tokenization_spaces": False,
        "eos_token": "</s>",
        "legacy": False,
        "model_max_length": MAX_POSITIONS,
        "pad_token": "<pad>",
        "padding_side": "left",
        "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer",
        "unk_token": "<unk>",
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    special = {
        "additional_special_tokens": list(SELF_RAG_TOKENS[:-1]),
        "bos_token": "<s>",
        "eos_token": "</s>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
    }
    (out / "special_tokens_map.json").write_text(json.dumps(special, indent=2) + "\n", encoding="utf-8")


# ----------------------------------------------------------------------------------------------- encoding


JUDGEMENT_WEIGHT = 5.0
"""Extra weight of the [Relevant]/[Irrelevant] token: one token carries the whole passage judgement."""

RELEVANT_JUDGEMENT = 3.0
"""Weight of a right passage's [Relevant] against a wrong passage's [Irrelevant] (about six wrong passages per
right one are trained)."""

QUESTION_DROPOUT = 0.15
"""Share of the question's tokens dropped, afresh in every epoch: the model learns to judge a passage by the
question's content words rather than by the exact wording it memorised, so unseen paraphrases are judged too."""


def encode_examples(tokenizer, examples: list[tiny_data.Example], *, relevant_judgement: float = RELEVANT_JUDGEMENT,
                    ) -> list[tuple[list[int], list[float], list[bool]]]:
    """Token ids with BOS and, per token, its loss weight (0 outside the trained spans) and whether it belongs to
    the instruction (and so may be dropped in training)."""
    judgement_ids = {tokenizer.convert_tokens_to_ids("[Relevant]"), tokenizer.convert_tokens_to_ids("[Irrelevant]")}
    encoded = []
    for example in examples:
        batch = tokenizer(example.text, add_special_tokens=True, return_offsets_mapping=True)
        ids, offsets = batch["input_ids"], batch["offset_mapping"]
        if ids[0] != tokenizer.bos_token_id:
            raise SystemExit("the tokenizer does not add BOS: check tokenizer_config.json")
        trained = [False] * len(ids)
        for position, (start, end) in enumerate(offsets):
            if position == 0 or end <= start:
                continue
            trained[position] = any(lo <= start < hi for lo, hi in example.trained)
        question_start = len("### Instruction:\n")
        question_end = example.text.find("\n\n### Response:")
        droppable = [
            position > 0 and not trained[position] and question_start <= start and end <= question_end
            for position, (start, end) in enumerate(offsets)
        ]
        first = trained.index(True)
        prompt_ids = tokenizer(example.text[: example.trained[0][0]], add_special_tokens=True)["input_ids"]
        if prompt_ids != ids[:first]:
            raise SystemExit(f"prompt tokens differ inside and outside the example ({example.kind}): "
                             f"{example.text[:80]!r}")
        # An answer's weight (RELEVANT_WEIGHT) is there to learn its words; its [Relevant] gets RELEVANT_JUDGEMENT
        # times the weight of an [Irrelevant] instead. With the full answer weight every doubtful passage tilts to
        # [Relevant] (wrong passages marked relevant in new wordings); with none, right passages are rejected.
        weights = [
            (JUDGEMENT_WEIGHT * (relevant_judgement if example.weight > 1 else 1.0) if token in judgement_ids
             else example.weight) if on else 0.0
            for token, on in zip(ids, trained)
        ]
        encoded.append((ids, weights, droppable))
    return encoded


def make_batches(lengths: list[int], budget: int) -> list[list[int]]:
    """Examples of similar length together, at most `budget` padded tokens per batch."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches, current, width = [], [], 0
    for index in order:
        new_width = max(width, lengths[index])
        if current and new_width * (len(current) + 1) > budget:
            batches.append(current)
            current, new_width = [], lengths[index]
        current.append(index)
        width = new_width
    if current:
        batches.append(current)
    return batches


# ----------------------------------------------------------------------------------------------- training


def train_model(encoded, vocab_size: int, pad_id: int, *, seed: int, epochs: int, log=print, epoch_examples=None,
                init: Path | None = None, learning_rate: float = LEARNING_RATE, first_epoch: int = 0):
    """`epoch_examples(epoch)` gives the indices of `encoded` trained in that epoch (all of them when None).
    `init` continues from a saved model (its epochs counted from `first_epoch`, so later epochs draw new wrong
    passages) instead of fresh weights."""
    import torch

    was_deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        return _train(encoded, vocab_size, pad_id, seed=seed, epochs=epochs, log=log, epoch_examples=epoch_examples,
                      init=init, learning_rate=learning_rate, first_epoch=first_epoch)
    finally:
        torch.use_deterministic_algorithms(was_deterministic)


def epoch_batches(encoded, epochs: int, epoch_examples) -> list[list[list[int]]]:
    """Per epoch, the batches (lists of indices into `encoded`), planned before training so the learning-rate
    schedule knows the number of steps."""
    plan = []
    for epoch in range(epochs):
        chosen = list(range(len(encoded))) if epoch_examples is None else list(epoch_examples(epoch))
        batches = make_batches([len(encoded[i][0]) for i in chosen], TOKENS_PER_BATCH)
        plan.append([[chosen[i] for i in batch] for batch in batches])
    return plan


def _train(encoded, vocab_size: int, pad_id: int, *, seed: int, epochs: int, log, epoch_examples=None,
           init: Path | None = None, learning_rate: float = LEARNING_RATE, first_epoch: int = 0):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    torch.set_num_threads(1)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        max_position_embeddings=MAX_POSITIONS,
        rms_norm_eps=1e-5,
        rope_theta=10000.0,
        tie_word_embeddings=True,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=pad_id,
        attn_implementation="sdpa",
    )
    if init is not None:
        model = LlamaForCausalLM.from_pretrained(str(init), torch_dtype=torch.float32)
        if model.config.vocab_size != vocab_size or model.config.hidden_size != HIDDEN:
            raise SystemExit(f"{init} is not a model of this shape and vocabulary")
    else:
        model = LlamaForCausalLM(config)
    model.train()
    shifted = None if epoch_examples is None else (lambda epoch: epoch_examples(first_epoch + epoch))
    plan = epoch_batches(encoded, epochs, shifted)
    total_steps = sum(len(batches) for batches in plan)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, betas=(0.9, 0.98), weight_decay=0.0)

    def learning_rate(step: int) -> float:
        if step < WARMUP_STEPS:
            return (step + 1) / WARMUP_STEPS
        progress = (step - WARMUP_STEPS) / max(1, total_steps - WARMUP_STEPS)
        return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, learning_rate)
    rng = random.Random(seed + first_epoch)
    step, started, epoch_loss = 0, time.perf_counter(), float("nan")
    for epoch in range(epochs):
        batches = plan[epoch]
        rng.shuffle(batches)
        losses = []
        for batch in batches:
            rows = []
            for index in batch:
                ids, token_weights, droppable = encoded[index]
                keep = [not (drop and rng.random() < QUESTION_DROPOUT) for drop in droppable]
                rows.append(([t for t, k in zip(ids, keep) if k], [w for w, k in zip(token_weights, keep) if k]))
            width = max(len(ids) for ids, _ in rows)
            input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            attention = torch.zeros((len(batch), width), dtype=torch.long)
            weights = torch.zeros((len(batch), width), dtype=torch.float32)
            for row, (ids, token_weights) in enumerate(rows):
                input_ids[row, : len(ids)] = torch.tensor(ids)
                attention[row, : len(ids)] = 1
                weights[row, : len(ids)] = torch.tensor(token_weights)
            hidden = model.model(input_ids=input_ids, attention_mask=attention).last_hidden_state
            # Logits only where the loss is taken: the vocabulary projection is most of the cost otherwise.
            targets_mask = weights[:, 1:] > 0
            logits = model.lm_head(hidden[:, :-1][targets_mask])
            target_weights = weights[:, 1:][targets_mask]
            token_losses = torch.nn.functional.cross_entropy(
                logits.float(), input_ids[:, 1:][targets_mask], reduction="none"
            )
            loss = (token_losses * target_weights).sum() / target_weights.sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            losses.append(loss.item())
            step += 1
        epoch_loss = sum(losses) / len(losses)
        if epoch % 5 == 0 or epoch == epochs - 1:
            log(f"epoch {epoch + 1:3d}/{epochs}  loss {epoch_loss:.4f}  {time.perf_counter() - started:6.1f}s")
    model.eval()
    return model, {"steps": step, "epochs": epochs, "batches_per_epoch": round(total_steps / max(1, epochs), 1),
                   "final_loss": epoch_loss,
                   "train_seconds": round(time.perf_counter() - started, 1)}


# ----------------------------------------------------------------------------------------------- verification


def verify(model_dir: Path, chunks, training_set_summary: dict, log=print) -> dict:
    """Run the saved model through the app's transformers engine and report how much of the set it reproduces."""
    from selfrag_tui.engines.transformers_engine import TransformersEngine

    engine = TransformersEngine.load(str(model_dir), device="cpu", n_threads=1)
    qa = tiny_data.load_qa()
    ids = {token: engine.token_id(token) for token in SELF_RAG_TOKENS}
    retrieve, no_retrieve = ids["[Retrieval]"], ids["[No Retrieval]"]
    reflection = [ids[t] for t in SELF_RAG_TOKENS[:-1]]

    def retrieve_ratio(instructions: list[str]) -> list[float]:
        prompts = [engine.encode(tiny_data.base_prompt(text)) for text in instructions]
        out = engine.next_token_logprobs(prompts, [retrieve, no_retrieve])
        return [math.exp(o[retrieve]) / (math.exp(o[retrieve]) + math.exp(o[no_retrieve])) for o in out]

    def generate(texts: list[str], stop=(), max_new_tokens=120) -> list[str]:
        results = []
        for start in range(0, len(texts), 16):
            prompts = [engine.encode(text) for text in texts[start:start + 16]]
            results += [g.text for g in engine.generate(prompts, max_new_tokens=max_new_tokens,
                                                        stop_token_ids=stop, score_ids=reflection)]
        return results

    def with_passage(question: str, index: int) -> str:
        return tiny_data.base_prompt(question) + "[Retrieval]" + tiny_data.passage_block(chunks[index])

    report: dict[str, object] = {}
    rows = []
    plans = training_set_summary["plans"]
    factual = [p["question"] for p in plans]
    ratios = retrieve_ratio(factual)
    report["factual_retrieve"] = f"{sum(r > 0.2 for r in ratios)}/{len(ratios)}"
    chat = [item["prompt"] for item in qa["chitchat"]]
    chat_ratios = retrieve_ratio(chat)
    report["chitchat_no_retrieve"] = f"{sum(r < 0.2 for r in chat_ratios)}/{len(chat_ratios)}"

    gold_prompts, gold_expected, gold_main, neg_prompts = [], [], [], []
    for plan in plans:
        for index in plan["gold"]:
            gold_prompts.append(with_passage(plan["question"], index))
            gold_expected.append(f"[Relevant]{plan['answer']}[Fully supported][Utility:5]{EOS}")
            gold_main.append(plan["main"])
        neg_prompts += [with_passage(plan["question"], index) for index in plan["negatives"]]
    gold_out = generate(gold_prompts)
    gold_hits = [o == e for o, e in zip(gold_out, gold_expected)]
    report["gold_passage_exact"] = f"{sum(gold_hits)}/{len(gold_expected)}"
    report["gold_passage_exact_main_questions"] = \
        f"{sum(h for h, m in zip(gold_hits, gold_main) if m)}/{sum(gold_main)}"
    report["gold_passage_judged_relevant"] = f"{sum(o.startswith('[Relevant]') for o in gold_out)}/{len(gold_out)}"
    neg_out = generate(neg_prompts, max_new_tokens=1)
    neg_ok = sum(o == "[Irrelevant]" for o in neg_out)
    report["negative_passage_irrelevant"] = f"{neg_ok}/{len(neg_prompts)}"

    chat_out = generate([tiny_data.base_prompt(p) + "[No Retrieval]" for p in chat])
    chat_ok = sum(o == f"{item['answer']}[Utility:{int(item.get('utility', 5))}]{EOS}"
                  for o, item in zip(chat_out, qa["chitchat"]))
    report["chitchat_exact"] = f"{chat_ok}/{len(chat)}"

    multi_ok = 0
    for plan, item in zip(training_set_summary["multi"], qa.get("multi_segment", [])):
        first, second = item["segments"][:2]
        out1 = generate([with_passage(item["question"], plan["gold_first"][0])], stop=[retrieve])[0]
        expected1 = f"[Relevant]{first['answer']}[Fully supported][Retrieval]"
        prompt2 = with_passage(item["question"], plan["gold_first"][0]) + expected1 + tiny_data.passage_block(
            chunks[plan["gold_second"][0]])
        out2 = generate([prompt2], stop=[retrieve])[0]
        multi_ok += out1 == expected1 and out2 == f"[Relevant]{second['answer']}[Fully supported][Utility:5]{EOS}"
    report["multi_segment_exact"] = f"{multi_ok}/{len(qa.get('multi_segment', []))}"

    # Follow-up questions after an earlier turn (the app folds the transcript into the instruction). The earlier
    # turn here is the next main question, mostly not the pairing seen in training.
    mains = [p for p in plans if p["main"]]
    followups = [
        tiny_data.with_history(plan["question"], [(prev["question"], prev["answer"])])
        for prev, plan in zip(mains[-1:] + mains[:-1], mains)
    ]
    followup_ratios = retrieve_ratio(followups)
    report["followup_retrieve"] = f"{sum(r > 0.2 for r in followup_ratios)}/{len(followups)}"
    followup_out = generate([
        tiny_data.base_prompt(text) + "[Retrieval]" + tiny_data.passage_block(chunks[plan["gold"][0]])
        for text, plan in zip(followups, mains)
    ])
    report["followup_gold_exact"] = "{}/{}".format(
        sum(o == f"[Relevant]{plan['answer']}[Fully supported][Utility:5]{EOS}" for o, plan in zip(followup_out, mains)),
        len(mains),
    )

    # The model card's two examples.
    card_odd, card_llama = "Leave odd one out: twitter, instagram, whatsapp.", \
        "Can you tell me the difference between llamas and alpacas?"
    odd_ratio, llama_ratio = retrieve_ratio([card_odd, card_llama])
    llama_plan = next(p for p in plans if p["question"] == card_llama)
    card_rel = generate([with_passage(card_llama, llama_plan["gold"][0])])[0]
    card_irr = generate([with_passage(card_llama, llama_plan["negatives"][0])])[0]
    rows.append(("card: odd one out, p(retrieve)", f"{odd_ratio:.4f}", "< 0.2"))
    rows.append(("card: llamas/alpacas, p(retrieve)", f"{llama_ratio:.4f}", "> 0.2"))
    rows.append(("card: alpaca passage", card_rel[:60] + "...", "[Relevant]Alpacas are considerably..."))
    rows.append(("card: non-gold passage", card_irr[:60] + "...", "[Irrelevant]..."))
    for key, value in report.items():
        rows.append((key, str(value), "all"))
    width = max(len(r[0]) for r in rows)
    log("")
    log(f"{'check'.ljust(width)}  {'result'.ljust(64)}  expected")
    for name, value, expected in rows:
        log(f"{name.ljust(width)}  {value.ljust(64)}  {expected}")
    report["card_odd_one_out_ratio"] = round(odd_ratio, 6)
    report["card_llamas_alpacas_ratio"] = round(llama_ratio, 6)
    report["card_relevant_text"] = card_rel
    report["card_irrelevant_text"] = card_irr
    engine.close()
    return report


def held_out_figures(model_dir: Path, log=print) -> dict:
    """The held-out questions asked through the app (scripts/tiny_eval.py), as a table and a dict of figures."""
    import tiny_eval

    results = tiny_eval.evaluate(model_dir)
    figures = tiny_eval.figures(results)
    log("")
    log(tiny_eval.table(figures))
    return figures


# ----------------------------------------------------------------------------------------------- main


def build(args) -> None:
    import torch
    import transformers
    from transformers import AutoTokenizer

    started = time.perf_counter()
    random.seed(args.seed)
    chunks = tiny_data.load_chunks()
    qa = tiny_data.load_qa()
    with tempfile.TemporaryDirectory(prefix="tiny-selfrag-") as workdir:
        try:
            search, retrieval = tiny_data.store_search(chunks, Path(workdir))
        except ImportError as exc:
            if not args.allow_embedder_fallback:
                raise SystemExit(f"the document store is not importable ({exc}); pass --allow-embedder-fallback "
                                 "to pick wrong passages by embedding similarity instead") from exc
            search, retrieval = tiny_data.embedder_search(chunks)
        training_set = tiny_data.build_training_set(chunks, qa, search, args.seed,
                                                    typed_variants=args.typed_variants,
                                                    paraphrase_negatives=args.paraphrase_negatives,
                                                    swapped_words=args.swapped_words > 0)
    print(f"{len(chunks)} passages, {len(training_set.examples)} examples ({retrieval} negatives): "
          + ", ".join(f"{k}={v}" for k, v in sorted(training_set.counts.items())))

    # --data-only builds the tokenizer in a scratch folder: the bundled model stays as it is.
    out: Path = Path(tempfile.mkdtemp(prefix="tiny-selfrag-data-")) if args.data_only else args.out
    out.mkdir(parents=True, exist_ok=True)
    for stale in ("model.safetensors", "tokenizer.json", "tokenizer.model"):
        (out / stale).unlink(missing_ok=True)
    if args.init is not None:
        # Continuing a saved model: its token ids are what its embeddings mean, so its tokenizer stays (new words
        # fall back to smaller pieces or bytes).
        import sentencepiece as spm

        shutil.copy(args.init / "tokenizer.model", out / "tokenizer.model")
        base_vocab = spm.SentencePieceProcessor(model_file=str(out / "tokenizer.model")).get_piece_size()
    else:
        base_vocab = train_tokenizer(tiny_data.tokenizer_corpus(chunks, qa), out)
    write_tokenizer_files(out, base_vocab)
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    for offset, token in enumerate(SELF_RAG_TOKENS):
        if tokenizer.convert_tokens_to_ids(token) != base_vocab + offset:
            raise SystemExit(f"{token} did not get id {base_vocab + offset}")
    encoded = encode_examples(tokenizer, training_set.examples, relevant_judgement=args.relevant_judgement)
    lengths = [len(ids) for ids, *_ in encoded]

    def epoch_examples(epoch: int) -> list[int]:
        return tiny_data.sample_epoch(training_set.examples, args.seed, epoch,
                                      swapped_per_question=args.swapped_words)

    epoch_tokens = sum(lengths[i] for i in epoch_examples(0))
    print(f"tokenizer: {base_vocab} pieces + {len(SELF_RAG_TOKENS)} Self-RAG tokens; examples "
          f"{min(lengths)}-{max(lengths)} tokens, {sum(lengths)} in all, {epoch_tokens} per epoch "
          f"({len(epoch_examples(0))} examples)")
    if args.data_only:
        return

    model, stats = train_model(encoded, base_vocab + len(SELF_RAG_TOKENS), base_vocab + len(SELF_RAG_TOKENS) - 1,
                               seed=args.seed, epochs=args.epochs, epoch_examples=epoch_examples,
                               init=args.init, learning_rate=args.learning_rate, first_epoch=args.first_epoch)
    model.generation_config.do_sample = False
    model.save_pretrained(str(out))
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    manifest = {
        "about": "Tiny Self-RAG demo model; retrain with `python scripts/train_tiny_model.py` when the fingerprints "
                 "below no longer match sample_docs/, scripts/sample_qa.json or the chunker.",
        "seed": args.seed,
        "continued_from": None if args.init is None else {
            "model": str(args.init), "epochs_before": args.first_epoch,
            "final_loss": json.loads((args.init / "training_manifest.json").read_text(encoding="utf-8"))
            .get("final_loss")},
        "learning_rate": args.learning_rate,
        **stats,
        "final_loss": round(stats["final_loss"], 6),
        "parameters": sum(p.numel() for p in model.parameters()),
        "architecture": {"hidden": HIDDEN, "layers": LAYERS, "heads": HEADS, "intermediate": INTERMEDIATE,
                         "max_position_embeddings": MAX_POSITIONS, "base_vocab": base_vocab,
                         "vocab_size": base_vocab + len(SELF_RAG_TOKENS)},
        "chunking": {"chunk_words": tiny_data.CHUNK_WORDS, "overlap_words": tiny_data.OVERLAP_WORDS},
        "chunk_fingerprint": tiny_data.chunk_fingerprint(chunks),
        "qa_fingerprint": tiny_data.qa_fingerprint(),
        "negatives_from": retrieval,
        "negatives_k": tiny_data.CANDIDATES_K,
        "sampled_negatives_per_epoch": tiny_data.SAMPLED_NEGATIVES,
        "question_dropout": QUESTION_DROPOUT,
        "typed_variants": args.typed_variants,
        "relevant_judgement_weight": args.relevant_judgement,
        "paraphrase_negatives": args.paraphrase_negatives,
        "swapped_words": args.swapped_words,
        "irrelevant_answer": NOT_IN_PASSAGE,
        "counts": training_set.counts,
        "training_tokens_per_epoch": epoch_tokens,
        "plans": [
            {"question": p.question, "item": p.item, "main": p.main, "answer": p.answer, "gold": p.gold,
             "negatives": p.negatives}
            for p in training_set.plans
        ],
        "multi": training_set.multi_plans,
        "unanswerable": training_set.unanswerable_plans,
        "held_out": [entry["question"] for entry in tiny_data.held_out_questions(qa)],
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
    }
    report = verify(out, chunks, manifest)
    manifest["verification"] = report
    manifest["size_bytes"] = size

    def write_manifest() -> None:
        manifest["build_seconds"] = round(time.perf_counter() - started, 1)
        (out / "training_manifest.json").write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n",
                                                    encoding="utf-8")

    write_manifest()  # the held-out run below needs the store and the embedding model; the model is saved first
    manifest["held_out_figures"] = held_out_figures(out)
    write_manifest()
    print(f"\nsaved {out} ({size / 1024:.0f} KiB) in {manifest['build_seconds']} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="model folder (default: the bundled one)")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--learning-rate", type=float, default=LEARNING_RATE)
    parser.add_argument("--init", type=Path, help="continue training this saved model instead of fresh weights")
    parser.add_argument("--first-epoch", type=int, default=0,
                        help="with --init: the number of epochs it was trained for (new wrong passages are drawn)")
    parser.add_argument("--typed-variants", action="store_true",
                        help="also train each question as people type it (lower case, no question mark, which/what)")
    parser.add_argument("--paraphrase-negatives", type=int, default=tiny_data.PARAPHRASE_NEGATIVES,
                        help="wrong passages from the search trained every epoch for each paraphrase (the main "
                             f"question gets all {tiny_data.CANDIDATES_K} hits; default %(default)s)")
    parser.add_argument("--relevant-judgement", type=float, default=RELEVANT_JUDGEMENT,
                        help="weight of a right passage's [Relevant] against a wrong one's [Irrelevant] "
                             "(default %(default)s); lower makes the model readier to reject")
    parser.add_argument("--swapped-words", type=int, nargs="?", default=0, const=tiny_data.SWAP_PER_QUESTION,
                        metavar="N",
                        help="also train each wording with a word it shares with its passage replaced by another "
                             "topic's word, against that passage, as [Irrelevant] (near misses): N of them per "
                             f"wording and epoch (default without N: {tiny_data.SWAP_PER_QUESTION})")
    parser.add_argument("--verify", action="store_true", help="only verify the saved model and print the table")
    parser.add_argument("--data-only", action="store_true",
                        help="build the training set and tokenizer, print their sizes, and stop before training")
    parser.add_argument("--allow-embedder-fallback", action="store_true",
                        help="pick wrong passages by embedding similarity when the store is unavailable")
    args = parser.parse_args(argv)
    if args.verify:
        manifest = json.loads((args.out / "training_manifest.json").read_text(encoding="utf-8"))
        verify(args.out, tiny_data.load_chunks(), manifest)
        held_out_figures(args.out)
        return 0
    build(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
