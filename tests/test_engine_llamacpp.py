"""The llama.cpp engine runs a GGUF conversion of the tiny model and agrees with the transformers engine."""

from __future__ import annotations

import shutil
import threading

import pytest

from engine_agreement import assert_agree, build_prompts, read, sample_cases
from selfrag_tui.engines.base import EngineError, GenerationCancelled
from selfrag_tui.reflection import ADDED_TOKENS, ReflectionVocab

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def llamacpp_engine(tiny_gguf, tiny_model_dir):
    """llama.cpp on the converted file, with the tiny model's own tokenizer for prompts."""
    from selfrag_tui.engines.llamacpp_engine import LlamaCppEngine

    engine = LlamaCppEngine.load(tiny_gguf, n_threads=1, max_context=1024, tokenizer=str(tiny_model_dir),
                                   kv_cache_dtype="f32")
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def llamacpp_native(tiny_gguf):
    """llama.cpp with the GGUF's own tokenizer (what users with only a .gguf file get)."""
    from selfrag_tui.engines.llamacpp_engine import LlamaCppEngine

    engine = LlamaCppEngine.load(tiny_gguf, n_threads=1, max_context=1024, kv_cache_dtype="f32")
    yield engine
    engine.close()


def test_gguf_vocabulary_has_the_reflection_tokens_at_the_same_ids(llamacpp_native, tiny_transformers_engine):
    vocab = ReflectionVocab.from_engine(llamacpp_native)
    assert vocab.ids == {token: tiny_transformers_engine.token_id(token) for token in ADDED_TOKENS}
    # Special-token text in a prompt is parsed as the single added id, not as "[", "Ret", ...
    assert llamacpp_native.encode("[Retrieval]", add_bos=False) == [vocab.retrieval]
    assert llamacpp_native.encode("### Response:\n[Retrieval]<paragraph>", add_bos=False)[-2:] == [
        vocab.retrieval,
        vocab.paragraph_open,
    ]
    assert llamacpp_native.token_id("[Not a Self-RAG token]") is None


def test_agrees_with_transformers_on_decisions_tokens_and_scores(llamacpp_engine, tiny_transformers_engine):
    vocab = ReflectionVocab.from_engine(tiny_transformers_engine)
    base, passages = build_prompts(tiny_transformers_engine.encode, sample_cases())
    assert [llamacpp_engine.encode(t) for t in ["### Instruction:\nHi\n\n### Response:\n"]] == [
        tiny_transformers_engine.encode("### Instruction:\nHi\n\n### Response:\n")
    ]
    reference = read(tiny_transformers_engine, vocab, base, passages)
    other = read(llamacpp_engine, vocab, base, passages)
    assert any(tokens for tokens in reference.critique_tokens[0]), "the tiny model should produce critiques"
    assert_agree(reference, other)


def test_agrees_with_transformers_on_prompts_tokenised_by_llama_cpp(llamacpp_native, tiny_transformers_engine):
    """Users with only a GGUF get llama.cpp's tokenisation; the same ids still score the same in both engines."""
    vocab = ReflectionVocab.from_engine(llamacpp_native)
    base, passages = build_prompts(llamacpp_native.encode, sample_cases(2))
    assert_agree(read(tiny_transformers_engine, vocab, base, passages), read(llamacpp_native, vocab, base, passages))


def test_logprobs_are_exact_full_vocabulary_log_softmax(llamacpp_native):
    import math

    vocab = ReflectionVocab.from_engine(llamacpp_native)
    base = build_prompts(llamacpp_native.encode, sample_cases(1))[0][:1]
    everything = list(range(llamacpp_native.n_vocab))
    (logprobs,) = llamacpp_native.next_token_logprobs(base, everything)
    assert abs(sum(math.exp(lp) for lp in logprobs.values()) - 1.0) < 1e-4
    (generation,) = llamacpp_native.generate(base, max_new_tokens=1, score_ids=vocab.score_ids)
    assert generation.logprob_source == "exact"
    assert set(generation.score_logprobs[0]) == set(vocab.score_ids)
    assert generation.token_logprobs[0] == pytest.approx(max(logprobs.values()), abs=1e-5)


def test_streams_tokens_and_stops_on_a_stop_id(llamacpp_engine, tiny_transformers_engine):
    vocab = ReflectionVocab.from_engine(llamacpp_engine)
    _, passages = build_prompts(tiny_transformers_engine.encode, sample_cases(1)[:1])
    streamed: list[tuple[int, str]] = []
    (generation,) = llamacpp_engine.generate(
        passages, max_new_tokens=60, stop_token_ids=vocab.retrieve_ids, on_token=lambda t, s: streamed.append((t, s))
    )
    assert [t for t, _ in streamed] == generation.token_ids
    # Pieces keep llama.cpp's spacing; the text is the tokenizer's decode: the same characters either way.
    assert "".join(s for _, s in streamed).replace(" ", "") == generation.text.replace(" ", "")
    if generation.finish_reason == "stop":
        assert generation.token_ids[-1] in vocab.retrieve_ids


def test_cancel_stops_between_tokens(llamacpp_engine, tiny_transformers_engine):
    _, passages = build_prompts(tiny_transformers_engine.encode, sample_cases(1)[:1])
    cancel = threading.Event()
    seen: list[int] = []

    def on_token(token_id: int, _text: str) -> None:
        seen.append(token_id)
        if len(seen) == 2:
            cancel.set()

    with pytest.raises(GenerationCancelled):
        llamacpp_engine.generate(passages, max_new_tokens=60, cancel=cancel, on_token=on_token)
    assert len(seen) == 2
    # The engine stays usable after a cancelled call.
    assert llamacpp_engine.generate(passages, max_new_tokens=3)[0].token_ids


def test_gguf_without_the_reflection_tokens_is_refused(tiny_gguf, tmp_path):
    """A GGUF whose vocabulary lacks [Retrieval] (here renamed in place) fails at load time with a clear error."""
    from selfrag_tui.engines.llamacpp_engine import LlamaCppEngine

    broken = tmp_path / "not-selfrag.gguf"
    shutil.copy(tiny_gguf, broken)
    data = bytearray(broken.read_bytes())
    at = data.find(b"[Retrieval]")
    assert at > 0
    data[at : at + len(b"[Retrieval]")] = b"[Retrievax]"
    broken.write_bytes(bytes(data))
    with pytest.raises(EngineError, match=r"not a Self-RAG model.*\[Retrieval\].*not-selfrag\.gguf"):
        LlamaCppEngine.load(broken, n_threads=1, max_context=256)


def test_missing_or_wrong_model_file_says_what_to_set(tmp_path, tiny_model_dir):
    from selfrag_tui.engines.llamacpp_engine import LlamaCppEngine

    with pytest.raises(EngineError, match="does not exist.*model.model"):
        LlamaCppEngine.load(tmp_path / "absent.gguf")
    with pytest.raises(EngineError, match="needs a .gguf file"):
        LlamaCppEngine.load(tiny_model_dir)


def test_kv_cache_precision_is_a_setting_with_a_clear_error(tiny_gguf):
    from selfrag_tui.engines.base import EngineError
    from selfrag_tui.engines.llamacpp_engine import LlamaCppEngine

    with pytest.raises(EngineError, match="kv_cache_dtype"):
        LlamaCppEngine.load(tiny_gguf, n_threads=1, max_context=256, kv_cache_dtype="q4")
