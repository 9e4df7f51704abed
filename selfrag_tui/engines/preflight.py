"""One pre-flight check per engine: is its package there, is the model there and of the right kind, does it fit
memory, does its vocabulary hold the Self-RAG tokens, is the server reachable and serving it.

Each check returns structured findings. The loader runs the check before loading and raises on the first error
(`raise_for_errors`); `selfrag-chat doctor` prints every finding. The checks call the engines' own rules (the
transformers engine's model location, device, dtype and memory checks; the llama.cpp engine's vocabulary check;
the server engine's model listing; the vLLM engine's request-shape check), so a load and `doctor` cannot disagree.

`for_load=True` leaves out what the engine's load does itself anyway with the same code (reading a GGUF's
vocabulary, the server's model list, vLLM's request check), so nothing runs twice. Nothing here downloads, and
heavy packages are imported inside functions.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

from selfrag_tui.engines.base import EngineError

if TYPE_CHECKING:
    from selfrag_tui.engines.settings import ModelSettings

Status = Literal["ok", "info", "warn", "error"]
ENGINE_PACKAGES = {"transformers": "transformers", "vllm": "vllm", "llamacpp": "llama_cpp", "openai": "httpx"}
ENGINE_EXTRAS = {"vllm": "vllm", "llamacpp": "llamacpp"}
# A GGUF file's weights are memory-mapped whole, with room for the compute buffers.
GGUF_HEADROOM = 1.15


@dataclass
class Finding:
    """One thing a check found; `fix` says what to do when it is a problem."""

    check: str
    status: Status
    message: str
    fix: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.status == "error"]


def raise_for_errors(findings: list[Finding]) -> None:
    """Raise the first error as an EngineError with its fix (what the load path does)."""
    problems = errors(findings)
    if problems:
        first = problems[0]
        if "error" in first.details:  # an engine's own message, split for doctor: raised as the engine words it
            raise EngineError(first.details["error"])
        raise EngineError(f"{first.message}. {first.fix}" if first.fix else first.message)


def engine_error(check: str, exc: Exception, **details: Any) -> Finding:
    """A finding from an engine's EngineError: problem and fix for doctor, the whole message kept for the load."""
    problem, fix = split_message(str(exc))
    return Finding(check, "error", problem, fix, {**details, "error": str(exc)})


def split_message(text: str) -> tuple[str, str | None]:
    """An engine's 'problem; what to do' (or 'problem. What to do') message as (problem, fix)."""
    for separator in ("; ", ". "):
        head, found, tail = text.partition(separator)
        if found and tail:
            return head.rstrip("."), tail
    return text.rstrip("."), None


def installed(package: str) -> bool:
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def package_finding(engine: str) -> Finding:
    package = ENGINE_PACKAGES[engine]
    if installed(package):
        return Finding("engines", "ok", f"engine '{engine}': {package} is installed", details={"engine": engine})
    extra = ENGINE_EXTRAS.get(engine)
    fix = f"pip install 'selfrag-chat[{extra}]'" if extra else f"pip install {package}"
    return Finding("engines", "error", f"engine '{engine}' needs the Python package {package}, which is not installed",
                   fix, {"engine": engine})


def preflight(model_settings: "ModelSettings", *, engine: str, for_load: bool = False) -> list[Finding]:
    """The findings of `engine`'s pre-flight check for these settings."""
    checks: dict[str, Callable[..., list[Finding]]] = {
        "transformers": transformers_preflight,
        "vllm": vllm_preflight,
        "llamacpp": llamacpp_preflight,
        "openai": openai_preflight,
    }
    if engine not in checks:
        return [Finding("engines", "error", f"unknown engine '{engine}'",
                        f"set model.engine (--engine) to one of auto, {', '.join(checks)}")]
    return checks[engine](model_settings, for_load=for_load)


# ---------------------------------------------------------------------------------------------------------------
# transformers


def transformers_preflight(m: "ModelSettings", *, for_load: bool = False) -> list[Finding]:
    """The transformers engine's own load checks, in its order: model folder, device, dtype, tokenizer packages,
    memory for the weights and the key/value cache."""
    findings = [package_finding("transformers")]
    if findings[0].status == "error":
        return findings
    import torch

    from selfrag_tui.engines import memory
    from selfrag_tui.engines import transformers_engine as te

    try:
        folder = te._resolve_model(m.model)
    except EngineError as exc:
        return findings + [model_error(exc, m.model)]
    findings.append(Finding("model", "ok", f"{m.model} found: {folder}", details={"path": str(folder)}))
    try:
        device = te._pick_device(torch, m.device)
        dtype = te._pick_dtype(torch, m.dtype, device)
        te._check_sentencepiece_support(folder)
    except EngineError as exc:
        return findings + [engine_error("model", exc, device=m.device, dtype=m.dtype)]
    needed, weights, kv = te.memory_needed(folder, dtype, m.max_model_len)
    available = te._available_memory(torch, device)
    details = {"device": device, "dtype": dtype, "needed_bytes": needed, "weights_bytes": weights,
               "kv_cache_bytes": kv, "available_bytes": available}
    try:
        te._check_memory(torch, folder, m.model, device, dtype, m.max_model_len)
    except EngineError as exc:
        return findings + [engine_error("memory", exc, **details)]
    if available is None:
        findings.append(Finding("memory", "warn", f"could not tell the free memory on {device}; the model needs "
                                f"about {memory.gib(needed)}", details=details))
    else:
        findings.append(Finding("memory", "ok", f"fits {device} in {dtype}: needs about {memory.gib(needed)} "
                                f"(weights {memory.gib(weights)} + key/value cache {memory.gib(kv)} for "
                                f"{m.max_model_len} tokens), {memory.gib(available)} free", details=details))
    return findings


def model_error(exc: EngineError, model: str) -> Finding:
    return engine_error("model", exc, model=model)


# ---------------------------------------------------------------------------------------------------------------
# vLLM


def vllm_preflight(m: "ModelSettings", *, for_load: bool = False) -> list[Finding]:
    """vLLM installed, a CUDA GPU, the model on this machine, its weights and cache within vLLM's share of GPU
    memory, and whether this vLLM takes the exact reflection-logprob request."""
    from selfrag_tui.engines import memory
    from selfrag_tui.engines import transformers_engine as te
    from selfrag_tui.engines.vllm_engine import NO_CUDA_MESSAGE

    findings = [package_finding("vllm")]
    gpus = memory.gpu_memory()
    if not gpus:
        findings.append(engine_error("engines", EngineError(NO_CUDA_MESSAGE.format(reason=cuda_absent_reason())),
                                     engine="vllm"))
    try:
        folder = te._resolve_model(m.model)
    except EngineError as exc:
        return findings + [model_error(exc, m.model)]
    findings.append(Finding("model", "ok", f"{m.model} found: {folder}", details={"path": str(folder)}))
    config = te._read_config(folder)
    dtype = m.dtype if m.dtype != "auto" else stored_16_bit_dtype(config)
    needed, weights, kv = te.memory_needed(folder, dtype, m.max_model_len)
    if gpus:
        used = gpus[: m.tensor_parallel_size]
        usable = int(sum(g.total for g in used) * m.gpu_memory_utilization)
        details = {"needed_bytes": needed, "usable_bytes": usable, "gpus": [g.name for g in used], "dtype": dtype}
        if len(used) < m.tensor_parallel_size:
            findings.append(Finding(
                "memory", "error", f"model.tensor_parallel_size is {m.tensor_parallel_size} but this machine has "
                f"{len(gpus)} GPU(s)", f"set --tensor-parallel-size {len(gpus)} or fewer", details))
        elif needed > usable:
            findings.append(Finding(
                "memory", "error", f"the model needs about {memory.gib(needed)} in {dtype} (weights "
                f"{memory.gib(weights)} + key/value cache {memory.gib(kv)} for {m.max_model_len} tokens), more than "
                f"vLLM's share of GPU memory ({memory.gib(usable)} at --gpu-memory-utilization "
                f"{m.gpu_memory_utilization})",
                "raise --gpu-memory-utilization, split the model over more GPUs (--tensor-parallel-size), shorten the "
                "context (--max-model-len 2048), or use a quantised GGUF with --engine llamacpp", details))
        else:
            findings.append(Finding("memory", "ok", f"fits vLLM's share of GPU memory: about {memory.gib(needed)} "
                                    f"of {memory.gib(usable)}", details=details))
    if not for_load and installed("vllm"):
        findings.append(vllm_logprob_finding(folder, config, m.max_logprobs))
    return findings


def stored_16_bit_dtype(config: dict[str, Any]) -> str:
    """vLLM's `auto` dtype: the checkpoint's own 16-bit type (float32 checkpoints run in float16)."""
    stored = str(config.get("dtype") or config.get("torch_dtype") or "float16").removeprefix("torch.")
    return "bfloat16" if stored == "bfloat16" else "float16"


def vllm_logprob_finding(folder: Path, config: dict[str, Any], max_logprobs: int) -> Finding:
    """Whether this vLLM takes the exact reflection-logprob request (vLLM's own validation), or falls back."""
    import vllm

    from selfrag_tui.engines.tokenizer import load_tokenizer
    from selfrag_tui.engines.vllm_engine import plan_logprob_request, rejected_request_shape
    from selfrag_tui.reflection import REFLECTION_TOKENS

    tokenizer = load_tokenizer(str(folder))
    ids = [tokenizer.convert_tokens_to_ids(token) for token in REFLECTION_TOKENS]
    ids = [int(i) for i in ids if i is not None and i != tokenizer.unk_token_id]
    vocab_size = int(config.get("vocab_size") or len(tokenizer))
    reason = rejected_request_shape(vllm.SamplingParams, score_ids=ids, vocab_size=vocab_size,
                                    max_logprobs=max_logprobs)
    version = getattr(vllm, "__version__", "?")
    if reason is None:
        return Finding("logprobs", "ok", f"vLLM {version} returns the exact logprobs of the {len(ids)} reflection "
                       "tokens (logprob_token_ids)", details={"logprob_source": "exact", "vllm": version})
    top_k = plan_logprob_request(ids, exact_supported=False, max_logprobs=max_logprobs).logprobs
    return Finding(
        "logprobs", "warn",
        f"vLLM {version} refuses the exact reflection-logprob request ({reason}); the engine falls back to the "
        f"top {top_k} logprobs, and reflection tokens outside them count as -100",
        "use vLLM 0.32 (pip install 'selfrag-chat[vllm]'), or --engine transformers for exact scores",
        {"logprob_source": "topk", "vllm": version, "reason": reason},
    )


def cuda_absent_reason() -> str:
    try:
        import torch
    except ImportError as exc:
        return f"torch is not importable: {exc}"
    if not getattr(torch.version, "cuda", None):
        return "torch is a CPU-only build"
    return "torch has CUDA but sees no GPU (driver or devices)"


# ---------------------------------------------------------------------------------------------------------------
# llama.cpp


def llamacpp_preflight(m: "ModelSettings", *, for_load: bool = False) -> list[Finding]:
    """llama-cpp-python installed, the GGUF file there, its weights within RAM, and (not at load, where the engine
    checks it itself) the Self-RAG tokens in its vocabulary."""
    from selfrag_tui.engines import memory

    findings = [package_finding("llamacpp")]
    path = Path(m.model).expanduser()
    if path.suffix.lower() != ".gguf":
        return findings + [Finding(
            "model", "error", f"engine 'llamacpp' needs a .gguf file, but model.model is '{m.model}'",
            "set --model to a GGUF file of the Self-RAG model (`selfrag-chat model download gguf-q4_k_m`), or use "
            "--engine transformers for a Hugging Face folder or hub name", {"model": m.model})]
    if not path.is_file():
        return findings + [Finding(
            "model", "error", f"the GGUF file {path} does not exist",
            "set model.model (--model) to an existing GGUF file, or get one with `selfrag-chat model download "
            "gguf-q4_k_m`; `selfrag-chat --demo` uses the bundled tiny model", {"model": m.model})]
    size = path.stat().st_size
    findings.append(Finding("model", "ok", f"GGUF file {path} ({memory.gib(size)})",
                            details={"path": str(path), "weights_bytes": size}))
    needed = int(size * GGUF_HEADROOM) + memory.RUNTIME_OVERHEAD
    total, available = memory.total_ram(), memory.available_ram()
    details = {"needed_bytes": needed, "total_bytes": total, "available_bytes": available}
    if total is not None and needed > total:
        findings.append(Finding(
            "memory", "error", f"the GGUF file needs about {memory.gib(needed)} but this machine has "
            f"{memory.gib(total)} of RAM", "use a smaller quantisation (q4_k_m is about 4.1 GB for the 7B model; "
            "`selfrag-chat model list` shows what fits) or a server (--engine openai)", details))
    elif available is not None and needed > available:
        findings.append(Finding("memory", "warn", f"the GGUF file needs about {memory.gib(needed)}; "
                                f"{memory.gib(available)} of RAM is free now",
                                "close other programs before loading the model", details))
    else:
        findings.append(Finding("memory", "ok", f"fits RAM: about {memory.gib(needed)} of "
                                f"{memory.gib(available if available is not None else total)} free", details=details))
    if not for_load and findings[0].status == "ok":
        findings.append(gguf_vocabulary_finding(path))
    return findings


def gguf_vocabulary_finding(path: Path) -> Finding:
    """The llama.cpp engine's own vocabulary check on the GGUF's vocabulary alone (no weights loaded)."""
    import llama_cpp

    from selfrag_tui.engines.llamacpp_engine import LlamaCppEngine
    from selfrag_tui.reflection import ADDED_TOKENS

    try:
        llama = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    except Exception as exc:  # noqa: BLE001 - llama.cpp raises ValueError/RuntimeError on broken files
        return Finding("model", "error", f"llama.cpp cannot read {path} ({exc})",
                       "re-download the file or re-convert it with convert_hf_to_gguf.py")
    engine = LlamaCppEngine(llama, model_path=path)
    try:
        engine.check_reflection_vocab()
    except EngineError as exc:
        return Finding("model", "error", f"{path.name} is not a Self-RAG model: {exc}",
                       "use a GGUF converted from selfrag/selfrag_llama2_7b (`selfrag-chat model download "
                       "gguf-q4_k_m`): its 16 added tokens must be in the vocabulary")
    finally:
        engine.close()
    return Finding("model", "ok", f"{path.name} has all {len(ADDED_TOKENS)} Self-RAG tokens as single tokens")


# ---------------------------------------------------------------------------------------------------------------
# OpenAI-compatible server


def openai_preflight(m: "ModelSettings", *, for_load: bool = False) -> list[Finding]:
    """The tokenizer available locally, the server reachable and serving the model (its GET /models)."""
    from selfrag_tui.engines.http import ServerClient
    from selfrag_tui.engines.openai_engine import SERVE_HINT, match_served_model, served_models
    from selfrag_tui.engines.tokenizer import load_tokenizer

    findings = [package_finding("openai")]
    if for_load:
        return findings  # connect() loads the tokenizer and lists the served models itself, with the same code
    source = m.tokenizer or m.model
    try:
        load_tokenizer(source)
        findings.append(Finding("model", "ok", f"tokenizer '{source}' is available locally"))
    except EngineError as exc:
        findings.append(Finding("model", "error", f"the tokenizer '{source}' is not available locally",
                                split_message(str(exc))[1], {"tokenizer": source}))
    client = ServerClient(m.base_url, api_key=m.api_key, timeout_s=min(m.request_timeout_s, 5.0), retries=0)
    try:
        served = served_models(client)
    except EngineError as exc:
        return findings + [Finding("server", "error", f"the server at {client.base_url} did not answer /models",
                                   str(exc), {"base_url": client.base_url})]
    finally:
        client.close()
    match = match_served_model(m.model, served)
    if match is None:
        return findings + [Finding("server", "error", f"the server at {client.base_url} serves {served or 'no models'}, "
                                   f"not '{m.model}'", SERVE_HINT, {"served": served})]
    return findings + [Finding("server", "ok", f"the server at {client.base_url} serves {match}",
                               details={"served": served})]
