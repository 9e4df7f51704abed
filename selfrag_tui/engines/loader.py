"""Pick and load the engine named in the settings.

`auto` picks vLLM when it is installed and a CUDA GPU is present, llama.cpp for a `.gguf` model, and the
transformers engine otherwise. Every engine gets its knobs from `settings.model`, after its pre-flight check
(selfrag_tui/engines/preflight.py, the same one `doctor` runs) found nothing that stops it.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING

from selfrag_tui.engines.base import Engine, EngineError

if TYPE_CHECKING:
    from selfrag_tui.engines.settings import ModelSettings

ENGINES = ("transformers", "vllm", "llamacpp", "openai")


def cuda_available() -> bool:
    """Whether torch sees a CUDA device (False when torch is missing or CPU-only)."""
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def llamacpp_installed() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def resolve_engine_name(
    model_settings: "ModelSettings", *, vllm: bool | None = None, cuda: bool | None = None
) -> str:
    """`auto` -> llama.cpp for a .gguf file, vLLM when installed with CUDA present, else transformers.

    `vllm` and `cuda` override the detection (for `doctor` and tests); None means detect.
    """
    name = model_settings.engine
    if name != "auto":
        return name
    if model_settings.model.lower().endswith(".gguf"):
        return "llamacpp"
    has_vllm = vllm_installed() if vllm is None else vllm
    if has_vllm and (cuda_available() if cuda is None else cuda):
        return "vllm"
    return "transformers"


def load_engine(model_settings: "ModelSettings") -> Engine:
    """Load the engine the settings name, with the settings' knobs; EngineError says what to fix."""
    from selfrag_tui.engines.preflight import preflight, raise_for_errors

    m = model_settings
    name = resolve_engine_name(m)
    if name in ENGINES:
        raise_for_errors(preflight(m, engine=name, for_load=True))
    if name == "transformers":
        from selfrag_tui.engines.transformers_engine import TransformersEngine

        return TransformersEngine.load(
            m.model, device=m.device, dtype=m.dtype, n_threads=m.n_threads, max_context=m.max_model_len
        )
    if name == "vllm":
        from selfrag_tui.engines.vllm_engine import VllmEngine

        return VllmEngine.load(
            m.model,
            dtype=m.dtype,
            tensor_parallel_size=m.tensor_parallel_size,
            gpu_memory_utilization=m.gpu_memory_utilization,
            max_model_len=m.max_model_len,
            max_logprobs=m.max_logprobs,
        )
    if name == "llamacpp":
        from selfrag_tui.engines.llamacpp_engine import LlamaCppEngine

        return LlamaCppEngine.load(
            m.model,
            n_threads=m.n_threads,
            max_context=m.max_model_len,
            n_gpu_layers=m.n_gpu_layers,
            kv_cache_dtype=m.kv_cache_dtype,
            kv_cache_tokens=m.kv_cache_tokens,
            tokenizer=m.tokenizer,
        )
    if name == "openai":
        from selfrag_tui.engines.openai_engine import OpenAIEngine

        return OpenAIEngine.connect(
            m.base_url,
            model=m.model,
            tokenizer=m.tokenizer,
            api_key=m.api_key,
            timeout_s=m.request_timeout_s,
            retries=m.request_retries,
            top_logprobs=m.max_logprobs,
            max_concurrency=m.max_concurrent_requests,
            max_context=m.max_model_len,
        )
    raise EngineError(
        f"Unknown engine '{name}'. Set model.engine to one of auto, {', '.join(ENGINES)} "
        "(SELFRAG_MODEL__ENGINE or --engine)."
    )
