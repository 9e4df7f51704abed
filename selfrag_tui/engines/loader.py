"""Pick and load the engine named in the settings."""

from __future__ import annotations

from typing import TYPE_CHECKING

from selfrag_tui.engines.base import Engine, EngineError

if TYPE_CHECKING:
    from selfrag_tui.settings import ModelSettings


def resolve_engine_name(model_settings: "ModelSettings") -> str:
    """`auto` picks vLLM when installed with CUDA present, llama.cpp for a .gguf file, else transformers."""
    name = model_settings.engine
    if name != "auto":
        return name
    if model_settings.model.endswith(".gguf"):
        return "llamacpp"
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        try:
            import torch

            if torch.cuda.is_available():
                return "vllm"
        except ImportError:
            pass
    return "transformers"


def load_engine(model_settings: "ModelSettings") -> Engine:
    name = resolve_engine_name(model_settings)
    if name == "transformers":
        from selfrag_tui.engines.transformers_engine import TransformersEngine

        return TransformersEngine.load(
            model_settings.model,
            device=model_settings.device,
            dtype=model_settings.dtype,
            n_threads=model_settings.n_threads,
            max_context=model_settings.max_model_len,
        )
    raise EngineError(
        f"engine '{name}' is not available in this build; set model.engine = \"transformers\" "
        "(SELFRAG_MODEL__ENGINE=transformers) or use --engine transformers"
    )
