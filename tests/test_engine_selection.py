"""Which engine `auto` picks, what each engine is given from the settings, and the vLLM engine's parts that run
without a GPU (its clear error here, and the conversion of vLLM outputs given as plain data)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Any

import pytest

from selfrag_tui.engines import loader
from selfrag_tui.engines.base import MISSING_LOGPROB, EngineError
from selfrag_tui.engines.vllm_engine import (
    VllmEngine,
    finish_reason_of,
    generation_from_output,
    has_logprob_token_ids,
    plan_logprob_request,
)
from selfrag_tui.application.settings import ModelSettings


@pytest.mark.parametrize(
    ("model", "vllm", "cuda", "expected"),
    [
        ("selfrag/selfrag_llama2_7b", True, True, "vllm"),
        ("selfrag/selfrag_llama2_7b", True, False, "transformers"),
        ("selfrag/selfrag_llama2_7b", False, True, "transformers"),
        ("/models/selfrag-7b.Q8_0.gguf", True, True, "llamacpp"),
        ("/models/SELFRAG.GGUF", False, False, "llamacpp"),
    ],
)
def test_auto_picks_by_installed_vllm_cuda_and_file_type(model, vllm, cuda, expected):
    assert loader.resolve_engine_name(ModelSettings(model=model), vllm=vllm, cuda=cuda) == expected


def test_an_explicit_engine_is_kept():
    for name in ("transformers", "vllm", "llamacpp", "openai"):
        assert loader.resolve_engine_name(ModelSettings(engine=name, model="x.gguf"), vllm=False, cuda=False) == name


def test_auto_on_this_machine_matches_what_is_installed():
    expected = "vllm" if importlib.util.find_spec("vllm") and loader.cuda_available() else "transformers"
    assert loader.resolve_engine_name(ModelSettings()) == expected


def test_each_engine_gets_its_settings(monkeypatch):
    """The loader hands every engine the knobs from settings.model (recorded at the engines' entry points)."""
    from selfrag_tui.engines import llamacpp_engine, openai_engine, transformers_engine, vllm_engine

    calls: dict[str, tuple] = {}

    def record(name):
        return classmethod(lambda cls, *args, **kwargs: calls.setdefault(name, (args, kwargs)))

    monkeypatch.setattr(vllm_engine.VllmEngine, "load", record("vllm"))
    monkeypatch.setattr(llamacpp_engine.LlamaCppEngine, "load", record("llamacpp"))
    monkeypatch.setattr(openai_engine.OpenAIEngine, "connect", record("openai"))
    monkeypatch.setattr(transformers_engine.TransformersEngine, "load", record("transformers"))
    base = dict(model="m", max_model_len=2048, n_threads=3, max_logprobs=7, tokenizer="tok")
    loader.load_engine(ModelSettings(engine="vllm", tensor_parallel_size=2, gpu_memory_utilization=0.5, **base))
    loader.load_engine(ModelSettings(engine="llamacpp", n_gpu_layers=4, kv_cache_dtype="f32", **base))
    loader.load_engine(ModelSettings(engine="openai", base_url="http://h:1/v1", api_key="k", request_retries=5,
                                     request_timeout_s=9.0, max_concurrent_requests=2, **base))
    loader.load_engine(ModelSettings(engine="transformers", device="cpu", dtype="float32", **base))
    assert calls["vllm"][1] == dict(dtype="auto", tensor_parallel_size=2, gpu_memory_utilization=0.5,
                                    max_model_len=2048, max_logprobs=7)
    assert calls["llamacpp"][1] == dict(n_threads=3, max_context=2048, n_gpu_layers=4, tokenizer="tok",
                                        kv_cache_dtype="f32")
    assert calls["openai"][0] == ("http://h:1/v1",)
    assert calls["openai"][1] == dict(model="m", tokenizer="tok", api_key="k", timeout_s=9.0, retries=5,
                                      top_logprobs=7, max_concurrency=2, max_context=2048)
    assert calls["transformers"][1] == dict(device="cpu", dtype="float32", n_threads=3, max_context=2048)


# ---------------------------------------------------------------------------------------------------------------
# vLLM without a GPU


@pytest.mark.skipif(loader.cuda_available(), reason="this machine has CUDA")
def test_vllm_without_cuda_names_the_other_engines():
    with pytest.raises(EngineError) as info:
        VllmEngine.load("selfrag/selfrag_llama2_7b")
    message = str(info.value)
    assert "NVIDIA GPU with CUDA" in message
    assert all(name in message for name in ('"llamacpp"', '"transformers"', '"openai"'))


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed")
def test_vllm_missing_gives_the_install_command():
    from selfrag_tui.engines.vllm_engine import require_vllm

    with pytest.raises(EngineError, match=r"pip install 'selfrag-chat\[vllm\]'"):
        require_vllm()


@dataclass
class Logprob:
    """Shaped like vllm.logprobs.Logprob: the value is read from `.logprob`."""

    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:
    """The fields of vllm.outputs.CompletionOutput the engine reads."""

    token_ids: list[int]
    logprobs: list[dict[int, Any]] | None
    finish_reason: str | None
    stop_reason: int | str | None = None
    text: str = ""
    cumulative_logprob: float | None = None
    extra: dict = field(default_factory=dict)


def test_vllm_output_becomes_a_generation_with_the_minus_100_rule():
    output = CompletionOutput(
        token_ids=[32004, 450, 32001],
        logprobs=[
            {32004: Logprob(-0.1, 1), 32003: Logprob(-2.5, 2)},
            {450: Logprob(-0.7, 1)},
            {32001: Logprob(-0.05, 1), 32000: Logprob(-3.0, 2)},
        ],
        finish_reason="stop",
        stop_reason=32001,
    )
    generation = generation_from_output(
        output, score_ids=[32000, 32001, 32003, 32004], eos_token_id=2, decode=lambda ids: f"{list(ids)}",
        logprob_source="topk",
    )
    assert generation.token_ids == [32004, 450, 32001]
    assert generation.token_logprobs == [-0.1, -0.7, -0.05]
    assert generation.cumulative_logprob == pytest.approx(-0.85)
    assert generation.score_logprobs[0] == {32004: -0.1, 32003: -2.5}
    assert generation.logprob_at(1, 32004) == MISSING_LOGPROB  # not returned: counts as -100
    assert generation.finish_reason == "stop" and generation.logprob_source == "topk"
    assert generation.text == "[32004, 450, 32001]"


def test_vllm_finish_reasons():
    assert finish_reason_of("length", None, [5, 6], eos_token_id=2) == "length"
    assert finish_reason_of("stop", 32001, [5, 32001], eos_token_id=2) == "stop"
    assert finish_reason_of("stop", None, [5, 2], eos_token_id=2) == "eos"
    assert finish_reason_of("stop", None, [5], eos_token_id=2) == "eos"
    assert finish_reason_of("abort", None, [5], eos_token_id=2) == "cancelled"


def test_vllm_asks_for_exact_ids_when_supported_else_at_most_20_top_logprobs():
    class WithIds:
        __struct_fields__ = ("temperature", "logprobs", "logprob_token_ids")

    class WithoutIds:
        def __init__(self, temperature: float = 1.0, logprobs: int | None = None) -> None: ...

    assert has_logprob_token_ids(WithIds) and not has_logprob_token_ids(WithoutIds)
    exact = plan_logprob_request([32003, 32004, 32004], exact_supported=True, max_logprobs=20)
    assert exact.logprob_token_ids == (32003, 32004) and exact.source == "exact" and exact.logprobs == 0
    topk = plan_logprob_request(range(32000, 32015), exact_supported=False, max_logprobs=5000)
    assert topk.logprobs == 20 and topk.logprob_token_ids is None and topk.source == "topk"
    assert plan_logprob_request([1], exact_supported=False, max_logprobs=5).logprobs == 5
