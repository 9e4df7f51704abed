"""What the CLI prints from documents, file names and the store cannot drive the terminal: escape sequences,
bells, C1 controls and bidi overrides are shown as visible symbols, names are never read as Rich markup, and
`--json` keeps the exact text. Checked through the real CLI in a real pseudo-terminal."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ingest.chunking import Chunk
from ingest.store import DocumentStore, DocumentWrite
from selfrag_tui.application.verdicts import safe_json, visible_text

ROOT = Path(__file__).resolve().parents[1]

CSI_CLEAR = "\x1b[2J\x1b[H"  # clear the screen, cursor home
OSC8 = "\x1b]8;;https://evil.example/\x1b\\click here\x1b]8;;\x1b\\"  # a hidden hyperlink
OSC52 = "\x1b]52;c;cm0gLXJmIH4=\x07"  # write "rm -rf ~" to the clipboard
BEL = "\x07"
C1_CSI = "\x9b2J"  # the one-byte CSI of C1, as UTF-8 U+009B
RLO = "\u202e"  # right-to-left override: "txt.exe" shows as "exe.txt"
PAYLOAD = f"Quokka{CSI_CLEAR} fact {OSC8} copy {OSC52} ding{BEL} c1{C1_CSI} bidi {RLO}exe.txt end"

FORBIDDEN = [b"\x1b[2J", b"\x1b]", b"\x07", "\u009b".encode(), RLO.encode(), b"\x1bP"]
"""Bytes of the payload that must never reach the terminal."""
# Escape sequences Rich itself writes: colours, and the progress display's cursor hide/show, erase and move up.
RICH_OWN = re.compile(rb"\x1b\[[0-9;]*m|\x1b\[\?25[lh]|\x1b\[[0-9]*[AK]|\x1b\[2K")


def run_in_pty(argv: list[str], env: dict[str, str], timeout: float = 180) -> tuple[int, bytes]:
    """Run the CLI with stdin, stdout and stderr on a pseudo-terminal 200 columns wide; return (status, bytes)."""
    import fcntl
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", "selfrag_tui.cli", *argv], stdin=slave, stdout=slave,
                               stderr=slave, cwd=ROOT, env=env, start_new_session=True)
    os.close(slave)
    output = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                output.extend(chunk)
            elif process.poll() is not None:
                break
        status = process.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)
    return status, bytes(output)


def assert_terminal_safe(output: bytes) -> str:
    """No payload byte reached the terminal; every escape sequence is one Rich writes for its own styling.
    Returns the text with Rich's styling removed, for checking what the reader sees."""
    for forbidden in FORBIDDEN:
        assert forbidden not in output, (forbidden, output[:2000])
    leftover = RICH_OWN.sub(b"", output)
    assert b"\x1b" not in leftover, leftover[max(0, leftover.find(b"\x1b") - 80):leftover.find(b"\x1b") + 80]
    return leftover.decode("utf-8")


@pytest.fixture
def cli_env(store_env: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SELFRAG_")}
    env.update(SELFRAG_DATA_DIR=os.environ["SELFRAG_DATA_DIR"], SELFRAG_CONFIG=os.environ["SELFRAG_CONFIG"],
               PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1", TERM="xterm-256color", COLUMNS="200", LINES="50")
    env.pop("NO_COLOR", None)
    env["FORCE_COLOR"] = "1"
    return env


@pytest.fixture
def hostile_store(store_env: Path, embedder) -> DocumentStore:
    """A store holding a document whose name, title and passage carry every kind of terminal payload, as a PDF
    or an older version of the program could have put there."""
    from selfrag_tui.application.settings import resolve

    store = DocumentStore.open(resolve().store_path, embedder=embedder.name)
    store.use_embedder(embedder)
    folder = store_env / "docs"
    folder.mkdir()
    path = folder / f"[bold red]x{RLO}fdp.exe{BEL}.md"
    path.write_text("placeholder", encoding="utf-8")
    title = f"Title{OSC52}{CSI_CLEAR}[link=https://evil.example]t[/link]"
    chunk = Chunk(title=title, text=PAYLOAD, page_start=None, page_end=None, heading=None, ordinal=0)
    store.commit([DocumentWrite(path=str(path), title=title, content_hash="h", size=1, mtime=0.0, kind="markdown",
                                warnings=[f"note {CSI_CLEAR}{BEL}"], chunks=[chunk],
                                vectors=embedder.embed([chunk.embedding_text()]))])
    return store


def test_visible_text_names_every_control() -> None:
    shown = visible_text(PAYLOAD)
    assert "␛[2J␛[H" in shown and "␛]8;;https://evil.example/␛\\click here" in shown
    assert "␛]52;c;cm0gLXJmIH4=␇" in shown and "ding␇" in shown and "⟨U+009B⟩2J" in shown
    assert "⟨U+202E⟩exe.txt" in shown
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", shown)
    assert visible_text("a\nb\tc") == "a\nb    c" and visible_text("a\nb", multiline=False) == "a␊b"
    assert visible_text("bad \udcff name", multiline=False) == "bad \ufffd name"
    # JSON keeps the exact text, with the dangerous characters escaped rather than raw.
    dumped = safe_json({"text": PAYLOAD, "name": "x\udcff"})
    assert json.loads(dumped) == {"text": PAYLOAD, "name": "x\udcff"}
    assert "\x1b" not in dumped and "\x9b" not in dumped and RLO not in dumped and "\\u202e" in dumped


def test_search_and_docs_in_a_terminal(hostile_store: DocumentStore, cli_env: dict[str, str]) -> None:
    status, raw = run_in_pty(["search", "Quokka", "--mode", "fts"], cli_env)
    assert status == 0, raw
    assert b"\x1b[" in raw  # colours are on: this is a terminal, and only the payload is neutralised
    seen = assert_terminal_safe(raw)
    assert "Quokka␛[2J␛[H fact ␛]8;;https://evil.example/␛\\click here" in seen
    assert "copy ␛]52;c;cm0gLXJmIH4=␇ ding␇ c1⟨U+009B⟩2J bidi ⟨U+202E⟩exe.txt end" in seen
    assert "[bold red]x⟨U+202E⟩fdp.exe␇.md" in seen  # the file name as it is, not as markup
    assert "[link=https://evil.example]t[/link]" in seen

    status, raw = run_in_pty(["docs"], cli_env)
    assert status == 0, raw
    seen = assert_terminal_safe(raw)
    assert "[bold red]x⟨U+202E⟩fdp.exe␇.md" in seen and "note ␛[2J␛[H␇" in seen
    assert "Title␛]52;c;cm0gLXJmIH4=␇␛[2J␛[H[link=https://evil.example]t[/link]" in seen

    # --json in the same terminal: exact text back, nothing raw on the wire.
    status, raw = run_in_pty(["search", "Quokka", "--mode", "fts", "--json"], cli_env)
    assert status == 0
    assert_terminal_safe(raw)
    hit = json.loads(raw.decode("utf-8").replace("\r\n", "\n"))["hits"][0]
    assert hit["text"] == PAYLOAD and Path(hit["file"]).name == f"[bold red]x{RLO}fdp.exe{BEL}.md"


def test_ingest_summary_in_a_terminal(store_env: Path, cli_env: dict[str, str], embedder) -> None:
    folder = store_env / "inbox"
    folder.mkdir()
    evil_empty = f"[bold red]empty{CSI_CLEAR}{RLO}dm.txt"
    (folder / evil_empty).write_text("", encoding="utf-8")  # fails: listed with its reason
    (folder / f"skip{OSC52}.xlsx").write_bytes(b"PK\x03\x04")  # skipped: listed
    (folder / f"good{BEL}.md").write_text("# Good\n\nWombats have cube-shaped droppings.\n", encoding="utf-8")
    status, raw = run_in_pty(["ingest", str(folder)], cli_env)
    assert status == 1, raw
    seen = assert_terminal_safe(raw)
    assert "[bold red]empty␛[2J␛[H⟨U+202E⟩dm.txt" in seen and "empty file: nothing to index" in seen
    assert "skip␛]52;c;cm0gLXJmIH4=␇.xlsx" in seen and "not a format the loaders read (.xlsx)" in seen
    assert re.search(r"added\s+1", seen) and re.search(r"failed\s+1", seen) and re.search(r"skipped\s+1", seen)
