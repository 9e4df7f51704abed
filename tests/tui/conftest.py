"""Fixtures of the app tests: the real tiny generator, the real embedder and a LanceDB store of sample_docs/,
each loaded once per session and handed to every app; settings, config file and history private to each test.
"""

from __future__ import annotations

import os

import pytest

from selfrag_tui.application import locations


@pytest.fixture(autouse=True)
def private_paths(tmp_path, monkeypatch):
    """Settings file and data folder of each test in its tmp_path; no SELFRAG_* variables from outside."""
    for name in list(os.environ):
        if name.startswith("SELFRAG_"):
            monkeypatch.delenv(name)
    config = tmp_path / "config.toml"
    config.write_text("", encoding="utf-8")
    monkeypatch.setenv("SELFRAG_CONFIG", str(config))
    monkeypatch.setenv("SELFRAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.chdir(locations.sample_docs_path().parent)
    return tmp_path


@pytest.fixture(scope="session")
def tui_engine(request):
    """The tiny demo generator through the real transformers engine, shared by the session."""
    try:
        shared = request.getfixturevalue("tiny_engine")
    except pytest.FixtureLookupError:
        shared = None
    if shared is not None:
        yield shared
        return
    from selfrag_tui.application import services
    from selfrag_tui.application.settings import Settings

    settings = services.demo_settings(Settings())
    engine = services.load_engine(settings)
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def sample_store(tmp_path_factory, embedder):
    """sample_docs/ ingested once into a LanceDB store; tests only read it."""
    from ingest.pipeline import ingest_paths
    from ingest.store import DocumentStore

    store = DocumentStore.open(tmp_path_factory.mktemp("sample-store") / "store", embedder=embedder.name)
    store.use_embedder(embedder)
    report = ingest_paths(store, [locations.sample_docs_path()])
    assert report.ok, report.failed
    return store


@pytest.fixture
def empty_store(store):
    """An empty store for the library tests (the shared `store` fixture, under the name these tests read best)."""
    return store


@pytest.fixture
def history(tmp_path):
    from selfrag_tui.application.history import HistoryStore

    store = HistoryStore.open(tmp_path / "history.sqlite3")
    yield store
    store.close()


@pytest.fixture
def make_app(tui_engine, sample_store, history):
    """Build the app as `selfrag-chat --demo` does, with the session's engine and store handed in."""

    def build(*, store="sample", engine="tiny", **settings_overrides):
        from selfrag_tui.application import services
        from selfrag_tui.application.settings import Settings
        from selfrag_tui.tui.app import SelfRagApp

        base = Settings()
        data = services.demo_settings(base).model_dump()
        for section, values in settings_overrides.items():
            data[section].update(values)
        settings = Settings.model_validate(data)
        return SelfRagApp(
            settings,
            base_settings=base,
            demo=True,
            engine=tui_engine if engine == "tiny" else engine,
            store=sample_store if store == "sample" else store,
            history=history,
            ingest_demo_docs=False,
        )

    return build
