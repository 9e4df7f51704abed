"""The store's health report and its cross-process write lock: a second writer waits and says so; the app and the
CLI use one store at the same time."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ingest.errors import StoreLocked
from ingest.pipeline import ingest_paths
from ingest.store import DocumentStore
from ingest.types import IngestProgress

ROOT = Path(__file__).resolve().parents[1]

# Holds the store's write lock until the file named by argv[2] appears (or 60 s pass).
HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from ingest.store import DocumentStore
    store = DocumentStore.open(sys.argv[1])
    with store.write_lock():
        print("locked", flush=True)
        deadline = time.monotonic() + 60
        while not Path(sys.argv[2]).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    print("released", flush=True)
""")


def _hold_lock(store_path: Path, release: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(store_path), str(release)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


def test_health_of_a_fresh_and_of_a_filled_store(tmp_path: Path, store: DocumentStore) -> None:
    empty = store.health()
    assert empty.path == str(store.path) and empty.documents == 0 and empty.chunks == 0
    assert {"documents", "meta"} <= set(empty.tables) and empty.embedder_stored is None
    assert empty.ok and empty.locked_by is None and not empty.fts_index

    (tmp_path / "a.md").write_text("# A\n\nAardvarks dig burrows at night.\n", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("   ", encoding="utf-8")
    ingest_paths(store, [tmp_path / "a.md", tmp_path / "empty.txt"])
    health = store.health()
    assert health.documents == 1 and health.failed == 1 and health.chunks == 1
    assert health.failed_docs == ((str(tmp_path / "empty.txt"), "empty file: nothing to index"),)
    assert health.embedder_stored == health.embedder_configured == store.embedder_name
    assert health.fts_index and not health.vector_index and not health.vector_index_needed
    assert health.dimension == 384 and health.versions >= 1
    assert [p.problem for p in health.problems] == ["1 document(s) failed to ingest"]
    assert "selfrag-chat docs" in health.problems[0].fix

    # A store past the index threshold without a vector index says so, with the fix.
    store.vector_index_threshold = 1
    needing = store.health()
    assert needing.vector_index_needed and any("no vector index" in p.problem for p in needing.problems)
    store.build_vector_index()
    assert store.health().vector_index


def test_health_reports_an_inconsistent_store_and_a_missing_text_index(tmp_path: Path, store: DocumentStore) -> None:
    (tmp_path / "a.md").write_text("# A\n\nAardvarks dig burrows at night.\n", encoding="utf-8")
    ingest_paths(store, [tmp_path / "a.md"])
    table = store._chunks()
    table.drop_index(next(i.name for i in table.list_indices()))
    table.delete("true")  # as if a writer died between the chunks commit and the documents commit
    problems = {p.problem: p.fix for p in store.health().problems}
    assert any("full-text index is missing" in p for p in problems)
    assert any("lists 1 passages but the chunks table holds 0" in p for p in problems)


def test_a_second_writer_waits_and_says_who_holds_the_store(tmp_path: Path, store: DocumentStore) -> None:
    (tmp_path / "a.md").write_text("# A\n\nAardvarks dig burrows at night.\n", encoding="utf-8")
    release = tmp_path / "release"
    holder = _hold_lock(store.path, release)
    try:
        assert store.health().locked_by.startswith(f"pid {holder.pid} ")
        # A zero limit fails at once, naming the holder.
        with pytest.raises(StoreLocked, match=f"still being written by pid {holder.pid}"):
            with store.write_lock(wait_s=0):
                pass
        # With a limit, the writer waits, reports that it waits, and gets the store when the holder finishes.
        updates: list[IngestProgress] = []

        def on_progress(update: IngestProgress) -> None:
            updates.append(update)
            if update.phase == "waiting" and not release.exists():
                release.touch()

        started = time.monotonic()
        report = ingest_paths(store, [tmp_path / "a.md"], on_progress=on_progress)
        assert report.ok and [Path(p).name for p in report.added] == ["a.md"]
        waiting = [u for u in updates if u.phase == "waiting"]
        assert waiting and f"pid {holder.pid}" in waiting[0].note and "up to 10 min" in waiting[0].note
        assert time.monotonic() - started < 30
        assert holder.wait(timeout=30) == 0
    finally:
        release.touch()
        holder.wait(timeout=30)
    assert store.health().locked_by is None


def test_a_writer_gives_up_after_its_limit_with_a_clear_message(tmp_path: Path, embedder) -> None:
    store = DocumentStore.open(tmp_path / "store", embedder=embedder.name, lock_wait_s=0.5)
    store.use_embedder(embedder)
    (tmp_path / "a.md").write_text("# A\n\nAardvarks dig burrows at night.\n", encoding="utf-8")
    release = tmp_path / "release"
    holder = _hold_lock(store.path, release)
    try:
        with pytest.raises(StoreLocked) as caught:
            ingest_paths(store, [tmp_path / "a.md"])
        message = str(caught.value)
        assert f"pid {holder.pid}" in message and "after waiting 0 s" in message and "Wait for it to finish" in message
        assert store.documents() == []  # nothing half written
    finally:
        release.touch()
        holder.wait(timeout=30)


def test_the_app_and_the_cli_share_one_store(store_env: Path, embedder) -> None:
    """The app holds the store open and is writing when a CLI ingest starts in another process: the CLI says
    whom it waits for, then ingests once the app is done; each sees the other's documents."""
    import selectors

    from selfrag_tui.application.settings import resolve

    settings = resolve()
    app_store = DocumentStore.open(settings.store_path, embedder=embedder.name)
    app_store.use_embedder(embedder)
    notes = store_env / "notes"
    notes.mkdir()
    (notes / "cli.md").write_text("# Ferns\n\nFerns reproduce with spores, not seeds.\n", encoding="utf-8")
    (store_env / "app.md").write_text("# Moss\n\nMoss holds water like a sponge.\n", encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    stderr_lines: list[str] = []
    with app_store.write_lock():
        ingest_paths(app_store, [store_env / "app.md"])  # the app writes (re-entrant under its own lock)
        cli = subprocess.Popen([sys.executable, "-m", "selfrag_tui.cli", "ingest", str(notes), "--json"],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        selector = selectors.DefaultSelector()
        selector.register(cli.stderr, selectors.EVENT_READ)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and not any("waiting for" in line for line in stderr_lines):
            if selector.select(timeout=1.0):
                line = cli.stderr.readline()
                if not line:
                    break
                stderr_lines.append(line)
        assert any(f"waiting for pid {os.getpid()}" in line for line in stderr_lines), stderr_lines
        assert cli.poll() is None  # still waiting, not failed
    out, err = cli.communicate(timeout=240)
    assert cli.returncode == 0, "".join(stderr_lines) + err
    assert [Path(p).name for p in json.loads(out)["added"]] == ["cli.md"]
    assert {Path(h.path).name for h in app_store.search("spores", k=5, mode="fts")} == {"cli.md"}
    assert {Path(r.path).name for r in app_store.documents()} == {"cli.md", "app.md"}
    assert app_store.health().problems == ()
