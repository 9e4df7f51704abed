"""Settings: defaults < TOML file (XDG config dir) < `SELFRAG_*` environment variables < command-line flags.

Nested sections map to environment variables with a double underscore, e.g. `SELFRAG_DECODING__MODE=always`,
`SELFRAG_MODEL__ENGINE=vllm`, `SELFRAG_STORE__PATH=/data/store`. The file is `config.toml` in the XDG config dir,
or the path in `SELFRAG_CONFIG`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from selfrag_tui import locations

DEFAULT_MODEL = "selfrag/selfrag_llama2_7b"
DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"


class StoreSettings(BaseModel):
    path: Path | None = None
    """LanceDB folder; default `<data dir>/store`."""
    embedder: str = DEFAULT_EMBEDDER
    """sentence-transformers model name or folder. all-MiniLM-L6-v2 loads offline from the bundled package."""
    search_mode: Literal["hybrid", "vector", "fts"] = "hybrid"
    embed_batch_size: int = 32
    vector_index_threshold: int = 20_000
    """Build an ANN vector index once the store holds this many chunks (brute force is fast below it)."""


class IngestSettings(BaseModel):
    include: list[str] = Field(default_factory=lambda: ["*.pdf", "*.md", "*.markdown", "*.txt", "*.rst"])
    exclude: list[str] = Field(default_factory=lambda: [".*", "node_modules", "__pycache__"])
    chunk_words: int = 150
    """Target words per chunk (windows of roughly 100-200 words)."""
    chunk_overlap_words: int = 30
    max_file_mb: float = 100.0
    """Files larger than this are skipped with a reason."""


class ModelSettings(BaseModel):
    engine: Literal["auto", "transformers", "vllm", "llamacpp", "openai"] = "auto"
    model: str = DEFAULT_MODEL
    """Hub name, local folder, or .gguf file of the generator."""
    device: str = "auto"
    """transformers: `auto`, `cpu`, `cuda`, `cuda:1`, `mps`."""
    dtype: str = "auto"
    """`auto` = float16/bfloat16 on GPU, float32 on CPU."""
    max_model_len: int = 4096
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.85
    n_threads: int | None = None
    """CPU threads for transformers / llama.cpp; None lets the library choose."""
    base_url: str = "http://127.0.0.1:8000/v1"
    """OpenAI-compatible server (engine `openai`), e.g. `vllm serve selfrag/selfrag_llama2_7b`."""
    api_key: str | None = None
    request_timeout_s: float = 120.0
    tokenizer: str | None = None
    """Tokenizer folder or hub name when it is not next to the model: engine `openai` builds token-id prompts with
    it (default: `model`); engine `llamacpp` uses it instead of the GGUF's own tokenizer when set."""
    max_logprobs: int = 20
    """vLLM's `max_logprobs` and the top-k asked of a server when exact reflection logprobs are unavailable."""
    request_retries: int = 3
    """Engine `openai`: retries on connection errors, with back-off."""
    max_concurrent_requests: int = 8
    """Engine `openai`: the K candidate prompts of a step are sent at once, up to this many."""
    n_gpu_layers: int = 0
    """Engine `llamacpp`: layers to offload to a GPU (llama.cpp built with GPU support); 0 = CPU only."""
    kv_cache_dtype: Literal["f16", "f32"] = "f16"
    """Engine `llamacpp`: the attention cache's precision. f16 (llama.cpp's default) halves its memory but moves
    reflection-token logprobs by up to ~0.01, enough to flip a near-tie critique; f32 matches the transformers
    engine to ~2e-5."""


class DecodingSettings(BaseModel):
    mode: Literal["adaptive", "always", "never"] = "adaptive"
    form: Literal["long", "short"] = "long"
    threshold: float = 0.2
    threshold_formula: Literal["paper", "released"] = "paper"
    """`released` reproduces the official script's log-ratio; only for parity checks."""
    k: int = 5
    w_rel: float = 1.0
    w_sup: float = 1.0
    w_use: float = 0.5
    use_seqscore: bool = True
    beam_width: int = 2
    max_segments: int = 6
    max_new_tokens: int = 200
    history_token_budget: int = 1024
    """Tokens of earlier chat turns folded into the instruction at most (oldest dropped first); 0 answers every
    question on its own. Self-RAG was trained on single turns, so the transcript is a best effort."""


class UISettings(BaseModel):
    markers: Literal["full", "compact", "plain"] = "full"
    keybindings: dict[str, str] = Field(default_factory=dict)
    """Binding id -> keys, e.g. `toggle_markers = "ctrl+t"`."""
    theme: str = "textual-dark"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SELFRAG_", env_nested_delimiter="__", extra="ignore")

    store: StoreSettings = Field(default_factory=StoreSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    model: ModelSettings = Field(default_factory=ModelSettings)
    decoding: DecodingSettings = Field(default_factory=DecodingSettings)
    ui: UISettings = Field(default_factory=UISettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # First wins: flags (init), then environment, then the TOML file.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file=locations.config_file()))

    @property
    def store_path(self) -> Path:
        return (self.store.path or locations.default_store_path()).expanduser()

    def decode_settings(self):
        from selfrag_tui.selfrag.types import DecodeSettings

        return DecodeSettings(**self.decoding.model_dump())

    def save(self, path: Path | None = None) -> Path:
        """Write every setting to the TOML file (a complete snapshot; prefer `update_settings_file`)."""
        data = self.model_dump(mode="json", exclude_none=True)
        return _write_toml(path or locations.config_file(), data)


def update_settings_file(updates: dict[str, dict[str, Any]], path: Path | None = None) -> Path:
    """Set only the given keys in the settings file, keeping everything else the user wrote there.

    What came from `SELFRAG_*` variables or flags is never written back, so saving one setting from the app does
    not pin the rest. Raises OSError or tomllib.TOMLDecodeError when the file cannot be read or written.
    """
    import tomllib

    target = path or locations.config_file()
    data = tomllib.loads(target.read_text(encoding="utf-8")) if target.exists() else {}
    for section, values in updates.items():
        table = data.setdefault(section, {})
        for key, value in values.items():
            if value is None:
                table.pop(key, None)
            else:
                table[key] = str(value) if isinstance(value, Path) else value
    return _write_toml(target, data)


def _write_toml(target: Path, data: dict[str, Any]) -> Path:
    import tomli_w

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".toml.tmp")
    tmp.write_text(tomli_w.dumps(data), encoding="utf-8")
    tmp.replace(target)  # atomic: a crash never leaves half a config file
    return target


def load_settings(**overrides: Any) -> Settings:
    """Settings with command-line overrides given as nested dicts, e.g. `decoding={"k": 3}`.

    Overrides are merged into what the file and environment give, so a flag changes only its own field.
    """
    base = Settings()
    if not overrides:
        return base
    merged = base.model_dump()
    for section, values in overrides.items():
        merged.setdefault(section, {}).update({k: v for k, v in values.items() if v is not None})
    return Settings.model_validate(merged)
