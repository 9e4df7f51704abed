"""Which engine `auto` picks, what each engine is given from the settings, and the vLLM engine's clear errors on a
machine without a GPU or without vLLM. The vLLM engine's requests and output parsing are tested against vLLM's own
code in test_engine_vllm_inprocess.py."""

from __future__ import annotations

import importlib.util

import pytest

from selfrag_tui.engines import loader
from selfrag_tui.engines.base import EngineError
from selfrag_tui.engines.vllm_engine import VllmEngine, finish_reason_of
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


@pytest.mark.skipif(loader.cuda_available(), reason="this machine has CUDA")
def test_auto_on_a_machine_without_cuda_is_transformers_for_a_hub_name_and_llamacpp_for_a_gguf():
    assert loader.resolve_engine_name(ModelSettings()) == "transformers"
    assert loader.resolve_engine_name(ModelSettings(model="/models/selfrag.Q4_K_M.gguf")) == "llamacpp"


def test_each_engine_gets_its_settings(monkeypatch):
    """The loader hands every engine the knobs from settings.model (recorded at the engines' entry points)."""
    from selfrag_tui.engines import llamacpp_engine, openai_engine, transformers_engine, vllm_engine

    from selfrag_tui.engines import preflight

    calls: dict[str, tuple] = {}
    checked: list[str] = []

    def record(name):
        return classmethod(lambda cls, *args, **kwargs: calls.setdefault(name, (args, kwargs)))

    # The model "m" exists nowhere: the pre-flight checks are tested on their own below and in test_doctor.py.
    monkeypatch.setattr(preflight, "preflight", lambda m, *, engine, for_load: checked.append(engine) or [])

    monkeypatch.setattr(vllm_engine.VllmEngine, "load", record("vllm"))
    monkeypatch.setattr(llamacpp_engine.LlamaCppEngine, "load", record("llamacpp"))
    monkeypatch.setattr(openai_engine.OpenAIEngine, "connect", record("openai"))
    monkeypatch.setattr(transformers_engine.TransformersEngine, "load", record("transformers"))
    base = dict(model="m", max_model_len=2048, n_threads=3, max_logprobs=7, tokenizer="tok")
    loader.load_engine(ModelSettings(engine="vllm", tensor_parallel_size=2, gpu_memory_utilization=0.5, **base))
    loader.load_engine(ModelSettings(engine="llamacpp", n_gpu_layers=4, kv_cache_dtype="f32", kv_cache_tokens=8192,
                                     **base))
    loader.load_engine(ModelSettings(engine="openai", base_url="http://h:1/v1", api_key="k", request_retries=5,
                                     request_timeout_s=9.0, max_concurrent_requests=2, **base))
    loader.load_engine(ModelSettings(engine="transformers", device="cpu", dtype="float32", **base))
    assert calls["vllm"][1] == dict(dtype="auto", tensor_parallel_size=2, gpu_memory_utilization=0.5,
                                    max_model_len=2048, max_logprobs=7)
    assert calls["llamacpp"][1] == dict(n_threads=3, max_context=2048, n_gpu_layers=4, tokenizer="tok",
                                        kv_cache_dtype="f32", kv_cache_tokens=8192)
    assert calls["openai"][0] == ("http://h:1/v1",)
    assert calls["openai"][1] == dict(model="m", tokenizer="tok", api_key="k", timeout_s=9.0, retries=5,
                                      top_logprobs=7, max_concurrency=2, max_context=2048)
    assert calls["transformers"][1] == dict(device="cpu", dtype="float32", n_threads=3, max_context=2048)
    assert checked == ["vllm", "llamacpp", "openai", "transformers"]


def test_loading_stops_at_the_pre_flight_check_with_the_engines_own_message(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(EngineError, match=r"model folder .*no-such-model does not exist; check the path in --model"):
        loader.load_engine(ModelSettings(engine="transformers", model=str(missing)))
    with pytest.raises(EngineError, match=r"GGUF file .*missing.gguf does not exist\. set model.model \(--model\)"):
        loader.load_engine(ModelSettings(engine="llamacpp", model=str(tmp_path / "missing.gguf")))


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


def test_vllm_finish_reasons():
    assert finish_reason_of("length", None, [5, 6], eos_token_id=2) == "length"
    assert finish_reason_of("stop", 32001, [5, 32001], eos_token_id=2) == "stop"
    assert finish_reason_of("stop", None, [5, 2], eos_token_id=2) == "eos"
    assert finish_reason_of("stop", None, [5], eos_token_id=2) == "eos"
    assert finish_reason_of("abort", None, [5], eos_token_id=2) == "cancelled"
