"""The demo's own store: what `Session.ingest_sample_docs` leaves in it (a real store and embedding model)."""

from __future__ import annotations

import shutil
from pathlib import Path


def test_the_demo_store_holds_one_copy_of_the_sample_documents(tmp_path, monkeypatch):
    """The demo run from a second checkout (or after a reinstall elsewhere) finds the first checkout's sample
    documents in the shared demo store: they are replaced, not kept beside the new ones (every source would be
    shown twice), while a file the user added to the demo's store stays."""
    from selfrag_tui.application import locations
    from selfrag_tui.application.session import Session
    from selfrag_tui.application.settings import Settings

    monkeypatch.setenv("SELFRAG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SELFRAG_CONFIG", str(tmp_path / "config.toml"))
    current = locations.sample_docs_path()
    other = tmp_path / "older-checkout" / "sample_docs"
    other.mkdir(parents=True)
    for name in ("garden_watering.txt", "reading_log.md"):
        shutil.copy(current / name, other / name)
    (other / "garden_watering.txt").write_text("Balcony\n\nAn older version of the watering notes.\n",
                                               encoding="utf-8")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "reading_log.md").write_text("# My list\n\nBooks to borrow next month.\n", encoding="utf-8")

    session = Session(Settings(), demo=True)
    try:
        session.ingest([other, mine])
        report = session.ingest_sample_docs()
        paths = [Path(record.path) for record in session.require_store().documents()]
    finally:
        session.close()
    expected = sorted(p.resolve() for p in current.iterdir() if p.is_file())
    assert sorted(p for p in paths if p.parent.name == "sample_docs") == expected
    assert (mine / "reading_log.md").resolve() in paths
    assert len(paths) == len(expected) + 1
    assert sorted(Path(p).name for p in report.removed) == ["garden_watering.txt", "reading_log.md"]
