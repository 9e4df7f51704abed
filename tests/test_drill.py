"""The reliability drill: one folder holding every kind of bad input found in real collections, beside good files,
ingested through the real CLI. Each file's outcome is asserted, the good files are searchable, and the store
stays consistent; a second run re-parses nothing."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path


from pdf_factory import (
    aes_pdf,
    encrypted_pdf,
    form_pdf,
    garbage_pdf,
    image_scan_pdf,
    pdf_with_bad_pages,
    scanned_pdf,
    text_pdf,
    truncated_pdf,
)
from selfrag_tui.cli import main

# name -> (outcome, words that must appear in the reason or warning); outcome is added / failed / skipped.
EXPECTED: dict[str, tuple[str, str]] = {
    "good.md": ("added", ""),
    "good.pdf": ("added", ""),
    "UPPER.PDF": ("added", ""),
    "Notes.MD": ("added", ""),
    "journal.org": ("added", ""),
    "guide.adoc": ("added", ""),
    "old.mdown": ("added", ""),
    "plain.text": ("added", ""),
    "README": ("added", ""),
    "hello.pdf": ("added", ""),
    "form.pdf": ("added", ""),
    "owner-only.pdf": ("added", ""),
    "wrapped.pdf": ("added", "bytes of something else before the PDF header"),
    "partial.pdf": ("added", "partial: pages 2, 4 unreadable"),
    "latin1.txt": ("added", "read as Windows-1252"),
    "wide.txt": ("added", "read as UTF-16-LE"),
    "[bold red]x.md": ("added", ""),
    "scan.pdf": ("added", "page 1 read by OCR"),
    "bars.pdf": ("failed", "neither in a text layer nor by OCR"),
    "locked.pdf": ("failed", "needs a password"),
    "truncated.pdf": ("failed", "truncated"),
    "garbage.pdf": ("failed", "damaged"),
    "photo.md": ("failed", "not text: the file is a PNG image"),
    "noise.txt": ("failed", "control characters"),
    "empty.md": ("failed", "empty file"),
    "loop.md": ("failed", "symbolic link loop"),
    "dangling.md": ("failed", "broken link"),
    "bad\ufffdname.md": ("failed", "not valid UTF-8"),
    "pipe.md": ("skipped", "a named pipe, not a file"),
    "sheet.xlsx": ("skipped", "not a format the loaders read (.xlsx)"),
    "program": ("skipped", "no extension and not text"),
}
SEARCHABLE = {"good.md": "capybara", "good.pdf": "heron", "UPPER.PDF": "ocelot", "Notes.MD": "marmot",
              "journal.org": "okapi", "guide.adoc": "pangolin", "old.mdown": "axolotl", "plain.text": "narwhal",
              "README": "quoll", "hello.pdf": "Hello", "scan.pdf": "kinkajou", "form.pdf": "Zebulon", "owner-only.pdf": "crowns",
              "wrapped.pdf": "wombat", "partial.pdf": "tapir", "latin1.txt": "brûlée", "wide.txt": "gecko",
              "[bold red]x.md": "lemur"}


def build_drill(folder: Path) -> None:
    folder.mkdir()
    (folder / "good.md").write_text("# Good\n\nThe capybara is the largest rodent.\n", encoding="utf-8")
    good_pdf = text_pdf(folder / "good.pdf", ["The heron waits in the reeds.", "Herons eat frogs."])
    text_pdf(folder / "UPPER.PDF", ["The ocelot hunts at night."])
    (folder / "Notes.MD").write_text("The marmot whistles.\n", encoding="utf-8")
    (folder / "journal.org").write_text("* Day\nSaw an okapi today.\n", encoding="utf-8")
    (folder / "guide.adoc").write_text("= Guide\nThe pangolin rolls up.\n", encoding="utf-8")
    (folder / "old.mdown").write_text("The axolotl regrows limbs.\n", encoding="utf-8")
    (folder / "plain.text").write_text("The narwhal has a tusk.\n", encoding="utf-8")
    (folder / "README").write_text("The quoll is a marsupial.\n", encoding="utf-8")
    text_pdf(folder / "hello.pdf", ["Hello, world!"])
    image_scan_pdf(folder / "scan.pdf", ["The kinkajou sleeps in hollow trees during the day."])
    scanned_pdf(folder / "bars.pdf", pages=1)
    form_pdf(folder / "form.pdf", {"Applicant": "Zebulon Quartz"})
    aes_pdf(folder / "owner-only.pdf", "Balance carried forward is 4711 crowns.")
    wrapped = text_pdf(folder / "wrapped.src", ["The wombat digs."]).read_bytes()
    (folder / "wrapped.src").unlink()
    (folder / "wrapped.pdf").write_bytes(b"Content-Type: application/pdf\r\n\r\n" + wrapped)
    pdf_with_bad_pages(folder / "partial.pdf", [f"Page {n} about the tapir." for n in range(1, 6)],
                       {2: "limit", 4: "flate"})
    (folder / "latin1.txt").write_bytes("Crème brûlée from the café.".encode("cp1252"))
    (folder / "wide.txt").write_bytes("The gecko climbs glass.\n".encode("utf-16-le"))
    (folder / "[bold red]x.md").write_text("The lemur sunbathes.\n", encoding="utf-8")
    encrypted_pdf(folder / "locked.pdf", "pw")
    truncated_pdf(folder / "truncated.pdf", good_pdf)
    garbage_pdf(folder / "garbage.pdf")
    (folder / "photo.md").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    (folder / "noise.txt").write_bytes(bytes(range(1, 32)) * 30 + b"hi")
    (folder / "empty.md").write_text("", encoding="utf-8")
    (folder / "loop.md").symlink_to(folder / "loop.md")
    (folder / "dangling.md").symlink_to(folder / "nowhere.md")
    with open(os.path.join(os.fsencode(folder), b"bad\xffname.md"), "wb") as handle:
        handle.write(b"never read")
    os.mkfifo(folder / "pipe.md")
    (folder / "sheet.xlsx").write_bytes(b"PK\x03\x04" + bytes(100))
    (folder / "program").write_bytes(b"\x7fELF\x02\x01\x01" + bytes(100))
    if os.geteuid() == 0:
        os.mknod(folder / "device.txt", 0o600 | stat.S_IFCHR, os.makedev(1, 3))


def run_json(capsys, *argv: str) -> tuple[int, dict]:
    capsys.readouterr()
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_the_drill(store_env: Path, embedder, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "220")  # the docs table at a width where names and notes stay whole
    folder = store_env / "drill"
    build_drill(folder)
    code, summary = run_json(capsys, "ingest", str(folder))
    assert code == 1 and not summary["ok"]  # some files failed; the run went on

    outcomes: dict[str, tuple[str, str]] = {}
    for path in summary["added"]:
        outcomes[Path(path).name] = ("added", " ".join(summary["warnings"].get(path, [])))
    for path, reason in summary["failed"].items():
        outcomes[Path(path).name] = ("failed", reason)
    for path, reason in summary["skipped"].items():
        outcomes[Path(path).name] = ("skipped", reason)
    expected = dict(EXPECTED)
    if os.geteuid() == 0:
        expected["device.txt"] = ("skipped", "a device, not a file")
    assert set(outcomes) == set(expected)
    for name, (outcome, words) in expected.items():
        assert outcomes[name][0] == outcome, (name, outcomes[name])
        assert words in outcomes[name][1], (name, outcomes[name])
    # Files that loaded without anything to know carry no warning.
    assert all(not summary["warnings"].get(str(folder / n)) for n, (o, w) in EXPECTED.items() if o == "added" and not w)

    # Every good file is searchable by its own words.
    for name, word in SEARCHABLE.items():
        code, found = run_json(capsys, "search", word, "--mode", "fts", "--k", "3")
        assert code == 0 and name in {Path(h["file"]).name for h in found["hits"]}, (name, word)

    # `docs` agrees with the summary, and shows the partial PDF as such.
    code, listing = run_json(capsys, "docs")
    statuses = {Path(d["path"]).name: d["status"] for d in listing["documents"]}
    assert {n for n, s in statuses.items() if s == "ok"} == {n for n, (o, _) in EXPECTED.items() if o == "added"}
    assert listing["store"]["failed"] == sum(1 for n, (o, _) in EXPECTED.items()
                                             if o == "failed" and n != "bad\ufffdname.md")
    capsys.readouterr()
    assert main(["docs"]) == 0
    table = capsys.readouterr().out
    assert "partial" in table and "[bold red]x.md" in table

    # The store is consistent.
    from ingest.store import DocumentStore
    from selfrag_tui.application.settings import resolve

    health = DocumentStore.open(resolve().store_path, embedder=embedder.name).health()
    assert [p.problem for p in health.problems] == [f"{listing['store']['failed']} document(s) failed to ingest"]

    # A second run: nothing re-parsed or re-written, the same failures reported.
    code, again = run_json(capsys, "ingest", str(folder))
    assert code == 1 and again["added"] == [] and again["updated"] == []
    assert again["failed"] == summary["failed"] and len(again["unchanged"]) == len(summary["added"])


def _ingest_two(store_env: Path, capsys, argv_for) -> None:
    locked = encrypted_pdf(store_env / "a.pdf", "pw", "The locked ledger mentions ferrets.")
    note = store_env / "b.md"
    note.write_text("Badgers dig setts.\n", encoding="utf-8")
    code, summary = run_json(capsys, *argv_for(str(locked), str(note)))
    assert code == 0 and sorted(Path(p).name for p in summary["added"]) == ["a.pdf", "b.md"]


def test_password_before_the_paths(store_env: Path, embedder, capsys) -> None:
    _ingest_two(store_env, capsys, lambda a, b: ["ingest", "--password", "pw", a, b])


def test_password_between_the_paths(store_env: Path, embedder, capsys) -> None:
    """`ingest a.pdf --password pw b.md` should work like `ingest --password pw a.pdf b.md`."""
    _ingest_two(store_env, capsys, lambda a, b: ["ingest", a, "--password", "pw", b])
