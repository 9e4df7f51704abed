"""`selfrag-chat doctor`: check the set-up and say how to fix each problem.

Checks GPU/CUDA, which engines are installed and which one `auto` picks, whether the configured model is on this
machine and fits its memory, the document store's health, and where config and data live. Nothing here loads a
model, downloads anything or creates files: a check only looks. No Textual: the CLI prints the findings and the
app can show the same list.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from selfrag_tui.application.settings import Settings

Status = Literal["ok", "info", "warn", "error"]
GIB = 1024**3

BYTES_PER_DTYPE = {"float32": 4, "fp32": 4, "float16": 2, "fp16": 2, "half": 2, "bfloat16": 2, "bf16": 2}
ENGINE_PACKAGES = {"transformers": "transformers", "vllm": "vllm", "llamacpp": "llama_cpp", "openai": None}
ENGINE_EXTRAS = {"vllm": "vllm", "llamacpp": "llamacpp"}


@dataclass
class Finding:
    """One thing doctor found; `fix` says what to do when it is a problem."""

    check: str
    status: Status
    message: str
    fix: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class Report:
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        return not any(f.status == "error" for f in self.findings)

    def by_check(self, check: str) -> list[Finding]:
        return [f for f in self.findings if f.check == check]

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "findings": [asdict(f) for f in self.findings]}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, default=str)

    def to_text(self) -> str:
        marks = {"ok": "ok  ", "info": "info", "warn": "WARN", "error": "FAIL"}
        lines = []
        for f in self.findings:
            lines.append(f"[{marks[f.status]}] {f.check}: {f.message}")
            if f.fix and f.status in ("warn", "error", "info"):
                lines.append(f"       fix: {f.fix}")
        problems = sum(1 for f in self.findings if f.status == "error")
        warnings = sum(1 for f in self.findings if f.status == "warn")
        lines.append(f"{problems} problem(s), {warnings} warning(s)")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------------------
# Machine


def human_bytes(n: float) -> str:
    return f"{n / GIB:.1f} GiB" if n >= 0.1 * GIB else f"{n / 1024**2:.1f} MiB"


def human_count(n: float) -> str:
    return f"{n / 1e9:.2f} B" if n >= 1e8 else f"{n / 1e6:.2f} M" if n >= 1e5 else f"{int(n):,}"


def system_memory() -> tuple[int | None, int | None]:
    """(total, available) RAM in bytes from /proc/meminfo or sysconf; None when unknown."""
    total = available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key == "MemTotal":
                total = int(value.split()[0]) * 1024
            elif key == "MemAvailable":
                available = int(value.split()[0]) * 1024
    except OSError:
        pass
    if total is None:
        try:
            total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            total = None
    return total, available


@dataclass
class GpuInfo:
    name: str
    total_bytes: int
    free_bytes: int | None = None


def cuda_gpus() -> tuple[list[GpuInfo], str | None]:
    """GPUs torch can use, and why there are none (torch CPU build, no driver, ...)."""
    try:
        import torch
    except ImportError as exc:
        return [], f"torch is not importable ({exc})"
    if not torch.cuda.is_available():
        build = getattr(torch.version, "cuda", None)
        reason = "torch is a CPU-only build" if not build else "torch has CUDA but sees no GPU (driver or devices)"
        return [], reason
    gpus = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        free = None
        try:
            free, _ = torch.cuda.mem_get_info(index)
        except RuntimeError:
            pass
        gpus.append(GpuInfo(props.name, int(props.total_memory), free))
    return gpus, None


def nvidia_smi() -> list[str] | None:
    """`nvidia-smi` GPU lines (name, memory, driver) when the tool is present."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return [line.strip() for line in out.stdout.splitlines() if line.strip()] if out.returncode == 0 else None


def check_gpu() -> list[Finding]:
    gpus, reason = cuda_gpus()
    smi = nvidia_smi()
    if gpus:
        names = ", ".join(f"{g.name} ({g.total_bytes / GIB:.0f} GiB)" for g in gpus)
        return [Finding("gpu", "ok", f"CUDA GPU(s): {names}", details={"gpus": [asdict(g) for g in gpus],
                                                                         "nvidia_smi": smi})]
    message = f"No CUDA GPU usable by torch: {reason}."
    if smi:
        message += f" nvidia-smi sees: {'; '.join(smi)}."
        fix = ("Install a CUDA build of torch matching the driver (https://pytorch.org), e.g. via "
               "pip install 'selfrag-chat[vllm]', which brings vLLM's CUDA torch.")
        return [Finding("gpu", "warn", message, fix, {"nvidia_smi": smi})]
    return [Finding(
        "gpu", "info", message,
        "Fine on a laptop: use a GGUF file with engine \"llamacpp\" (fastest on CPU) or the transformers engine; "
        "or point engine \"openai\" at a vLLM server on a GPU machine.",
    )]


# ---------------------------------------------------------------------------------------------------------------
# Engines


def installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


def check_engines(settings: "Settings") -> list[Finding]:
    from selfrag_tui.engines.loader import resolve_engine_name

    present = {name: (installed(pkg) if pkg else True) for name, pkg in ENGINE_PACKAGES.items()}
    gpus, _ = cuda_gpus()
    findings = [Finding(
        "engines", "info",
        "installed: " + ", ".join(name for name, ok in present.items() if ok)
        + (" | not installed: " + ", ".join(name for name, ok in present.items() if not ok)
           if not all(present.values()) else ""),
        details={"installed": present},
    )]
    configured = settings.model.engine
    chosen = resolve_engine_name(settings.model, vllm=present["vllm"], cuda=bool(gpus))
    label = f"'{chosen}'" + (" (picked by auto)" if configured == "auto" else "")
    package = ENGINE_PACKAGES.get(chosen)
    if package and not present[chosen]:
        extra = ENGINE_EXTRAS.get(chosen)
        fix = f"pip install 'selfrag-chat[{extra}]'" if extra else f"pip install {package}"
        findings.append(Finding("engines", "error", f"engine {label} is configured but not installed", fix,
                                {"engine": chosen}))
    elif chosen == "vllm" and not gpus:
        findings.append(Finding(
            "engines", "error", "engine 'vllm' needs an NVIDIA GPU with CUDA, and none is usable here",
            'Set model.engine = "llamacpp" (GGUF file), "transformers", or "openai" with a vLLM server.',
            {"engine": chosen},
        ))
    else:
        findings.append(Finding("engines", "ok", f"engine {label} will be used", details={"engine": chosen}))
    return findings


# ---------------------------------------------------------------------------------------------------------------
# Model


def estimate_parameters(config: dict[str, Any]) -> int | None:
    """Parameter count of a Llama-style decoder from its config.json (embeddings, attention, MLP, norms)."""
    try:
        hidden = int(config["hidden_size"])
        layers = int(config["num_hidden_layers"])
        vocab = int(config["vocab_size"])
        intermediate = int(config.get("intermediate_size") or 4 * hidden)
        heads = int(config.get("num_attention_heads") or 1)
        kv_heads = int(config.get("num_key_value_heads") or heads)
    except (KeyError, TypeError, ValueError):
        return None
    head_dim = int(config.get("head_dim") or hidden // heads)
    attention = hidden * heads * head_dim * 2 + hidden * kv_heads * head_dim * 2
    mlp = 3 * hidden * intermediate
    per_layer = attention + mlp + 2 * hidden
    embeddings = vocab * hidden * (1 if config.get("tie_word_embeddings") else 2)
    return embeddings + layers * per_layer + hidden


def bytes_per_parameter(dtype: str, *, engine: str, on_gpu: bool, config: dict[str, Any]) -> int:
    """What the weights take per parameter for the configured dtype (`auto`: 16-bit on GPU, float32 on CPU)."""
    if dtype in BYTES_PER_DTYPE:
        return BYTES_PER_DTYPE[dtype]
    if engine == "vllm" or on_gpu:
        return BYTES_PER_DTYPE.get(str(config.get("torch_dtype") or config.get("dtype") or "float16"), 2)
    return 4


def locate_model(model: str) -> tuple[Path | None, str]:
    """Where the model's files are on this machine (a folder, a .gguf file, or the Hugging Face cache)."""
    path = Path(model).expanduser()
    if path.exists():
        return path, "path"
    if model.startswith((".", "/", "~")) or model.lower().endswith(".gguf") or os.sep in model.strip("/").split("/", 1)[-1]:
        return None, "missing path"
    try:
        from huggingface_hub import snapshot_download

        folder = snapshot_download(model, local_files_only=True)
        return Path(folder), "hf cache"
    except Exception:  # noqa: BLE001 - not cached, or not a valid repo id
        return None, "not cached"


def check_model(settings: "Settings") -> list[Finding]:
    from selfrag_tui.engines.loader import resolve_engine_name

    m = settings.model
    gpus, _ = cuda_gpus()
    engine = resolve_engine_name(m, vllm=installed("vllm"), cuda=bool(gpus))
    if engine == "openai":
        return check_server(settings)
    location, kind = locate_model(m.model)
    if location is None:
        if kind == "missing path":
            return [Finding("model", "error", f"the model path '{m.model}' does not exist",
                            "Set model.model (or --model) to an existing model folder or .gguf file, or to a hub "
                            "name such as selfrag/selfrag_llama2_7b; 'selfrag-chat --demo' uses the bundled tiny model.",
                            {"model": m.model})]
        return [Finding("model", "error", f"'{m.model}' is not in the local Hugging Face cache",
                        f"Download it once: hf download {m.model} (about 13.5 GB for the 7B model), "
                        "or set model.model to a local folder.", {"model": m.model})]
    findings: list[Finding] = []
    total_ram, available_ram = system_memory()
    if location.is_file():
        if location.suffix.lower() != ".gguf":
            return [Finding("model", "error", f"{location} is a file but not a .gguf model",
                            "Point model.model at a GGUF file or a Hugging Face model folder.")]
        if engine != "llamacpp":
            findings.append(Finding("model", "error", f"{location} is a GGUF file, which only engine 'llamacpp' reads",
                                    'Set model.engine = "llamacpp" (or "auto").'))
        need = location.stat().st_size
        findings.append(Finding("model", "ok", f"GGUF file {location} ({human_bytes(need)})",
                                details={"path": str(location), "weights_bytes": need}))
        findings += _fit(need, engine="llamacpp", gpus=gpus, total_ram=total_ram, available_ram=available_ram,
                         settings=settings)
        findings += check_gguf_vocabulary(location)
        return findings
    config_file = location / "config.json"
    if not config_file.is_file():
        return [Finding("model", "error", f"{location} has no config.json: not a Hugging Face model folder",
                        "Point model.model at the folder holding config.json and the weights.")]
    weights = [p for pattern in ("*.safetensors", "*.bin") for p in location.glob(pattern)]
    if not weights:
        return [Finding("model", "error", f"{location} has no weight files (*.safetensors or *.bin)",
                        f"Re-download the model (hf download {m.model}) or copy its weights there.")]
    config = json.loads(config_file.read_text(encoding="utf-8"))
    params = estimate_parameters(config)
    on_gpu = bool(gpus) and (engine == "vllm" or m.device.startswith("cuda") or m.device == "auto")
    per_param = bytes_per_parameter(m.dtype, engine=engine, on_gpu=on_gpu, config=config)
    need = params * per_param if params else sum(p.stat().st_size for p in weights)
    where = "Hugging Face cache" if kind == "hf cache" else "folder"
    findings.append(Finding(
        "model", "ok",
        f"{m.model} found ({where}: {location}); ~{human_count(params or 0)} parameters, "
        f"~{human_bytes(need)} of weights at {per_param} bytes each",
        details={"path": str(location), "parameters": params, "weights_bytes": need, "bytes_per_parameter": per_param},
    ))
    findings += _fit(need, engine=engine, gpus=gpus if on_gpu else [], total_ram=total_ram,
                     available_ram=available_ram, settings=settings)
    return findings


def check_gguf_vocabulary(path: Path) -> list[Finding]:
    """Read only the GGUF's vocabulary (fast) and check the 16 Self-RAG tokens are single tokens in it."""
    if not installed("llama_cpp"):
        return []
    import llama_cpp

    from selfrag_tui.reflection import ADDED_TOKENS

    try:
        llama = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    except Exception as exc:  # noqa: BLE001 - llama.cpp raises ValueError/RuntimeError on broken files
        return [Finding("model", "error", f"llama.cpp cannot read {path} ({exc})",
                        "Re-download the file or re-convert it with convert_hf_to_gguf.py.")]
    missing = []
    for token in ADDED_TOKENS:
        ids = llama.tokenize(token.encode("utf-8"), add_bos=False, special=True)
        if len(ids) != 1 or llama.detokenize(ids, special=True).decode("utf-8", "replace") != token:
            missing.append(token)
    llama.close()
    if missing:
        return [Finding("model", "error",
                        f"{path.name} lacks {len(missing)} of the 16 Self-RAG tokens ({', '.join(missing[:3])}...): "
                        "it is not a Self-RAG model",
                        "Use a GGUF converted from selfrag/selfrag_llama2_7b (its added tokens must be in the vocabulary).")]
    return [Finding("model", "ok", f"{path.name} has all 16 Self-RAG tokens as single tokens")]


def _fit(need: int, *, engine: str, gpus: list[GpuInfo], total_ram: int | None, available_ram: int | None,
         settings: "Settings") -> list[Finding]:
    """Whether the weights fit GPU memory (vLLM's share of it) or RAM, with some room for activations."""
    m = settings.model
    if gpus and engine in ("vllm", "transformers"):
        share = m.gpu_memory_utilization if engine == "vllm" else 1.0
        usable = sum(g.total_bytes for g in gpus[: max(1, m.tensor_parallel_size)]) * share
        if need * 1.1 > usable:
            return [Finding("memory", "error",
                            f"the weights need ~{need / GIB:.1f} GiB but the GPU memory for them is ~{usable / GIB:.1f} GiB",
                            "Use more GPUs (model.tensor_parallel_size), raise model.gpu_memory_utilization, a "
                            "smaller dtype (float16), or a quantised GGUF with engine \"llamacpp\".")]
        return [Finding("memory", "ok", f"fits GPU memory (~{human_bytes(need)} of ~{human_bytes(usable)})")]
    if total_ram is None:
        return [Finding("memory", "warn", "could not read this machine's memory size")]
    if need * 1.2 > total_ram:
        return [Finding("memory", "error",
                        f"the weights need ~{need / GIB:.1f} GiB but this machine has {total_ram / GIB:.1f} GiB of RAM",
                        "Use a quantised GGUF (q8_0 ~7 GB, q4_k_m ~4 GB for 7B) with engine \"llamacpp\", "
                        "model.dtype = \"bfloat16\", or a server (engine \"openai\").")]
    if available_ram is not None and need * 1.2 > available_ram:
        return [Finding("memory", "warn",
                        f"the weights need ~{need / GIB:.1f} GiB; {available_ram / GIB:.1f} GiB of RAM is free now",
                        "Close other programs before loading the model.")]
    return [Finding("memory", "ok", f"fits RAM (~{human_bytes(need)} of {human_bytes(total_ram)})")]


def check_server(settings: "Settings") -> list[Finding]:
    """For engine `openai`: is the server there and does it serve the model (a quick GET /models)."""
    import urllib.error
    import urllib.request

    from selfrag_tui.engines.openai_engine import normalise_base_url

    url = normalise_base_url(settings.model.base_url)
    request = urllib.request.Request(url + "/models")
    if settings.model.api_key:
        request.add_header("Authorization", f"Bearer {settings.model.api_key}")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            data = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return [Finding("model", "error", f"the server at {url} did not answer /models ({exc})",
                        "Start it (vllm serve selfrag/selfrag_llama2_7b) or fix model.base_url; it ends in /v1.")]
    served = [str(e.get("id")) for e in data.get("data", []) if isinstance(e, dict)]
    if settings.model.model in served or any(Path(s).name == Path(settings.model.model).name for s in served):
        return [Finding("model", "ok", f"the server at {url} serves {settings.model.model}")]
    return [Finding("model", "error", f"the server at {url} serves {served}, not '{settings.model.model}'",
                    "Set model.model to the served name, or start the server with the Self-RAG model.")]


# ---------------------------------------------------------------------------------------------------------------
# Store and paths


def check_store(settings: "Settings") -> list[Finding]:
    path = settings.store_path
    if not path.exists() or not any(path.iterdir()):
        return [Finding("store", "info", f"no document store at {path} yet",
                        "Add documents with: selfrag-chat ingest PATH... (or try selfrag-chat --demo)",
                        {"path": str(path)})]
    try:
        from ingest.errors import StoreError
        from ingest.store import DocumentStore
    except ImportError as exc:
        return [Finding("store", "warn", f"the store code is not importable ({exc})")]
    try:
        store = DocumentStore.open(path, embedder=settings.store.embedder,
                                   vector_index_threshold=settings.store.vector_index_threshold)
    except StoreError as exc:
        return [Finding("store", "error", str(exc).split(". ")[0], str(exc), {"path": str(path)})]
    except Exception as exc:  # noqa: BLE001 - a damaged LanceDB folder raises library errors
        return [Finding("store", "error", f"the store at {path} could not be opened ({exc})",
                        "Move the folder away and ingest again, or set store.path to another folder.")]
    stats = store.stats()
    tables = sorted(store._table_names()) if hasattr(store, "_table_names") else []
    chunks = int(stats.get("chunks") or 0)
    has_index = False
    try:
        table = store._chunks()
        has_index = bool(table is not None and DocumentStore._has_vector_index(table))
    except Exception:  # noqa: BLE001 - the index state is informative only
        pass
    threshold = settings.store.vector_index_threshold
    index_state = ("vector index built" if has_index else
                   f"brute-force vector search (an index is built past {threshold:,} chunks)")
    details = {**stats, "tables": tables, "vector_index": has_index}
    findings = [Finding(
        "store", "ok",
        f"{path}: {stats['documents']} documents, {chunks} chunks, tables {', '.join(tables) or '-'}, "
        f"embedder {stats['embedder']} ({stats.get('dimension') or '?'}-d), {index_state}",
        details=details,
    )]
    if stats.get("failed"):
        findings.append(Finding("store", "warn", f"{stats['failed']} document(s) failed to ingest",
                                "See why with: selfrag-chat docs; fix or remove the files and ingest again."))
    if chunks > threshold and not has_index:
        findings.append(Finding("store", "warn", f"{chunks} chunks and no vector index: searches are slow",
                                "Ingest again (it builds the index) or run selfrag-chat reindex."))
    return findings


def check_paths(settings: "Settings") -> list[Finding]:
    from selfrag_tui.application import locations

    config = locations.config_file()
    data = locations.data_dir()
    findings = [Finding("paths", "info" if not config.exists() else "ok",
                        f"config file: {config}" + ("" if config.exists() else " (not created; defaults in use)"),
                        None if config.exists() else "Optional: the app writes it when you change settings.",
                        {"config": str(config)})]
    writable_parent = data if data.exists() else next((p for p in data.parents if p.exists()), None)
    if writable_parent is None or not os.access(writable_parent, os.W_OK):
        findings.append(Finding("paths", "error", f"data folder {data} is not writable",
                                "Set SELFRAG_DATA_DIR to a writable folder.", {"data": str(data)}))
    else:
        findings.append(Finding("paths", "ok", f"data folder: {data}", details={
            "data": str(data), "store": str(settings.store_path), "history": str(locations.history_db_path())}))
    return findings


def run_checks(settings: "Settings") -> Report:
    findings: list[Finding] = []
    for check in (check_paths, check_gpu, check_engines, check_model, check_store):
        try:
            findings += check(settings) if check is not check_gpu else check()
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
            findings.append(Finding(check.__name__.removeprefix("check_"), "error", f"the check failed: {exc}"))
    return Report(findings)
