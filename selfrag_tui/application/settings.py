"""The settings schema and its one merge: defaults < config.toml < `SELFRAG_*` environment < flags < in-app changes.

Each section is one pydantic model with its defaults and limits, defined next to the code that reads it: the
decoder's `DecodingSettings`, the engines' `ModelSettings`, and here the store, ingest and UI sections. The CLI's
flags and the app's settings form are generated from these models (`option_specs`), and every entry point goes
through `resolve`, so a bad value from any of them is rejected the same way, before any work starts, with the
setting's name, the value, where it came from and the allowed range (`SettingsError`).

Environment variables use `__` between section and field: `SELFRAG_DECODING__MODE=always`,
`SELFRAG_MODEL__ENGINE=vllm`, `SELFRAG_STORE__PATH=/data/store`. The file is `config.toml` in the XDG config
folder, or the path in `SELFRAG_CONFIG`.
"""

from __future__ import annotations

import copy
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from ingest.formats import DEFAULT_INCLUDE
from selfrag_tui.application import locations
from selfrag_tui.engines.settings import DEFAULT_MODEL, ModelSettings
from selfrag_tui.selfrag.settings import DecodingSettings

__all__ = [
    "DEFAULT_EMBEDDER", "DEFAULT_MODEL", "DecodingSettings", "IngestSettings", "ModelSettings", "OptionSpec",
    "Settings", "SettingsError", "StoreSettings", "UISettings", "load_settings", "option_specs", "resolve",
    "update_settings_file",
]

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
SECTIONS = ("store", "ingest", "model", "decoding", "ui")
ENV_SOURCE = "SELFRAG_* environment variables"


class StoreSettings(BaseModel):
    """The document store and how it is searched."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    path: Path | None = Field(None, title="Store folder", description="LanceDB folder; default <data dir>/store")
    embedder: str = Field(
        DEFAULT_EMBEDDER, min_length=1, title="Embedding model",
        description="sentence-transformers name or folder; all-MiniLM-L6-v2 loads offline from the bundled package",
    )
    search_mode: Literal["hybrid", "vector", "fts"] = Field(
        "hybrid", title="Search mode", description="hybrid fuses vector and full-text search"
    )
    rerank: bool = Field(
        True, title="Sentence rerank",
        description="re-score the best 20 results by the sentence that matches the question best (the embedding "
                    "model again: up to about a second a search on a laptop CPU, less for passages seen before)",
    )
    embed_batch_size: int = Field(32, ge=1, le=4096, title="Embedding batch", description="passages embedded at once")
    vector_index_threshold: int = Field(
        20_000, ge=1, title="Vector index from",
        description="build an ANN vector index once the store holds this many passages",
    )
    lock_wait_s: float = Field(
        600.0, ge=0.0, le=86_400.0, title="Wait for another writer (s)",
        description="how long an ingest or removal waits while another process writes to the store",
    )


class IngestSettings(BaseModel):
    """Which files are read and how they are cut into passages."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    include: list[str] = Field(
        default_factory=lambda: list(DEFAULT_INCLUDE), title="Include",
        description="file patterns a folder ingest reads (case-insensitive; default: every format it can read)",
    )
    exclude: list[str] = Field(
        default_factory=lambda: [".*", "node_modules", "__pycache__"], title="Exclude",
        description="file or folder patterns a folder ingest skips",
    )
    chunk_words: int = Field(150, ge=20, le=2000, title="Passage words", description="target words per passage")
    chunk_overlap_words: int = Field(30, ge=0, le=1000, title="Overlap words",
                                     description="words repeated between neighbouring passages")
    max_file_mb: float = Field(100.0, gt=0.0, le=100_000.0, title="Max file size (MB)",
                               description="larger files are skipped with a reason")
    pdf_time_budget_s: float | None = Field(
        None, gt=0.0, le=86_400.0, title="PDF time budget (s)",
        description="seconds one PDF may take to read before it fails as too slow; empty: 60 s plus 1 s per page",
    )
    ocr: bool = Field(
        True, title="Read scans (OCR)",
        description="read PDF pages that have no text layer with the built-in OCR (about a second or two a page)",
    )
    password_file: Path | None = Field(
        None, title="Password file",
        description='TOML file mapping PDF paths or patterns to passwords ("bank/*.pdf" = "secret")',
    )

    @model_validator(mode="after")
    def _overlap_below_size(self) -> "IngestSettings":
        if self.chunk_overlap_words >= self.chunk_words:
            raise ValueError(
                f"ingest.chunk_overlap_words ({self.chunk_overlap_words}) must be smaller than ingest.chunk_words "
                f"({self.chunk_words})"
            )
        return self


class UISettings(BaseModel):
    """How the app looks and which keys do what."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    markers: Literal["full", "compact", "plain"] = Field(
        "full", title="Markers", description="how critique markers are shown"
    )
    keybindings: dict[str, str] = Field(default_factory=dict, title="Key bindings",
                                        description='binding id -> keys, e.g. toggle_markers = "ctrl+t"')
    theme: str = Field("textual-dark", min_length=1, title="Theme", description="a Textual theme name")


class Settings(BaseSettings):
    """All settings. Build it with `resolve` (or `load_settings`), which names the source of a bad value."""

    model_config = SettingsConfigDict(
        env_prefix="SELFRAG_", env_nested_delimiter="__", extra="ignore", frozen=True, protected_namespaces=()
    )

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
        # Only what `resolve` hands in: the file and the environment are read there, layer by layer, so that an
        # error can say which layer a bad value came from.
        return (init_settings,)

    @property
    def store_path(self) -> Path:
        return (self.store.path or locations.default_store_path()).expanduser()

    def with_updates(self, updates: Mapping[str, Mapping[str, Any]], *, source: str = "the app") -> "Settings":
        """These settings with `updates` (section -> field -> value) applied and validated."""
        return resolve([(self.model_dump(), "current settings"), (updates, source)], read_file=False, read_env=False)


class SettingsError(ValueError):
    """One or more settings are invalid; the message names each setting, its value, its source and the range."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("Invalid settings:\n" + "\n".join(f"  - {p}" for p in problems))


# -- the merge --------------------------------------------------------------------------------------------------

Layer = tuple[Mapping[str, Any], str]
"""(section -> field -> value, where it came from)."""


def resolve(
    layers: list[Layer] | None = None,
    *,
    read_file: bool = True,
    read_env: bool = True,
    config_path: Path | None = None,
) -> Settings:
    """Merge defaults < config file < environment < `layers` (in order) into validated settings.

    Raises SettingsError naming, for each bad value, the setting, the value, its source and what is allowed.
    """
    stack: list[Layer] = []
    if read_file:
        path = config_path or locations.config_file()
        stack.append((_read_config_file(path), f"the settings file {path}"))
    if read_env:
        stack.append((_read_environment(), ENV_SOURCE))
    stack += list(layers or [])

    merged: dict[str, Any] = {}
    origin: dict[tuple[str, ...], str] = {}
    for data, source in stack:
        for section, values in (data or {}).items():
            if isinstance(values, Mapping) and section in SECTIONS:
                target = merged.setdefault(section, {})
                for name, value in values.items():
                    target[name] = copy.deepcopy(value)
                    origin[(section, name)] = source
            else:
                merged[section] = values
                origin[(section,)] = source
    try:
        return Settings(**merged)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, merged, origin)) from None


def _read_config_file(path: Path) -> dict[str, Any]:
    import tomllib

    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError([f"the settings file {path} is not valid TOML ({exc}); fix or delete it"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError([f"the settings file {path} cannot be read ({exc})"]) from None


def _read_environment() -> dict[str, Any]:
    source = EnvSettingsSource(Settings, env_prefix="SELFRAG_", env_nested_delimiter="__", case_sensitive=False)
    try:
        return source()
    except Exception as exc:  # a JSON list or table that does not parse
        raise SettingsError([f"a SELFRAG_* environment variable cannot be read: {exc}"]) from None


def _describe(exc: ValidationError, merged: dict[str, Any], origin: dict[tuple[str, ...], str]) -> list[str]:
    problems = []
    for error in exc.errors():
        loc = tuple(str(part) for part in error["loc"])
        key = ".".join(loc[:2]) if loc else "settings"
        source = origin.get(loc[:2]) or origin.get(loc[:1]) or "the defaults"
        if source == ENV_SOURCE and len(loc) >= 2:
            source = f"the environment variable SELFRAG_{loc[0].upper()}__{loc[1].upper()}"
        if error["type"] == "extra_forbidden":
            problems.append(f"{key} (from {source}) is not a setting; check its spelling (`selfrag-chat --help` "
                            f"and README list them)")
            continue
        value = merged.get(loc[0], {}).get(loc[1]) if len(loc) >= 2 and isinstance(merged.get(loc[0]), dict) \
            else None
        spec = _field(loc[0], loc[1]) if len(loc) >= 2 else None
        allowed = f"; allowed: {spec.allowed}" if spec and spec.allowed else ""
        message = error["msg"]
        if message.startswith("Value error, "):
            message = message[len("Value error, "):]
        shown = value if isinstance(value, str) and source.startswith(("--", "the environment")) else repr(value)
        problems.append(f"{key} = {shown} (from {source}): {message}{allowed}")
    return problems


# -- the schema as options --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OptionSpec:
    """One setting as a CLI flag or a form field, generated from the schema."""

    section: str
    name: str
    title: str
    description: str
    kind: Literal["choice", "bool", "int", "float", "text", "list", "map", "path"]
    default: Any
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    optional: bool = False

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def allowed(self) -> str:
        if self.choices:
            return " | ".join(self.choices)
        if self.minimum is not None and self.maximum is not None:
            return f"{self.minimum:g} to {self.maximum:g}"
        if self.minimum is not None:
            return f"at least {self.minimum:g}"
        if self.maximum is not None:
            return f"at most {self.maximum:g}"
        return ""

    def parse(self, raw: str) -> Any:
        """A value typed by a person (flag or form) as the schema's type; ValueError names the setting."""
        text = raw.strip()
        if self.optional and text == "":
            return None
        try:
            if self.kind == "int":
                return int(text)
            if self.kind == "float":
                return float(text)
        except ValueError:
            what = "a whole number" if self.kind == "int" else "a number"
            raise ValueError(f"{self.key} must be {what}, not {raw!r}") from None
        if self.kind == "bool":
            if text.lower() in ("1", "true", "yes", "on"):
                return True
            if text.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(f"{self.key} must be true or false, not {raw!r}")
        return text


_SECTION_MODELS: dict[str, type[BaseModel]] = {
    "store": StoreSettings, "ingest": IngestSettings, "model": ModelSettings, "decoding": DecodingSettings,
    "ui": UISettings,
}


def _kind(annotation: Any) -> tuple[str, tuple[str, ...], bool]:
    optional = False
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        annotation = args[0]
        origin = typing.get_origin(annotation)
    if origin is Literal:
        return "choice", tuple(str(a) for a in typing.get_args(annotation)), optional
    if annotation is bool:
        return "bool", (), optional
    if annotation is int:
        return "int", (), optional
    if annotation is float:
        return "float", (), optional
    if annotation is Path:
        return "path", (), optional
    if origin is list:
        return "list", (), optional
    if origin is dict:
        return "map", (), optional
    return "text", (), optional


def _field(section: str, name: str) -> OptionSpec | None:
    model = _SECTION_MODELS.get(section)
    if model is None or name not in model.model_fields:
        return None
    info = model.model_fields[name]
    kind, choices, optional = _kind(info.annotation)
    minimum = maximum = None
    for meta in info.metadata:
        minimum = getattr(meta, "ge", None) if getattr(meta, "ge", None) is not None else minimum
        minimum = getattr(meta, "gt", None) if getattr(meta, "gt", None) is not None else minimum
        maximum = getattr(meta, "le", None) if getattr(meta, "le", None) is not None else maximum
        maximum = getattr(meta, "lt", None) if getattr(meta, "lt", None) is not None else maximum
    default = info.get_default(call_default_factory=True)
    return OptionSpec(section, name, info.title or name, info.description or "", kind, default, choices,
                      minimum, maximum, optional)  # type: ignore[arg-type]


def option_specs(section: str) -> list[OptionSpec]:
    """Every setting of a section, in the schema's order."""
    model = _SECTION_MODELS[section]
    return [spec for name in model.model_fields if (spec := _field(section, name)) is not None]


def option_spec(key: str) -> OptionSpec:
    section, name = key.split(".", 1)
    spec = _field(section, name)
    if spec is None:
        raise KeyError(key)
    return spec


# -- the settings file ------------------------------------------------------------------------------------------


def update_settings_file(updates: Mapping[str, Mapping[str, Any]], path: Path | None = None) -> Path:
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


def load_settings(flags: Mapping[str, Mapping[str, Any]] | None = None, *, source: str = "command-line flags",
                  **sections: Mapping[str, Any]) -> Settings:
    """Settings from the file and environment, with flags on top (section -> field -> value; None = not given)."""
    layer: dict[str, dict[str, Any]] = {}
    for section, values in {**(flags or {}), **sections}.items():
        given = {k: v for k, v in values.items() if v is not None}
        if given:
            layer[section] = given
    return resolve([(layer, source)] if layer else [])
