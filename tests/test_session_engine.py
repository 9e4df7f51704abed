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
