"""Model setup: from install to the first answer of the real 7B model, with nothing downloaded unasked.

The Self-RAG model comes in variants: the original 16-bit Hugging Face weights (a GPU, with vLLM or transformers)
and GGUF files for llama.cpp (CPU laptops: q8_0, q5_k_m, q4_k_m). This module says which exist, what each needs
at the configured context length and whether it fits this machine now (`list_variants`, `recommend`), downloads
one on request with progress, resume and a free-space check (`download`), checks a model is a usable Self-RAG
model (`verify`: the 16 reflection tokens exist, each is one token, and llama.cpp returns them as text), points
the settings at a folder, GGUF file or server the user already has (`use`), removes a downloaded variant from the
Hugging Face cache (`remove`), and converts a checkpoint to GGUF (`convert`).

The CLI (`selfrag-chat model ...`) and the app's no-model dialog call these functions; none of them prints.
Downloads are the only network access of the program, and they happen only here, inside `offline.downloads_allowed`.

Why downloads are written by hand on top of huggingface_hub: its `hf_hub_download` deletes a partial file when a
download is interrupted (a unique temporary name per attempt), so a 4-13 GB download cut off by Ctrl-C or a
dropped connection would start again from zero. Here each file is fetched into `blobs/<etag>.incomplete` of the
hub cache with HTTP range requests (huggingface_hub gives the URL, the file's metadata, the HTTP session and the
headers), and once complete `hf_hub_download` itself links it into the cache's snapshot, exactly as if it had
downloaded it. Other tools (`hf`, transformers, `hf cache`) see an ordinary cache.
"""

from __future__ import annotations

import fnmatch
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

from selfrag_tui.application import locations
from selfrag_tui.application.offline import downloads_allowed
from selfrag_tui.application.settings import update_settings_file
from selfrag_tui.engines import memory
from selfrag_tui.engines.memory import GiB, gib

if TYPE_CHECKING:
    from selfrag_tui.application.settings import Settings

GB = 10**9
HUB = "https://huggingface.co"
# Kept free on the disk after a download: a full disk breaks the store and the settings file too.
DISK_MARGIN = 256 * 2**20
TOKENIZER_FILES = (
    "config.json", "generation_config.json", "tokenizer.model", "tokenizer.json", "tokenizer_config.json",
    "special_tokens_map.json", "added_tokens.json",
)


class ModelSetupError(RuntimeError):
    """A setup step failed; the message says what happened and what to do. Nothing half-done is left in use."""


class HubUnreachable(ModelSetupError):
    """The Hugging Face hub could not be reached; the message names the files to copy by hand and where."""


class DownloadCancelled(ModelSetupError):
    """The download was stopped (cancel event or Ctrl-C); the partial files are kept and the next run resumes."""


# -- the variants ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One downloadable form of selfrag/selfrag_llama2_7b."""

    name: str
    kind: Literal["hf", "gguf"]
    repo_id: str
    download_bytes: int
    """Published size of the weights (what the download costs)."""
    weight_bytes: int
    """Weights in memory: 16-bit for the Hugging Face weights, the file size for a GGUF."""
    summary: str
    file_pattern: str = ""
    """GGUF: the file in the repository (case-insensitive glob)."""
    revision: str = "main"

    @property
    def url(self) -> str:
        return f"{HUB}/{self.repo_id}"


VARIANTS: tuple[Variant, ...] = (
    Variant("hf", "hf", "selfrag/selfrag_llama2_7b", int(13.5 * GB), int(13.5 * GB),
            "the original 16-bit weights: exact Self-RAG scores; a GPU with 16 GB or more (vLLM or transformers)"),
    Variant("gguf-q8_0", "gguf", "devilteo911/selfrag_llama2_7b-q8_0", int(7.16 * GB), int(7.16 * GB),
            "8-bit GGUF for llama.cpp: scores close to the original; CPU with 10 GB of free RAM",
            file_pattern="*q8_0*.gguf"),
    Variant("gguf-q5_k_m", "gguf", "m4r1/selfrag_llama2_7b-GGUF", int(4.78 * GB), int(4.78 * GB),
            "5-bit GGUF for llama.cpp: smaller, critiques near a tie may flip; CPU with 8 GB of free RAM",
            file_pattern="*q5_k_m*.gguf"),
    Variant("gguf-q4_k_m", "gguf", "m4r1/selfrag_llama2_7b-GGUF", int(4.08 * GB), int(4.08 * GB),
            "4-bit GGUF for llama.cpp: the smallest; critiques near a tie flip more often; CPU with 7 GB free",
            file_pattern="*q4_k_m*.gguf"),
)
ALSO_PUBLISHED = (
    "QuantFactory/selfrag_llama2_7b-GGUF (Q2_K ... Q8_0)",
    "kun432/selfrag_llama2_7b-Q4_K_M-GGUF",
)


def variant(name: str) -> Variant:
    for v in VARIANTS:
        if v.name == name.strip().lower():
            return v
    raise ModelSetupError(f"unknown model variant '{name}': choose one of {', '.join(v.name for v in VARIANTS)}")


# -- this machine ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Machine:
    """Memory and engines of this machine, measured when `measure_machine` ran."""

    ram_available: int | None
    ram_total: int | None
    gpus: tuple[memory.GpuMemory, ...] = ()
    vllm: bool = False
    llamacpp: bool = False

    @property
    def best_gpu(self) -> memory.GpuMemory | None:
        return max(self.gpus, key=lambda g: g.free) if self.gpus else None


def measure_machine() -> Machine:
    import importlib.util

    def installed(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            return False

    return Machine(
        ram_available=memory.available_ram(),
        ram_total=memory.total_ram(),
        gpus=tuple(memory.gpu_memory()),
        vllm=installed("vllm"),
        llamacpp=installed("llama_cpp"),
    )


# -- what each variant needs and where it is ------------------------------------------------------------------


def hub_cache_dir() -> Path:
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _repo_folder(repo_id: str, cache_dir: Path) -> Path:
    return cache_dir / ("models--" + repo_id.replace("/", "--"))


def _snapshot(repo_id: str, cache_dir: Path, revision: str = "main") -> Path | None:
    """The cached snapshot of `repo_id` at `revision` (refs/<revision>), else the newest snapshot, else None."""
    folder = _repo_folder(repo_id, cache_dir)
    ref = folder / "refs" / revision
    if ref.is_file():
        snapshot = folder / "snapshots" / ref.read_text(encoding="utf-8").strip()
        if snapshot.is_dir():
            return snapshot
    snapshots = sorted((folder / "snapshots").glob("*"), key=lambda p: p.stat().st_mtime, reverse=True) \
        if (folder / "snapshots").is_dir() else []
    return snapshots[0] if snapshots else None


def _matches(name: str, pattern: str) -> bool:
    return fnmatch.fnmatch(name.lower(), pattern.lower())


def local_path(v: Variant, cache_dir: Path | None = None) -> Path | None:
    """Where a downloaded variant is: the snapshot folder (hf) or the .gguf file; None when not (fully) there."""
    snapshot = _snapshot(v.repo_id, cache_dir or hub_cache_dir(), v.revision)
    if snapshot is None:
        return None
    if v.kind == "gguf":
        files = sorted(p for p in snapshot.rglob("*") if p.is_file() and _matches(p.name, v.file_pattern))
        return files[0] if files else None
    has_weights = any(snapshot.glob("*.safetensors")) or any(snapshot.glob("*.bin"))
    return snapshot if (snapshot / "config.json").is_file() and has_weights else None


@dataclass(frozen=True)
class VariantStatus:
    """A variant on this machine: what it needs at the configured context, where it would run, whether it fits."""

    variant: Variant
    engine: str
    runs_on: Literal["gpu", "cpu"]
    needed: int
    """Bytes: weights (with headroom) + key/value cache at `context` tokens + runtime overhead."""
    available: int | None
    """Free bytes now on the device it would run on (GPU memory or RAM); None when unknown."""
    context: int
    path: Path | None
    """Where it is when downloaded."""
    note: str = ""

    @property
    def fits(self) -> bool | None:
        return None if self.available is None else self.needed <= self.available

    @property
    def downloaded(self) -> bool:
        return self.path is not None


def _status(v: Variant, machine: Machine, context: int, kv_cache_dtype: str, cache_dir: Path) -> VariantStatus:
    path = local_path(v, cache_dir)
    if v.kind == "gguf":
        kv_bytes = 4 if kv_cache_dtype == "f32" else 2
        weights = path.stat().st_size if path is not None else v.weight_bytes  # llama.cpp maps the whole file
        needed = memory.needed_bytes(weights, memory.LLAMA2_7B, context, kv_bytes)
        note = "" if machine.llamacpp else "needs llama-cpp-python: pip install 'selfrag-chat[llamacpp]'"
        return VariantStatus(v, "llamacpp", "cpu", needed, machine.ram_available, context, path, note)
    gpu = machine.best_gpu
    if gpu is not None:
        needed = memory.needed_bytes(v.weight_bytes, memory.LLAMA2_7B, context, 2)
        engine = "vllm" if machine.vllm else "transformers"
        note = "" if machine.vllm else "vLLM is faster on a GPU: pip install 'selfrag-chat[vllm]'"
        return VariantStatus(v, engine, "gpu", needed, gpu.free, context, path, note)
    # On the CPU the transformers engine loads float32 (twice the 16-bit size); bfloat16 halves it, slowly.
    needed = memory.needed_bytes(v.weight_bytes * 2, memory.LLAMA2_7B, context, 4)
    half = memory.needed_bytes(v.weight_bytes, memory.LLAMA2_7B, context, 2)
    note = f"no GPU: float32 on the CPU; --dtype bfloat16 needs {gib(half)} but is slow; a GGUF suits a CPU"
    return VariantStatus(v, "transformers", "cpu", needed, machine.ram_available, context, path, note)


def list_variants(settings: "Settings", machine: Machine | None = None,
                  cache_dir: Path | None = None) -> list[VariantStatus]:
    """Every variant with its memory need at `settings.model.max_model_len` and whether it fits now."""
    machine = machine or measure_machine()
    cache = cache_dir or hub_cache_dir()
    m = settings.model
    return [_status(v, machine, m.max_model_len, m.kv_cache_dtype, cache) for v in VARIANTS]


@dataclass(frozen=True)
class Recommendation:
    status: VariantStatus | None
    reason: str


def recommend(settings: "Settings", machine: Machine | None = None,
              cache_dir: Path | None = None) -> Recommendation:
    """The variant to use on this machine: the 16-bit weights on a GPU that holds them, else the largest GGUF
    that fits in free RAM (q8_0, then q5_k_m, then q4_k_m). `status` is None when nothing fits."""
    machine = machine or measure_machine()
    statuses = {s.variant.name: s for s in list_variants(settings, machine, cache_dir)}
    hf = statuses["hf"]
    if hf.runs_on == "gpu" and hf.fits:
        extra = f"; {hf.note}" if hf.note else ""
        return Recommendation(hf, f"your GPU has {gib(hf.available)} free and the 16-bit weights need "
                                  f"{gib(hf.needed)} at {hf.context} tokens: exact scores, the fastest{extra}")
    for name in ("gguf-q8_0", "gguf-q5_k_m", "gguf-q4_k_m"):
        s = statuses[name]
        if s.fits or (s.fits is None and name == "gguf-q4_k_m"):
            why = {
                "gguf-q8_0": "8-bit keeps the critique scores close to the original",
                "gguf-q5_k_m": "q8_0 does not fit; 5-bit is the next best",
                "gguf-q4_k_m": "the only variant that fits; 4-bit can flip critiques that are near a tie",
            }[name]
            free = f"{gib(s.available)} of RAM is free" if s.available is not None else "free RAM is unknown"
            extra = f"; {s.note}" if s.note else ""
            return Recommendation(s, f"{free} and it needs {gib(s.needed)} at {s.context} tokens: {why}{extra}")
    smallest = statuses["gguf-q4_k_m"]
    return Recommendation(None, (
        f"nothing fits: {gib(smallest.available)} of RAM is free and the smallest variant (gguf-q4_k_m) needs "
        f"{gib(smallest.needed)} at {smallest.context} tokens. Close other programs, use a shorter context "
        "(--max-model-len 2048), or use a model server on another machine: selfrag-chat model use "
        "http://HOST:8000/v1 --served-name selfrag/selfrag_llama2_7b"
    ))


# -- verification ---------------------------------------------------------------------------------------------


@dataclass
class Verification:
    """What `verify` found. `ok` when nothing is in `problems`; `retypable` when the only problem is that the
    reflection tokens of a GGUF are typed as control tokens (`retype` fixes that in place)."""

    target: str
    kind: Literal["hf", "gguf", "server"]
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    retypable: bool = False
    token_ids: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> None:
        if self.problems:
            raise ModelSetupError(f"{self.target} cannot be used: " + "; ".join(self.problems))


class _TokenizerView:
    """A Hugging Face tokenizer seen through the two engine methods `ReflectionVocab.from_engine` calls."""

    def __init__(self, tokenizer: Any, name: str) -> None:
        self._tokenizer = tokenizer
        self._vocab = dict(tokenizer.get_vocab())
        self.model_name = name

    def token_id(self, token: str) -> int | None:
        return self._vocab.get(token)

    def encode(self, text: str, *, add_bos: bool = True) -> list[int]:
        return list(self._tokenizer.encode(text, add_special_tokens=False))


def _verify_tokenizer(folder: Path, result: Verification) -> None:
    from selfrag_tui.reflection import ADDED_TOKENS, MissingReflectionTokens, ReflectionVocab

    try:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    except Exception as exc:  # any failure to build the tokenizer is the finding
        result.problems.append(f"its tokenizer cannot be loaded ({type(exc).__name__}: {exc})")
        return
    view = _TokenizerView(tokenizer, str(folder))
    missing = [t for t in ADDED_TOKENS if view.token_id(t) is None]
    if missing:
        result.problems.append(
            f"its tokenizer lacks {len(missing)} of the 16 Self-RAG tokens ({', '.join(missing)}): it is not a "
            "Self-RAG checkpoint"
        )
        return
    split = [t for t in ADDED_TOKENS if view.encode(t) != [view.token_id(t)]]
    if split:
        result.problems.append(f"its tokenizer splits {', '.join(split)} into several tokens")
        return
    try:
        vocab = ReflectionVocab.from_engine(view)
    except MissingReflectionTokens as exc:
        result.problems.append(str(exc))
        return
    # The checkpoint was trained with the 16 tokens at consecutive ids in this order (32000..32015 in the 7B);
    # a tokenizer rebuilt from another file (e.g. special_tokens_map.json alone) numbers them differently, and
    # the model would then read [Relevant] where it wrote [Irrelevant].
    ids = [vocab.ids[t] for t in ADDED_TOKENS]
    if ids != list(range(ids[0], ids[0] + len(ids))):
        result.problems.append(
            "its tokenizer numbers the Self-RAG tokens differently from the Self-RAG checkpoint (expected "
            f"consecutive ids from {ADDED_TOKENS[0]} to {ADDED_TOKENS[-1]}, got {ids[:3]}...): added_tokens.json "
            "or tokenizer_config.json is missing or from another model"
        )
        return
    try:
        vocab_size = int(json.loads((folder / "config.json").read_text(encoding="utf-8")).get("vocab_size") or 0)
    except (OSError, ValueError, AttributeError):
        vocab_size = 0
    if vocab_size and max(ids) >= vocab_size:
        result.problems.append(
            f"its tokenizer puts Self-RAG tokens at ids up to {max(ids)}, beyond the model's vocabulary of "
            f"{vocab_size}: the tokenizer and the weights come from different models"
        )
        return
    result.token_ids = dict(vocab.ids)


def _verify_folder(folder: Path) -> Verification:
    result = Verification(str(folder), "hf")
    if not (folder / "config.json").is_file():
        result.problems.append(f"{folder} has no config.json, so it is not a Hugging Face model folder")
        return result
    weights = list(folder.glob("*.safetensors")) + list(folder.glob("*.bin"))
    if not weights:
        ggufs = sorted(folder.glob("*.gguf"))
        hint = f" (it holds {ggufs[0].name}: use that file)" if ggufs else "; the download may be incomplete"
        result.problems.append(f"{folder} has no weights (*.safetensors or *.bin){hint}")
    broken = [p.name for p in weights if not p.exists()]  # a hub-cache link whose blob is gone
    if broken:
        result.problems.append(f"weight files {', '.join(broken)} point at missing data; download again")
    _verify_tokenizer(folder, result)
    return result


def _verify_gguf(path: Path) -> Verification:
    from selfrag_tui.engines.base import EngineError
    from selfrag_tui.engines.gguf_convert import check_gguf_tokens

    result = Verification(str(path), "gguf")
    if not path.is_file():
        result.problems.append(f"the GGUF file {path} does not exist")
        return result
    try:
        checks = check_gguf_tokens(path)
    except EngineError as exc:
        result.problems.append(str(exc))
        return result
    absent = [c.token for c in checks if len(c.ids) != 1]
    if absent:
        result.problems.append(
            f"llama.cpp does not read {len(absent)} of the 15 reflection tokens as single tokens "
            f"({', '.join(absent[:4])}{', ...' if len(absent) > 4 else ''}): the file was converted without "
            "Self-RAG's added tokens; convert the checkpoint again with `selfrag-chat model convert`"
        )
        return result
    result.token_ids = {c.token: c.ids[0] for c in checks}
    hidden = [c.token for c in checks if c.control or c.rendered != c.token]
    if hidden:
        result.problems.append(
            f"its reflection tokens ({', '.join(hidden[:3])}{', ...' if len(hidden) > 3 else ''}) are typed as "
            "control tokens, which llama.cpp returns as empty text, so answers would lose them; "
            f"`selfrag-chat model verify {path} --retype` re-types them as text tokens (a few bytes of the header)"
        )
        result.retypable = True
    return result


def _verify_server(base_url: str, served_name: str, tokenizer: str | None, timeout_s: float = 10.0) -> Verification:
    import httpx

    result = Verification(base_url, "server")
    url = base_url.rstrip("/") + "/models"
    try:
        response = httpx.get(url, timeout=timeout_s)
        response.raise_for_status()
        served = [str(m.get("id")) for m in response.json().get("data", [])]
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        result.problems.append(f"the server at {base_url} does not answer {url} ({type(exc).__name__}: {exc})")
        return result
    if served_name not in served:
        result.problems.append(
            f"the server serves {', '.join(served) or 'no models'}, not '{served_name}'; pass --served-name"
        )
    source = tokenizer or served_name
    folder = Path(source).expanduser()
    if not folder.is_dir():
        cached = _snapshot(source, hub_cache_dir()) if source.count("/") == 1 else None
        if cached is None:
            result.problems.append(
                f"prompts are built with a local tokenizer, and '{source}' is neither a folder nor in the Hugging "
                "Face cache; pass --tokenizer FOLDER (the model's tokenizer files)"
            )
            return result
        folder = cached
    _verify_tokenizer(folder, result)
    return result


def verify(target: str | Path, *, served_name: str | None = None, tokenizer: str | None = None) -> Verification:
    """Check a folder, a .gguf file, a downloaded variant's name or a server URL holds a usable Self-RAG model.

    Loads only the tokenizer (or the GGUF's vocabulary), never the weights: seconds, not minutes.
    """
    text = str(target)
    if text.startswith(("http://", "https://")):
        return _verify_server(text, served_name or "selfrag/selfrag_llama2_7b", tokenizer)
    if text in {v.name for v in VARIANTS}:
        v = variant(text)
        path = local_path(v)
        if path is None:
            return Verification(text, v.kind, [f"{text} is not downloaded: selfrag-chat model download {text}"])
        return verify(path)
    path = Path(text).expanduser()
    if path.suffix.lower() == ".gguf":
        return _verify_gguf(path)
    if path.is_dir():
        return _verify_folder(path)
    if text.count("/") == 1 and not path.exists():
        snapshot = _snapshot(text, hub_cache_dir())
        if snapshot is not None:
            return _verify_folder(snapshot)
        how = ("`selfrag-chat model download hf`, or a GGUF for a CPU (`selfrag-chat model recommend` says which)"
               if text == variant("hf").repo_id else f"`hf download {text}`, then `selfrag-chat model use FOLDER`")
        return Verification(text, "hf", [f"{text} is not downloaded (not in the Hugging Face cache {hub_cache_dir()}); "
                                         f"get it with {how}"])
    if not path.exists():
        return Verification(text, "hf", [f"{path} does not exist"])
    return Verification(text, "hf", [f"{text} is not a folder, a .gguf file, a downloaded variant or a URL"])


def retype(path: str | Path) -> int:
    """Re-type the reflection tokens of a GGUF file as text tokens (in place); how many were changed."""
    from selfrag_tui.engines.gguf_convert import retype_reflection_tokens

    return retype_reflection_tokens(Path(path).expanduser())


# -- use ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UseResult:
    """The settings `use` wrote (section -> key -> value; None = key removed) and where."""

    updates: dict[str, dict[str, Any]]
    verification: Verification
    saved_to: Path | None


def _tokenizer_next_to(gguf: Path, token_ids: dict[str, int]) -> Path | None:
    """A tokenizer folder shipped next to a GGUF (as m4r1's repository does) that agrees on the token ids."""
    folder = gguf.parent
    if not any((folder / name).is_file() for name in ("tokenizer.model", "tokenizer.json")):
        return None
    check = Verification(str(folder), "hf")
    _verify_tokenizer(folder, check)
    if check.ok and all(check.token_ids.get(t) == i for t, i in token_ids.items()):
        return folder
    return None


def use(
    target: str | Path,
    *,
    served_name: str | None = None,
    tokenizer: str | None = None,
    retype_tokens: bool = False,
    save: bool = True,
    config_path: Path | None = None,
) -> UseResult:
    """Verify `target` (a model folder, a .gguf file, a downloaded variant or a server URL), then point the
    settings at it: only the `[model]` keys it needs are written. Raises ModelSetupError when it is not usable.

    A GGUF whose reflection tokens are typed as control tokens is re-typed first when `retype_tokens` is set.
    """
    text = str(target)
    check = verify(text, served_name=served_name, tokenizer=tokenizer)
    if not check.ok and check.retypable and retype_tokens:
        retype(check.target)
        check = verify(check.target)
    check.raise_for_problems()
    if check.kind == "server":
        updates: dict[str, dict[str, Any]] = {"model": {
            "engine": "openai", "base_url": text, "model": served_name or "selfrag/selfrag_llama2_7b",
            "tokenizer": tokenizer,
        }}
    elif check.kind == "gguf":
        path = Path(check.target).expanduser().absolute()  # a hub-cache link keeps its .gguf name
        side = _tokenizer_next_to(Path(check.target), check.token_ids)
        updates = {"model": {"engine": "llamacpp", "model": str(path),
                             "tokenizer": str(side) if side else None}}
    else:
        updates = {"model": {"engine": "auto", "model": str(Path(check.target).expanduser()), "tokenizer": None}}
    saved = update_settings_file(updates, config_path) if save else None
    return UseResult(updates, check, saved)


# -- download -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DownloadProgress:
    """Progress of one download, for a progress bar: this file and the whole variant, in bytes."""

    filename: str
    file_done: int
    file_total: int
    done: int
    total: int


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    """The snapshot folder (hf) or the .gguf file, inside the Hugging Face cache."""
    verification: Verification
    use: UseResult | None
    retyped: int = 0
    note: str = ""
    """Set when the hub could not be reached and the copy already downloaded was used."""


@dataclass(frozen=True)
class _RemoteFile:
    name: str
    size: int
    etag: str
    commit: str
    url: str
    location: str


def _unreachable(v: Variant, cause: BaseException | str, cache: Path) -> HubUnreachable:
    what = (f"the file matching {v.file_pattern} from {v.url}/tree/{v.revision}" if v.kind == "gguf"
            else f"every file of {v.url}/tree/{v.revision} (config, tokenizer and weight files) into one folder")
    return HubUnreachable(
        f"cannot reach the Hugging Face hub to download {v.name} ({cause}). On a machine with internet access, "
        f"fetch {what}, copy it here, then run `selfrag-chat model use PATH` (PATH = the .gguf file or the folder). "
        f"Downloads resume into {_repo_folder(v.repo_id, cache)} when the hub is reachable again."
    )


def _hub_errors() -> tuple[type[BaseException], ...]:
    import httpx2
    from huggingface_hub import errors

    return (httpx2.HTTPError, errors.HfHubHTTPError, errors.LocalEntryNotFoundError, errors.OfflineModeIsEnabled,
            ConnectionError, TimeoutError)


def _plan(v: Variant, endpoint: str | None) -> tuple[str, list[str]]:
    """(commit, files to fetch) from the repository's file list."""
    from huggingface_hub import HfApi

    info = HfApi(endpoint=endpoint).model_info(v.repo_id, revision=v.revision, files_metadata=True)
    names = [s.rfilename for s in info.siblings or []]
    commit = str(info.sha)
    if v.kind == "gguf":
        ggufs = sorted(n for n in names if _matches(Path(n).name, v.file_pattern))
        if not ggufs:
            raise ModelSetupError(
                f"{v.url} holds no file matching {v.file_pattern} (it has: {', '.join(names[:8])}); "
                "it may have been renamed: download the GGUF by hand and run `selfrag-chat model use FILE`"
            )
        return commit, [ggufs[0]] + [n for n in names if n in TOKENIZER_FILES]
    weights = [n for n in names if n.endswith(".safetensors")] or [n for n in names if n.endswith(".bin")]
    index = [n for n in names if n.endswith(".index.json")
             and (n.startswith("model.safetensors") == weights[0].endswith(".safetensors"))] if weights else []
    if not weights:
        raise ModelSetupError(f"{v.url} lists no weight files (*.safetensors or *.bin)")
    return commit, [n for n in names if n in TOKENIZER_FILES] + index + weights


def _remote_file(v: Variant, name: str, commit: str, endpoint: str | None) -> _RemoteFile:
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    url = hf_hub_url(v.repo_id, name, revision=commit, endpoint=endpoint)
    meta = get_hf_file_metadata(url, endpoint=endpoint)
    if meta.etag is None or meta.size is None:
        raise ModelSetupError(f"the hub sent no size or ETag for {name} of {v.repo_id}; try again later")
    # As hf_hub_download does: a file in Xet storage is fetched from its hub address (which redirects to a
    # plain-HTTP bridge), any other from the address the HEAD request was redirected to.
    location = url if meta.xet_file_data is not None else str(meta.location or url)
    return _RemoteFile(name, int(meta.size), str(meta.etag), str(meta.commit_hash or commit), url, location)


FETCH_ATTEMPTS = 5  # a dropped connection is resumed from where it broke, this many times per file
PROGRESS_STEP = 1 << 20  # progress is reported once per MiB


def _fetch(remote: _RemoteFile, blob: Path, on_bytes: Callable[[int], None], cancel: threading.Event | None,
           endpoint: str | None) -> None:
    """Fetch `remote` into `blob` through `<blob>.incomplete`, resuming what an earlier run left there and
    resuming again, with a pause, when the connection drops."""
    import time
    from urllib.parse import urlparse

    import httpx2
    from huggingface_hub.utils import build_hf_headers, get_session

    partial = blob.with_name(blob.name + ".incomplete")
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.touch()
    if partial.stat().st_size > remote.size:  # not this file: start again
        partial.write_bytes(b"")
    base_headers = build_hf_headers()
    if urlparse(remote.location).netloc != urlparse(endpoint or HUB).netloc:
        base_headers.pop("authorization", None)  # a signed CDN address must not get the token
    on_bytes(partial.stat().st_size)
    for attempt in range(FETCH_ATTEMPTS):
        have = partial.stat().st_size
        if have >= remote.size:
            break
        headers = dict(base_headers, Range=f"bytes={have}-") if have else base_headers
        try:
            with get_session().stream("GET", remote.location, headers=headers, follow_redirects=True,
                                      timeout=30.0) as response:
                response.raise_for_status()
                if have and response.status_code != 206:  # the server ignored the range: start again
                    have = 0
                    on_bytes(0)
                reported = have
                with partial.open("ab" if have else "wb") as out:
                    for chunk in response.iter_bytes():  # as it arrives: a dropped connection loses nothing
                        if cancel is not None and cancel.is_set():
                            raise DownloadCancelled("stopped")
                        out.write(chunk)
                        have += len(chunk)
                        if have - reported >= PROGRESS_STEP or have >= remote.size:
                            on_bytes(have)
                            reported = have
        except httpx2.TransportError:
            if attempt == FETCH_ATTEMPTS - 1:
                raise
            time.sleep(min(2.0**attempt, 10.0))
    if partial.stat().st_size != remote.size:
        raise ModelSetupError(
            f"{remote.name} arrived with {partial.stat().st_size} of {remote.size} bytes; run the download again "
            "to fetch the rest"
        )
    partial.replace(blob)


def download(
    name: str,
    *,
    on_progress: Callable[[DownloadProgress], None] | None = None,
    cancel: threading.Event | None = None,
    use_it: bool = True,
    config_path: Path | None = None,
    cache_dir: Path | None = None,
    endpoint: str | None = None,
    free_disk: Callable[[Path], int] | None = None,
) -> DownloadResult:
    """Download a variant into the Hugging Face cache, verify it, and (with `use_it`) point the settings at it.

    The free disk space is checked before the first byte. A `cancel` event (or Ctrl-C) stops it between chunks,
    keeping what arrived; running it again resumes. A GGUF whose reflection tokens are typed as control tokens
    is re-typed as text tokens (reported in `retyped`). Raises HubUnreachable, DownloadCancelled (also on
    KeyboardInterrupt, after which it re-raises KeyboardInterrupt) or ModelSetupError.
    """
    from huggingface_hub import hf_hub_download

    v = variant(name)
    # HF_ENDPOINT (a hub mirror) is read now, not when huggingface_hub was imported.
    endpoint = endpoint or os.environ.get("HF_ENDPOINT") or None
    cache = Path(cache_dir or hub_cache_dir())
    folder = _repo_folder(v.repo_id, cache)
    note = ""
    with downloads_allowed():
        try:
            commit, names = _plan(v, endpoint)
            remotes = [_remote_file(v, n, commit, endpoint) for n in names]
        except ModelSetupError:
            raise
        except _hub_errors() as exc:
            if local_path(v, cache) is None:
                raise _unreachable(v, exc, cache) from None
            note = f"the hub could not be reached ({exc}); the copy already downloaded is used"
            remotes = []

        def present(r: _RemoteFile) -> int:
            blob = folder / "blobs" / r.etag
            if blob.exists():
                return r.size
            partial = blob.with_name(blob.name + ".incomplete")
            return min(partial.stat().st_size, r.size) if partial.exists() else 0

        total = sum(r.size for r in remotes)
        missing = total - sum(present(r) for r in remotes)
        free = (free_disk or memory.free_disk)(cache)
        if missing + DISK_MARGIN > free:
            raise ModelSetupError(
                f"not enough free disk space for {v.name}: {gib(missing)} more are needed in {cache}, "
                f"{gib(free)} is free (and {gib(DISK_MARGIN)} is kept free). Free some space, or put the Hugging "
                "Face cache on a larger disk (HF_HUB_CACHE=/path) and run the download again"
            )
        done_before = 0
        try:
            for r in remotes:
                blob = folder / "blobs" / r.etag
                base = done_before

                def report(n: int, r: _RemoteFile = r, base: int = base) -> None:
                    if on_progress is not None:
                        on_progress(DownloadProgress(r.name, n, r.size, base + n, total))

                if blob.exists():
                    report(r.size)
                else:
                    _fetch(r, blob, report, cancel, endpoint)
                hf_hub_download(v.repo_id, r.name, revision=r.commit, cache_dir=str(cache), endpoint=endpoint)
                done_before += r.size
            if remotes:  # the branch name points at the commit fetched, as huggingface_hub leaves it
                (folder / "refs").mkdir(parents=True, exist_ok=True)
                (folder / "refs" / v.revision).write_text(commit, encoding="utf-8")
        except (DownloadCancelled, KeyboardInterrupt) as exc:
            stopped = DownloadCancelled(
                f"download of {v.name} stopped; what arrived is kept in {folder / 'blobs'} and "
                f"`selfrag-chat model download {v.name}` resumes it"
            )
            if isinstance(exc, KeyboardInterrupt):
                raise KeyboardInterrupt(str(stopped)) from None
            raise stopped from None
        except ModelSetupError:
            raise
        except _hub_errors() as exc:
            raise _unreachable(v, exc, cache) from None
    path = local_path(v, cache)
    if path is None:
        raise ModelSetupError(f"{v.name} was downloaded into {folder} but its files are not complete there")
    check = verify(path)
    retyped = 0
    if not check.ok and check.retypable:
        retyped = retype(path)
        check = verify(path)
    if not check.ok:
        raise ModelSetupError(f"{v.name} was downloaded to {path} but cannot be used: " + "; ".join(check.problems))
    used = use(path, config_path=config_path) if use_it else None
    return DownloadResult(path, check, used, retyped, note)


# -- remove ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Removal:
    removed: list[Path]
    freed: int
    settings_still_point_here: bool


def remove(name: str, *, settings: "Settings | None" = None, cache_dir: Path | None = None) -> Removal:
    """Delete a downloaded variant from the Hugging Face cache (huggingface_hub's cache API for whole
    repositories; a GGUF that shares its repository with another variant is deleted on its own)."""
    from huggingface_hub import scan_cache_dir

    v = variant(name)
    cache = Path(cache_dir or hub_cache_dir())
    folder = _repo_folder(v.repo_id, cache)
    path = local_path(v, cache)
    partials = sorted((folder / "blobs").glob("*.incomplete")) if (folder / "blobs").is_dir() else []
    if path is None and not partials:
        raise ModelSetupError(f"{v.name} is not downloaded (nothing of {v.repo_id} in {cache})")
    pointing = False
    if settings is not None and path is not None:
        configured = Path(settings.model.model).expanduser()
        pointing = configured == path or settings.model.model == v.repo_id or path in configured.parents
    siblings = [o for o in VARIANTS if o.repo_id == v.repo_id and o.name != v.name and local_path(o, cache)]
    removed: list[Path] = []
    freed = 0
    if v.kind == "gguf" and siblings and path is not None:
        blob = path.resolve()
        freed = blob.stat().st_size
        path.unlink()
        still_used = any(p.is_symlink() and p.resolve() == blob for p in (folder / "snapshots").rglob("*"))
        if not still_used:
            blob.unlink(missing_ok=True)
        removed.append(path)
    else:
        info = scan_cache_dir(cache)
        repos = [r for r in info.repos if r.repo_id == v.repo_id and r.repo_type == "model"]
        if repos:
            strategy = info.delete_revisions(*[rev.commit_hash for r in repos for rev in r.revisions])
            freed = strategy.expected_freed_size
            strategy.execute()
            removed.append(folder)
        for partial in partials:  # interrupted downloads of this variant
            if partial.exists():
                freed += partial.stat().st_size
                partial.unlink()
                removed.append(partial)
    return Removal(removed, freed, pointing)


# -- convert --------------------------------------------------------------------------------------------------


def default_gguf_path(outtype: str) -> Path:
    return locations.data_dir() / "models" / f"selfrag_llama2_7b-{outtype}.gguf"


def convert(
    source: str | Path,
    *,
    outtype: str = "q8_0",
    outfile: Path | None = None,
    on_progress: Callable[[str, int, int], None] | None = None,
    use_it: bool = False,
    config_path: Path | None = None,
    free_disk: Callable[[Path], int] | None = None,
) -> tuple[Path, Verification, UseResult | None]:
    """Convert a Self-RAG checkpoint (a folder, or the downloaded `hf` variant / a hub name in the cache) to a
    GGUF file of `outtype`, verify it and, with `use_it`, point the settings at it. Raises ModelSetupError."""
    from selfrag_tui.engines.base import EngineError
    from selfrag_tui.engines.gguf_convert import convert as write_gguf

    text = str(source)
    folder = Path(text).expanduser()
    if text == "hf" or (not folder.exists() and text.count("/") == 1):
        repo = variant("hf").repo_id if text == "hf" else text
        cached = _snapshot(repo, hub_cache_dir())
        if cached is None:
            raise ModelSetupError(f"{repo} is not downloaded: selfrag-chat model download hf")
        folder = cached
    check = _verify_folder(folder)
    check.raise_for_problems()
    target = Path(outfile).expanduser() if outfile else default_gguf_path(outtype)
    try:
        written = write_gguf(folder, target, outtype=outtype, on_progress=on_progress, free_disk=free_disk)
    except EngineError as exc:  # the converter's ConversionError: already says what to do
        raise ModelSetupError(str(exc)) from exc
    result = _verify_gguf(written)
    result.raise_for_problems()
    used = use(written, config_path=config_path) if use_it else None
    return written, result, used


def configured_model_ready(settings: "Settings") -> Verification:
    """Whether the configured generator is set up (for the app's no-model dialog): a quick `verify` of it."""
    m = settings.model
    if m.engine == "openai":
        return verify(m.base_url, served_name=m.model, tokenizer=m.tokenizer)
    return verify(m.model)


def describe_bytes(n: int | None) -> str:
    """Sizes as the CLI and the dialog show them (GB for downloads, like the hub's pages)."""
    return "?" if n is None else f"{n / GB:.2f} GB"


__all__ = [
    "ALSO_PUBLISHED", "DownloadCancelled", "DownloadProgress", "DownloadResult", "GiB", "HubUnreachable", "Machine",
    "ModelSetupError", "Recommendation", "Removal", "UseResult", "VARIANTS", "Variant", "VariantStatus",
    "Verification", "configured_model_ready", "convert", "default_gguf_path", "describe_bytes", "download",
    "hub_cache_dir", "list_variants", "local_path", "measure_machine", "recommend", "remove", "retype", "use",
    "variant", "verify",
]

