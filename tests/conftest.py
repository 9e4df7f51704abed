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
