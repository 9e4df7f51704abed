"""`selfrag-chat doctor`: check the set-up and say how to fix each problem.

Checks GPU/CUDA, which engines are installed and which one `auto` picks, the chosen engine's pre-flight check (the
one its load runs: package, model on this machine, memory, vocabulary, server), the embedding backend, the document
store's health, and where config and data live. Nothing here loads a model, downloads anything or creates files: a
check only looks. No Textual: the CLI prints the findings and the app can show the same list.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from selfrag_tui.engines.preflight import ENGINE_PACKAGES, Finding, Status, installed, preflight

if TYPE_CHECKING:
    from selfrag_tui.application.settings import Settings

__all__ = ["Finding", "Report", "Status", "run_checks"]


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
    from selfrag_tui.engines.memory import gpu_memory
    from selfrag_tui.engines.preflight import cuda_absent_reason

    gpus = gpu_memory()
    smi = nvidia_smi()
    if gpus:
        names = ", ".join(f"{g.name} ({g.total / 2**30:.0f} GiB)" for g in gpus)
        return [Finding("gpu", "ok", f"CUDA GPU(s): {names}", details={"gpus": [asdict(g) for g in gpus],
                                                                         "nvidia_smi": smi})]
    message = f"No CUDA GPU usable by torch: {cuda_absent_reason()}."
    if smi:
        message += f" nvidia-smi sees: {'; '.join(smi)}."
        fix = ("Install a CUDA build of torch matching the driver (https://pytorch.org), e.g. via "
               "pip install 'selfrag-chat[vllm]', which brings vLLM's CUDA torch.")
        return [Finding("gpu", "warn", message, fix, {"nvidia_smi": smi})]
    return [Finding(
        "gpu", "info", message,
        "Fine on a laptop: use a GGUF file with --engine llamacpp (fastest on CPU) or --engine transformers; "
        "or point --engine openai at a vLLM server on a GPU machine (--base-url).",
    )]


# ---------------------------------------------------------------------------------------------------------------
# Engines and model


def chosen_engine(settings: "Settings") -> str:
    from selfrag_tui.engines.loader import resolve_engine_name

    return resolve_engine_name(settings.model)


def check_engines(settings: "Settings") -> list[Finding]:
    present = {name: installed(package) for name, package in ENGINE_PACKAGES.items()}
    chosen = chosen_engine(settings)
    label = f"'{chosen}'" + (" (picked by auto)" if settings.model.engine == "auto" else "")
    return [
        Finding("engines", "info",
                "installed: " + ", ".join(name for name, ok in present.items() if ok)
                + (" | not installed: " + ", ".join(name for name, ok in present.items() if not ok)
                   if not all(present.values()) else ""),
                details={"installed": present}),
        Finding("engines", "info", f"engine {label} will be used", details={"engine": chosen}),
    ] + (check_llamacpp_build() if present.get("llamacpp") else [])


LLAMACPP_REBUILD = ("CMAKE_ARGS=\"-DCMAKE_C_FLAGS='-mno-amx-tile -mno-amx-int8' "
                    "-DCMAKE_CXX_FLAGS='-mno-amx-tile -mno-amx-int8'\" pip install --force-reinstall --no-deps "
                    "--no-cache-dir 'llama-cpp-python==0.3.36'")


def check_llamacpp_build() -> list[Finding]:
    """llama.cpp built with its AMX kernels (a native build on a recent Xeon) crashes the process on 8-bit GGUF
    files (llama-cpp-python 0.3.36, in `ggml_backend_amx_mul_mat`): say so before it does."""
    try:
        import llama_cpp

        features = llama_cpp.llama_print_system_info().decode(errors="replace")
    except Exception as exc:  # a broken build is the engine check's to report
        return [Finding("engines", "warn", f"llama-cpp-python is installed but does not load: {exc}",
                        "Reinstall it: pip install --force-reinstall 'llama-cpp-python==0.3.36'")]
    if "AMX_INT8 = 1" in features:
        return [Finding(
            "engines", "warn",
            "llama-cpp-python was built with llama.cpp's AMX kernels, which crash on 8-bit (Q8_0) GGUF files",
            f"Rebuild it without them (the AVX-512 kernels stay): {LLAMACPP_REBUILD}",
            {"llama_cpp_features": features.strip()})]
    return []


def check_model(settings: "Settings") -> list[Finding]:
    """The chosen engine's pre-flight check: what its load would find wrong, with the fixes."""
    return preflight(settings.model, engine=chosen_engine(settings))


# ---------------------------------------------------------------------------------------------------------------
# Store and paths


def check_store(settings: "Settings") -> list[Finding]:
    path = settings.store_path
    if not path.exists() or not any(path.iterdir()):
        return [Finding("store", "info", f"no document store at {path} yet",
                        "Add documents with: selfrag-chat ingest PATH... (or try selfrag-chat --demo)",
                        {"path": str(path)})]
    from ingest.errors import StoreError
    from ingest.store import DocumentStore

    try:
        store = DocumentStore.open(path, embedder=settings.store.embedder,
                                   vector_index_threshold=settings.store.vector_index_threshold)
        health = store.health()
    except StoreError as exc:
        return [Finding("store", "error", str(exc).split(". ")[0], str(exc), {"path": str(path)})]
    except Exception as exc:  # noqa: BLE001 - a damaged LanceDB folder raises library errors
        return [Finding("store", "error", f"the store at {path} could not be opened ({exc})",
                        "Move the folder away and ingest again, or set store.path (--store) to another folder.")]
    if health.vector_index:
        index_state = "vector index built"
    else:
        index_state = f"brute-force vector search (an index is built past {health.vector_index_threshold:,} chunks)"
    embedder = health.embedder_stored or health.embedder_configured
    findings = [Finding(
        "store", "ok",
        f"{path}: {health.documents} documents, {health.chunks} chunks, tables {', '.join(health.tables) or '-'}, "
        f"embedder {embedder} ({health.dimension or '?'}-d), {index_state}"
        + (f"; being written by {health.locked_by}" if health.locked_by else ""),
        details=asdict(health),
    )]
    findings += [Finding("store", "warn", problem.problem, problem.fix) for problem in health.problems]
    return findings


def check_embedder(settings: "Settings") -> list[Finding]:
    """Which embedding backend ingest and search will run, without loading it: ONNX Runtime int8 when it is
    installed (exported once from the bundled weights, offline), else PyTorch, which gives the same passages
    more slowly."""
    import importlib.util
    from pathlib import Path

    from ingest.embedding import DEFAULT_BACKEND, onnx_export_path, resolve_model_location
    from ingest.errors import EmbedderLoadError

    name = settings.store.embedder
    try:
        location = Path(resolve_model_location(name))
    except EmbedderLoadError as exc:
        return [Finding("embedder", "error", f"embedding model {name}: {exc}", str(exc))]
    if location.is_absolute() and not location.exists():
        return [Finding("embedder", "error", f"embedding model folder {location} does not exist",
                        "Set store.embedder to a sentence-transformers model folder or name, or remove the setting "
                        "to use the bundled all-MiniLM-L6-v2.", {"path": str(location)})]
    if importlib.util.find_spec("onnxruntime") is None:
        return [Finding("embedder", "warn", f"{name}: PyTorch backend (ONNX Runtime is not installed)",
                        "pip install onnxruntime: ingest embeds about twice as fast with the int8 ONNX backend",
                        {"backend": "torch"})]
    if not location.is_dir():  # a hub model name: the export reads a folder of weights, so PyTorch runs it
        return [Finding("embedder", "info", f"{name}: PyTorch backend (the ONNX export needs a model folder)",
                        "Set store.embedder to the model's folder to embed with the faster int8 ONNX backend.",
                        {"backend": "torch"})]
    try:
        export = onnx_export_path(location, quantized=DEFAULT_BACKEND == "onnx-int8")
    except OSError as exc:
        return [Finding("embedder", "warn", f"{name}: the ONNX export cannot be made ({exc}); PyTorch is used",
                        None, {"backend": "torch"})]
    exported = export.exists()
    state = f"cached at {export}" if exported else f"exported to {export.parent} on first use (a few seconds)"
    return [Finding("embedder", "ok", f"{name}: {DEFAULT_BACKEND} backend, {state}",
                    details={"backend": DEFAULT_BACKEND, "export": str(export), "exported": exported})]


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
    for check in (check_paths, check_gpu, check_engines, check_model, check_embedder, check_store):
        try:
            findings += check() if check is check_gpu else check(settings)
        except Exception as exc:  # noqa: BLE001 - one broken check must not hide the others
            findings.append(Finding(check.__name__.removeprefix("check_"), "error", f"the check failed: {exc}"))
    return Report(findings)
