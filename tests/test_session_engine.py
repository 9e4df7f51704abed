"""Who closes the generator: a Session closes the model it loaded itself and leaves one handed in by the caller
open, so an engine shared by several sessions (the CLI's and the app's tests, a server process) outlives each."""

from __future__ import annotations

import pytest

from selfrag_tui.engines.base import EngineError


def _prompt(engine) -> list[int]:
    return engine.encode("### Instruction:\nWhat is a chaccu?\n\n### Response:\n")


def test_closing_a_session_leaves_an_engine_handed_in_open(tiny_engine, tmp_path, monkeypatch):
    from selfrag_tui.application.session import Session
    from selfrag_tui.application.settings import Settings

    monkeypatch.setenv("SELFRAG_DATA_DIR", str(tmp_path / "data"))
    for _ in range(2):  # two sessions in turn over the same engine
        session = Session(Settings(), demo=True, engine=tiny_engine)
        assert session.engine is tiny_engine
        session.close()
        assert session.engine is None
    assert tiny_engine.next_token_logprobs([_prompt(tiny_engine)], [tiny_engine.eos_token_id])


def test_closing_a_session_releases_the_model_it_loaded(tiny_model_dir, tmp_path, monkeypatch):
    from selfrag_tui.application.session import Session
    from selfrag_tui.application.settings import Settings

    monkeypatch.setenv("SELFRAG_DATA_DIR", str(tmp_path / "data"))
    settings = Settings().with_updates(
        {"model": {"model": str(tiny_model_dir), "engine": "transformers", "device": "cpu", "dtype": "float32",
                   "n_threads": 1}}, source="test")
    session = Session(settings)
    engine = session.load_engine()
    prompt = _prompt(engine)
    assert engine.next_token_logprobs([prompt], [engine.eos_token_id])
    session.close()
    with pytest.raises(EngineError, match="closed"):
        engine.next_token_logprobs([prompt], [engine.eos_token_id])


def test_a_question_asked_while_the_first_documents_go_in_waits_for_them(tiny_engine, tmp_path, monkeypatch):
    """The demo starts by adding the sample documents to an empty store. A question asked before they are in would
    find no passage; it waits for them instead (saying so), then is answered from them. Once the store holds
    passages, a question is answered at once, however long another ingest runs."""
    import threading
    import time

    from selfrag_tui.application import events as ev
    from selfrag_tui.application import locations
    from selfrag_tui.application.session import Session
    from selfrag_tui.application.settings import Settings

    monkeypatch.setenv("SELFRAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SELFRAG_CONFIG", str(tmp_path / "config.toml"))
    session = Session(Settings(), demo=True, engine=tiny_engine)
    seen: list[object] = []
    session.listener = seen.append

    def held_ingest(folder):
        """An ingest of `folder` in a thread, stopped at its first progress report until released."""
        started, release = threading.Event(), threading.Event()

        def progress(update) -> None:
            started.set()
            release.wait(60)

        thread = threading.Thread(target=lambda: session.ingest([folder], on_progress=progress))
        thread.start()
        assert started.wait(60)
        return thread, release

    adding, release = held_ingest(locations.sample_docs_path())
    answers: list = []
    asking = threading.Thread(target=lambda: answers.append(session.ask("How fine is vicuna fibre?")))
    asking.start()
    deadline = time.monotonic() + 60
    while not any(isinstance(e, ev.WaitingForDocuments) for e in seen):
        assert time.monotonic() < deadline, "the question did not wait for the documents"
        time.sleep(0.05)
    assert not answers  # still waiting
    release.set()
    adding.join(120)
    asking.join(120)
    (answer,) = answers
    assert answer.passages and not answer.abstained
    assert "12.5 microns" in answer.text

    more = tmp_path / "more"
    more.mkdir()
    (more / "note.md").write_text("# Note\n\nThe bike shed key hangs by the back door.\n", encoding="utf-8")
    adding, release = held_ingest(more)
    seen.clear()
    try:
        answer = session.ask("How fine is vicuna fibre?")
    finally:
        release.set()
        adding.join(120)
    assert "12.5 microns" in answer.text
    assert not any(isinstance(e, ev.WaitingForDocuments) for e in seen)
    session.close()
