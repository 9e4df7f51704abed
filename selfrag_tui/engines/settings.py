"""The generator's settings: one pydantic model, the single definition of each engine knob, its default and its
allowed range. The application's settings schema nests it as its `[model]` section; engines read it directly."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MODEL = "selfrag/selfrag_llama2_7b"
EngineName = Literal["auto", "transformers", "vllm", "llamacpp", "openai"]
ENGINE_NAMES: tuple[str, ...] = ("auto", "transformers", "vllm", "llamacpp", "openai")


class ModelSettings(BaseModel):
    """Which model generates, on which engine, with what resources."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True, protected_namespaces=())

    engine: EngineName = Field(
        "auto", title="Engine",
        description="auto picks vLLM on a CUDA GPU, llama.cpp for a .gguf file, transformers otherwise",
    )
    model: str = Field(
        DEFAULT_MODEL, min_length=1, title="Model",
        description="hub name, local folder, .gguf file, or the name a server serves (engine openai)",
    )
    device: str = Field("auto", min_length=1, title="Device",
                        description="transformers: auto, cpu, cuda, cuda:1, mps")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", title="Weights dtype", description="auto = float16/bfloat16 on a GPU, float32 on the CPU"
    )
    max_model_len: int = Field(4096, ge=256, le=131072, title="Context length",
                               description="tokens of prompt + answer the engine reserves room for")
    tensor_parallel_size: int = Field(1, ge=1, le=64, title="Tensor parallel",
                                      description="vLLM: GPUs one model is split across")
    gpu_memory_utilization: float = Field(0.85, gt=0.0, le=1.0, title="GPU memory share",
                                          description="vLLM: share of GPU memory it may take")
    n_threads: int | None = Field(None, ge=1, le=1024, title="CPU threads",
                                  description="transformers / llama.cpp; empty lets the library choose")
    base_url: str = Field("http://127.0.0.1:8000/v1", min_length=1, title="Server URL",
                          description="engine openai: an OpenAI-compatible server, e.g. `vllm serve`")
    api_key: str | None = Field(None, title="API key", description="engine openai: sent as a bearer token")
    request_timeout_s: float = Field(120.0, gt=0.0, le=3600.0, title="Request timeout (s)",
                                     description="engine openai: seconds to wait for one response")
    tokenizer: str | None = Field(
        None, title="Tokenizer",
        description="tokenizer folder or hub name when it is not next to the model: engine openai builds token-id "
        "prompts with it (default: model); engine llamacpp uses it instead of the GGUF's own tokenizer",
    )
    max_logprobs: int = Field(20, ge=1, le=100, title="Max logprobs",
                              description="vLLM's max_logprobs and the top-k asked of a server when exact "
                              "reflection logprobs are unavailable")
    request_retries: int = Field(3, ge=0, le=20, title="Request retries",
                                 description="engine openai: retries on connection errors, with back-off")
    max_concurrent_requests: int = Field(8, ge=1, le=256, title="Concurrent requests",
                                         description="engine openai: the K candidate prompts of a step are sent at "
                                         "once, up to this many")
    n_gpu_layers: int = Field(0, ge=-1, le=1000, title="GPU layers",
                              description="engine llamacpp: layers to offload to a GPU; 0 = CPU only, -1 = all")
    kv_cache_tokens: int | None = Field(
        None, ge=256, le=1_048_576, title="KV cache tokens",
        description="engine llamacpp: key/value cache shared by the K candidates and cached paths (empty: the "
        "context length); more keeps more candidates in one batch and more earlier turns cached, at about 0.5 MB a "
        "token for the 7B model at f16",
    )
    kv_cache_dtype: Literal["f16", "f32"] = Field(
        "f16", title="KV cache dtype",
        description="engine llamacpp: f16 halves the cache but moves reflection logprobs by up to ~0.01; f32 "
        "matches the transformers engine to ~2e-5",
    )
