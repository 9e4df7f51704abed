"""The transformers engine, run on the bundled tiny Self-RAG model (a real LlamaForCausalLM on CPU).

What the decoder relies on: batching does not change results (left padding and position ids are right), the
logprobs are the model's exact ones, rows stop on their own, cancellation and streaming work, special tokens are
single ids, and load failures say what to do.
"""

from __future__ import annotations

import math
import shutil
import threading

import pytest

from selfrag_tui.engines.base import MISSING_LOGPROB, Engine, EngineError, GenerationCancelled
from selfrag_tui.engines.transformers_engine import TransformersEngine
from selfrag_tui.application.locations import demo_model_path

pytestmark = pytest.mark.slow

CHAT = "### Instruction:\nLeave odd one out: twitter, instagram, whatsapp.\n\n### Response:\n"
FACTUAL = "### Instruction:\nCan you tell me the difference between llamas and alpacas?\n\n### Response:\n"
WITH_PASSAGE = (
    FACTUAL
    + "[Retrieval]<paragraph>Camelids > Alpacas\nThe alpaca (Lama pacos) is a species of South American camelid "
    "mammal. Alpacas are considerably smaller than llamas.</paragraph>"
)


@pytest.fixture(scope="module")
def prompts(tiny_engine) -> list[list[int]]:
    """Three prompts of clearly different lengths, so the batch really is padded."""
    encoded = [tiny_engine.encode(CHAT + "[No Retrieval]"), tiny_engine.encode(FACTUAL), tiny_engine.encode(WITH_PASSAGE)]
    assert len({len(p) for p in encoded}) == 3
    return encoded


@pytest.fixture(scope="module")
def score_ids(tiny_engine) -> list[int]:
    tokens = ["[No Retrieval]", "[Retrieval]", "[Irrelevant]", "[Relevant]", "[Fully supported]", "[Utility:5]"]
    return [tiny_engine.token_id(t) for t in tokens]


def test_is_an_engine(tiny_engine):
    assert isinstance(tiny_engine, Engine)
    assert tiny_engine.name == "transformers"
    assert tiny_engine.max_context == 4096  # max_position_embeddings, like Llama-2
    assert tiny_engine.eos_token_id == tiny_engine.token_id("</s>") == 2


def test_batched_generation_matches_one_prompt_at_a_time(tiny_engine, prompts, score_ids):
    batched = tiny_engine.generate(prompts, max_new_tokens=24, score_ids=score_ids)
    for prompt, together in zip(prompts, batched):
        (alone,) = tiny_engine.generate([prompt], max_new_tokens=24, score_ids=score_ids)
        assert together.token_ids == alone.token_ids
        assert together.finish_reason == alone.finish_reason
        assert together.token_logprobs == pytest.approx(alone.token_logprobs, abs=1e-4)
        assert together.cumulative_logprob == pytest.approx(alone.cumulative_logprob, abs=1e-3)
        for position_together, position_alone in zip(together.score_logprobs, alone.score_logprobs):
            assert set(position_together) == set(score_ids)
            for token in score_ids:
                assert position_together[token] == pytest.approx(position_alone[token], abs=1e-4)


def test_logprobs_equal_a_full_forward_pass(tiny_engine, prompts, score_ids):
    """Recompute every generated position's log-softmax from one forward pass over prompt + generation."""
    import torch
    from transformers import AutoModelForCausalLM

    reference = AutoModelForCausalLM.from_pretrained(str(demo_model_path()), dtype=torch.float32).eval()
    generations = tiny_engine.generate(prompts, max_new_tokens=16, score_ids=score_ids)
    for prompt, generation in zip(prompts, generations):
        sequence = torch.tensor([prompt + generation.token_ids])
        with torch.inference_mode():
            logprobs = torch.log_softmax(reference(sequence).logits[0].float(), dim=-1)
        start = len(prompt) - 1
        for position, token in enumerate(generation.token_ids):
            row = logprobs[start + position]
            assert int(row.argmax()) == token  # greedy
            assert generation.token_logprobs[position] == pytest.approx(float(row[token]), abs=1e-4)
            for scored in score_ids:
                assert generation.score_logprobs[position][scored] == pytest.approx(float(row[scored]), abs=1e-4)
        assert generation.cumulative_logprob == pytest.approx(sum(generation.token_logprobs), abs=1e-6)
        assert generation.logprob_source == "exact"
        assert generation.text == tiny_engine.decode(generation.token_ids)


def test_each_row_stops_on_its_own_stop_id_or_eos_and_keeps_it(tiny_engine, prompts):
    free = [tiny_engine.generate([p], max_new_tokens=60)[0] for p in prompts]
    # Stop the longest-running row at the third token it generates; the others run on to EOS or the limit.
    target = max(range(len(prompts)), key=lambda i: len(free[i].token_ids))
    stop_id = free[target].token_ids[2]
    batched = tiny_engine.generate(prompts, max_new_tokens=60, stop_token_ids=[stop_id])
    for row, (alone, together) in enumerate(zip(free, batched)):
        if stop_id in alone.token_ids:
            cut = alone.token_ids.index(stop_id) + 1
            assert together.token_ids == alone.token_ids[:cut]
            assert together.token_ids[-1] == stop_id
            assert together.finish_reason == ("eos" if stop_id == tiny_engine.eos_token_id else "stop")
        else:
            assert together.token_ids == alone.token_ids
            assert together.finish_reason == alone.finish_reason
    assert batched[target].finish_reason == "stop"
    assert len(batched[target].token_ids) <= 3
    eos_rows = [g for g in free if g.finish_reason == "eos"]
    assert eos_rows, "the tiny model ends at least one of these answers with </s>"
    for generation in eos_rows:
        assert generation.token_ids[-1] == tiny_engine.eos_token_id
        assert generation.text.endswith("</s>")


def test_max_new_tokens_gives_length(tiny_engine, prompts):
    generations = tiny_engine.generate(prompts, max_new_tokens=3)
    for generation in generations:
        if generation.finish_reason == "length":
            assert len(generation.token_ids) == 3
        else:
            assert generation.finish_reason == "eos" and generation.token_ids[-1] == tiny_engine.eos_token_id
    assert [g.finish_reason for g in generations].count("length") >= 2  # no answer here is that short


def test_cancel_before_start_raises(tiny_engine, prompts):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(GenerationCancelled):
        tiny_engine.generate(prompts, max_new_tokens=8, cancel=cancel)


def test_cancel_between_steps_raises(tiny_engine, prompts):
    cancel = threading.Event()
    seen: list[int] = []

    def on_token(token_id: int, delta: str) -> None:
        seen.append(token_id)
        if len(seen) == 2:
            cancel.set()

    with pytest.raises(GenerationCancelled):
        tiny_engine.generate([prompts[0]], max_new_tokens=40, cancel=cancel, on_token=on_token)
    assert len(seen) == 2  # stopped at the next step boundary


def test_streamed_deltas_concatenate_to_the_text(tiny_engine, prompts):
    for prompt in prompts:
        calls: list[tuple[int, str]] = []
        (generation,) = tiny_engine.generate([prompt], max_new_tokens=60, on_token=lambda t, d: calls.append((t, d)))
        assert [t for t, _ in calls] == generation.token_ids
        assert "".join(d for _, d in calls) == generation.text


def test_streaming_never_splits_a_multibyte_character(tiny_engine):
    """Byte-fallback pieces of one character arrive over several tokens; no delta may hold half of it."""
    text = "Vicuña fibre — 12.5 µm ✓ 日本"
    ids = tiny_engine.encode(text, add_bos=False)
    assert len(ids) > len(text.split())  # some characters really are several byte pieces
    deltas: list[str] = []
    streamed = ""
    for end in range(1, len(ids) + 1):
        streamed = tiny_engine._stream_delta(
            lambda t, d: deltas.append(d), ids[end - 1], ids[:end], streamed, last=end == len(ids)
        )
    assert "".join(deltas) == tiny_engine.decode(ids) == text
    assert not any("\ufffd" in d for d in deltas)


def test_on_token_is_ignored_for_batches(tiny_engine, prompts):
    calls: list[int] = []
    tiny_engine.generate(prompts, max_new_tokens=4, on_token=lambda t, d: calls.append(t))
    assert calls == []


def test_next_token_logprobs_match_the_first_generation_step(tiny_engine, prompts, score_ids):
    asked = score_ids + [10**7]  # an id past the vocabulary counts as missing
    one_step = tiny_engine.next_token_logprobs(prompts, asked)
    generations = tiny_engine.generate(prompts, max_new_tokens=1, score_ids=score_ids)
    for logprobs, generation in zip(one_step, generations):
        assert logprobs[10**7] == MISSING_LOGPROB
        for token in score_ids:
            assert logprobs[token] == pytest.approx(generation.score_logprobs[0][token], abs=1e-4)
            assert logprobs[token] <= 0.0
        assert math.fsum(math.exp(logprobs[t]) for t in score_ids) <= 1.0 + 1e-5


def test_special_tokens_are_single_ids(tiny_engine):
    retrieval = tiny_engine.token_id("[Retrieval]")
    assert retrieval is not None
    assert tiny_engine.encode("[Retrieval]", add_bos=False) == [retrieval]
    ids = tiny_engine.encode("x[No support / Contradictory]<paragraph>")
    assert ids[0] == 1  # BOS
    assert ids[-2:] == [tiny_engine.token_id("[No support / Contradictory]"), tiny_engine.token_id("<paragraph>")]
    assert tiny_engine.decode(tiny_engine.encode("[Relevant]ok[Utility:5]", add_bos=False)) == "[Relevant]ok[Utility:5]"
    assert tiny_engine.encode("ok", add_bos=False)[0] != 1


def test_token_id_of_an_unknown_token_is_none_not_unk(tiny_engine):
    assert tiny_engine.token_id("[Retrieve]") is None
    assert tiny_engine.token_id("definitely-not-a-token") is None
    assert tiny_engine.token_id("<unk>") == 0


def test_prompt_longer_than_the_context_is_refused(tiny_engine):
    with pytest.raises(EngineError, match="context"):
        tiny_engine.generate([[1] * 4096], max_new_tokens=4)


def test_max_context_argument_caps_the_config(tmp_path):
    engine = TransformersEngine.load(str(demo_model_path()), device="cpu", max_context=512)
    assert engine.max_context == 512
    assert engine.dtype == "float32" and engine.device == "cpu"
    engine.close()


def test_missing_folder_names_the_path(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(EngineError) as error:
        TransformersEngine.load(str(missing))
    assert str(missing) in str(error.value)
    assert "--demo" in str(error.value)


def test_folder_without_weights_names_the_folder(tmp_path):
    folder = tmp_path / "weightless"
    folder.mkdir()
    for name in ("config.json", "tokenizer.model", "tokenizer_config.json"):
        shutil.copy(demo_model_path() / name, folder / name)
    with pytest.raises(EngineError) as error:
        TransformersEngine.load(str(folder))
    assert str(folder) in str(error.value)
    assert "no weights" in str(error.value)


def test_folder_without_config_is_not_a_model_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("hello", encoding="utf-8")
    with pytest.raises(EngineError, match="config.json"):
        TransformersEngine.load(str(tmp_path))


def test_hub_name_not_in_the_cache_while_offline_says_how_to_download(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(EngineError) as error:
        TransformersEngine.load("selfrag-chat-tests/not-a-cached-model")
    message = str(error.value)
    assert "selfrag-chat-tests/not-a-cached-model" in message
    assert "hf download selfrag-chat-tests/not-a-cached-model" in message


def test_cuda_requested_without_cuda_is_explained():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(EngineError, match="CUDA is not available"):
        TransformersEngine.load(str(demo_model_path()), device="cuda")


def test_unknown_dtype_is_explained():
    with pytest.raises(EngineError, match="unknown dtype 'float8'"):
        TransformersEngine.load(str(demo_model_path()), dtype="float8")


def test_model_too_big_for_memory_is_refused_with_alternatives(tmp_path, monkeypatch):
    from selfrag_tui.engines import transformers_engine

    folder = tmp_path / "big"
    shutil.copytree(demo_model_path(), folder)
    monkeypatch.setattr(transformers_engine, "_available_memory", lambda torch, device: 1024)
    with pytest.raises(EngineError) as error:
        TransformersEngine.load(str(folder), device="cpu")
    message = str(error.value)
    assert "not enough memory" in message and "bfloat16" in message and "--demo" in message


def test_sentencepiece_tokenizer_without_protobuf_says_what_to_install(monkeypatch):
    """transformers itself would blame a missing tiktoken; the engine names the packages really needed."""
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "google.protobuf" else real_find_spec(name, *a)
    )
    with pytest.raises(EngineError, match="pip install protobuf"):
        TransformersEngine.load(str(demo_model_path()))
