"""Shared fixtures. Each section belongs to one part of the project; add new sections below, keep them delimited."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402


# ===== document store (ingest/) ===================================================================================
# The embedding model loads once per test session (~10 s); every store is a fresh LanceDB folder in tmp_path.


@pytest.fixture(scope="session")
def embedder_name() -> str:
    from ingest.embedding import DEFAULT_EMBEDDER

    return DEFAULT_EMBEDDER


@pytest.fixture(scope="session")
def embedder(embedder_name):
    """The real all-MiniLM-L6-v2 model, shared by every test (Embedder.load caches it per process)."""
    from ingest.embedding import Embedder

    return Embedder.load(embedder_name)


@pytest.fixture
def store(tmp_path, embedder):
    """An empty DocumentStore in a temporary folder, using the session's embedding model."""
    from ingest.store import DocumentStore

    opened = DocumentStore.open(tmp_path / "store", embedder=embedder.name)
    opened.use_embedder(embedder)
    return opened


@pytest.fixture
def store_env(tmp_path, monkeypatch):
    """SELFRAG_DATA_DIR and SELFRAG_CONFIG pointed at tmp_path, so CLI commands use a private store and settings."""
    data_dir = tmp_path / "data"
    config = tmp_path / "config.toml"
    config.write_text("", encoding="utf-8")
    monkeypatch.setenv("SELFRAG_DATA_DIR", str(data_dir))
    monkeypatch.setenv("SELFRAG_CONFIG", str(config))
    for name in list(os.environ):
        if name.startswith("SELFRAG_") and name not in ("SELFRAG_DATA_DIR", "SELFRAG_CONFIG"):
            monkeypatch.delenv(name)
    return tmp_path

# ===== end of document store fixtures =============================================================================


from llama_server_process import start_llama_server, stop_llama_server  # noqa: E402


# ===== GGUF engines (llama.cpp in-process and the OpenAI-compatible server client) ================================
# The tiny model is converted to GGUF once per session with llama.cpp's own converter; a real llama.cpp server
# process serves it on loopback for the server-engine tests.


@pytest.fixture(scope="session")
def tiny_model_dir():
    from pathlib import Path

    from selfrag_tui.application import locations

    # SELFRAG_TINY_MODEL runs the GGUF tests on another build of the tiny model (e.g. a retrained one).
    path = Path(os.environ.get("SELFRAG_TINY_MODEL") or locations.demo_model_path())
    if not (path / "config.json").is_file():
        pytest.skip(f"the tiny demo model is not built at {path}")
    return path


@pytest.fixture(scope="session")
def gguf_converter():
    """The `convert` function of scripts/convert_tiny_to_gguf.py (skips without llama-cpp-python or its sdist)."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (pip install '.[llamacpp]')")
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "convert_tiny_to_gguf.py"
    spec = importlib.util.spec_from_file_location("convert_tiny_to_gguf", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        module.find_sdist()
    except module.ConversionError as exc:
        pytest.skip(str(exc))
    return module


@pytest.fixture(scope="session")
def tiny_gguf(tiny_model_dir, gguf_converter, tmp_path_factory):
    """The tiny model as llama.cpp's converter writes it (f32; Self-RAG tokens typed as control tokens)."""
    return gguf_converter.convert(tiny_model_dir, tmp_path_factory.mktemp("gguf") / "tiny-selfrag-f32.gguf")


@pytest.fixture(scope="session")
def tiny_gguf_text_tokens(tiny_gguf, gguf_converter, tmp_path_factory):
    """The same GGUF with the Self-RAG tokens re-typed user-defined, so llama.cpp's server returns them."""
    import shutil

    target = tmp_path_factory.mktemp("gguf-text") / "tiny-selfrag-f32-text.gguf"
    shutil.copy(tiny_gguf, target)
    script = gguf_converter.extract_converter(gguf_converter.find_sdist())
    assert gguf_converter.mark_reflection_tokens_as_text(target, script) == 15
    return target


@pytest.fixture(scope="session")
def tiny_transformers_engine(tiny_engine):
    """The engine the GGUF engines are compared with: the session's `tiny_engine`."""
    return tiny_engine


@pytest.fixture(scope="session")
def llama_server(tiny_gguf_text_tokens, tmp_path_factory):
    """A real llama.cpp OpenAI-compatible server serving the tiny model; yields its base URL."""
    pytest.importorskip("uvicorn", reason="llama-cpp-python[server] is not installed")
    process, base_url = start_llama_server(tiny_gguf_text_tokens, tmp_path_factory.mktemp("server") / "server.log")
    yield base_url
    stop_llama_server(process)

# ===== end of GGUF engine fixtures ================================================================================


# ===== tiny Self-RAG model (selfrag_tui/models/tiny-selfrag, transformers engine) ==================================
# The bundled demo model through the real transformers engine, loaded once per session on one CPU thread.


@pytest.fixture(scope="session")
def tiny_engine(tiny_model_dir):
    """TransformersEngine over the tiny Self-RAG model (the bundled one unless SELFRAG_TINY_MODEL names another),
    on CPU, float32, 1 thread."""
    from selfrag_tui.engines.transformers_engine import TransformersEngine

    engine = TransformersEngine.load(str(tiny_model_dir), device="cpu", dtype="float32", n_threads=1)
    yield engine
    engine.close()


# ===== end of tiny Self-RAG model fixtures =========================================================================


# ===== test tiers ==================================================================================================
# The fast tier (`pytest -m "not slow"`) loads no model; every test that uses a real model (the embedding model, the
# tiny generator, a GGUF, a llama.cpp server) is in the real-model tier, marked here by the fixtures it uses.

REAL_MODEL_FIXTURES = frozenset({
    "embedder", "store", "sample_store", "empty_store", "tiny_engine", "tiny_transformers_engine", "tui_engine",
    "make_app", "tiny_gguf", "tiny_gguf_text_tokens", "llama_server", "llamacpp_engine", "llamacpp_native",
})


def pytest_collection_modifyitems(config, items):
    for item in items:
        if REAL_MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
