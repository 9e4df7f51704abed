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
    from selfrag_tui.application.session import Session
    from selfrag_tui.application.settings import Settings

    session = Session(Settings(), demo=True)
    engine = session.load_engine()
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
        from selfrag_tui.application.session import Session, demo_settings
        from selfrag_tui.application.settings import resolve
        from selfrag_tui.tui.app import SelfRagApp

        base = resolve()
        settings = demo_settings(base).with_updates(settings_overrides, source="the test")
        session = Session(
            settings,
            demo=True,
            base_settings=base,
            engine=tui_engine if engine == "tiny" else engine,
            store=sample_store if store == "sample" else store,
            history=history,
        )
        return SelfRagApp(session)

    return build


# ===== the fast tier: a scripted engine and scripted passages (tests/tui/scripted_world.py) ======================


@pytest.fixture
def world():
    from scripted_world import ScriptedWorld

    return ScriptedWorld()


@pytest.fixture
def scripted_app(world, history):
    """The app over a Session with the scripted engine and retriever, an empty store in the test's data folder,
    and the test's own settings file and history."""

    def build(*, engine: str | None = "scripted", load_generator: bool = False, **settings_overrides):
        from selfrag_tui.application.session import Session
        from selfrag_tui.application.settings import resolve
        from selfrag_tui.tui.app import SelfRagApp

        settings = resolve()
        if settings_overrides:
            settings = settings.with_updates(settings_overrides, source="the test")
        session = Session(settings, engine=world.engine if engine == "scripted" else None, history=history,
                          retriever=world.retrieve)
        return SelfRagApp(session, load_generator=load_generator)

    return build
