"""Passwords per file: a TOML password file maps paths and patterns to passwords; the pipeline, the Session and
the CLI use it for each encrypted PDF, and no password ever reaches the store, a message or the output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ingest.errors import PasswordFileError
from ingest.passwords import PasswordBook
from ingest.pipeline import ingest_paths
from ingest.store import DocumentStore
from pdf_factory import aes_pdf, encrypted_pdf
from selfrag_tui.cli import main

SECRETS = ("tiger-lily-7", "blue-heron-3", "umber-moth-9", "fallback-pw-1")


def write_book(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


# --------------------------------------------------------------------------------------------- the book itself


def test_exact_paths_win_over_patterns_and_the_first_pattern_wins(tmp_path: Path) -> None:
    (tmp_path / "bank").mkdir()
    book = PasswordBook.load(write_book(tmp_path / "pw.toml", "\n".join([
        '"bank/*.pdf" = "pattern-one"',
        '"bank/2024-*.pdf" = "pattern-two"',
        '"bank/2024-03.pdf" = "exact"',
        '"**/tax.pdf" = "anywhere"',
        '"/elsewhere/[ab].pdf" = "bracket"',
    ])), default="given-on-the-command-line")
    bank = tmp_path / "bank"
    assert book.for_path(bank / "2024-03.pdf") == "exact"
    assert book.for_path(bank / "2024-04.pdf") == "pattern-one"  # listed first, although the second also matches
    assert book.for_path(tmp_path / "x" / "y" / "tax.pdf") == "anywhere"
    assert book.for_path(tmp_path / "tax.pdf") == "anywhere"  # ** also matches no folder at all
    assert book.for_path("/elsewhere/a.pdf") == "bracket" and book.for_path("/elsewhere/c.pdf") == "given-on-the-command-line"
    assert book.for_path(bank / "sub" / "2024-03.pdf") == "given-on-the-command-line"  # * stays within a folder
    assert book.warnings == []


def test_relative_entries_are_relative_to_the_password_file(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "conf").mkdir()
    book = PasswordBook.load(write_book(tmp_path / "conf" / "pw.toml", '"../docs/a.pdf" = "one"\n'))
    monkeypatch.chdir("/")
    assert book.for_path(tmp_path / "docs" / "a.pdf") == "one"
    assert book.for_path(tmp_path / "conf" / "docs" / "a.pdf") is None


@pytest.mark.parametrize("text, expected", [
    ('"a.pdf" = "tiger-lily-7"\n"b.pdf" = tiger-lily-7\n', "not valid TOML (line 2"),
    ('"a.pdf" = 1234\n', "must be a quoted string"),
    ('[bank]\n"a.pdf" = "tiger-lily-7"\n', "must be a quoted string"),
    (b"\xff\xfe\x00", "not UTF-8"),
])
def test_a_bad_password_file_names_the_file_and_never_the_password(tmp_path: Path, text, expected) -> None:
    path = tmp_path / "pw.toml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(PasswordFileError) as caught:
        PasswordBook.load(path)
    assert expected in str(caught.value) and str(path) in str(caught.value)
    assert "tiger-lily-7" not in str(caught.value)


def test_missing_file_and_folder_are_named(tmp_path: Path) -> None:
    with pytest.raises(PasswordFileError, match="does not exist.*ingest.password_file"):
        PasswordBook.load(tmp_path / "nope.toml")
    with pytest.raises(PasswordFileError, match="is a folder"):
        PasswordBook.load(tmp_path)


def test_a_file_others_can_read_is_flagged_and_the_book_never_shows_a_password(tmp_path: Path) -> None:
    book = PasswordBook.load(write_book(tmp_path / "pw.toml", '"a.pdf" = "tiger-lily-7"\n"*.pdf" = "blue-heron-3"\n',
                                        mode=0o644), default="umber-moth-9")
    assert len(book.warnings) == 1 and "chmod 600" in book.warnings[0]
    for shown in (repr(book), str(book), f"{book!r}"):
        assert not any(secret in shown for secret in SECRETS), shown


# --------------------------------------------------------------------------------------------- ingest


def test_each_pdf_gets_its_own_password_and_none_is_stored(tmp_path: Path, store: DocumentStore) -> None:
    docs = tmp_path / "docs"
    (docs / "bank").mkdir(parents=True)
    encrypted_pdf(docs / "bank" / "march.pdf", "tiger-lily-7", "March statement mentions the pelican account.")
    encrypted_pdf(docs / "bank" / "april.pdf", "blue-heron-3", "April statement mentions the walrus account.")
    aes_pdf(docs / "tax.pdf", "The tax return lists the narwhal deduction.", user_password="umber-moth-9")
    encrypted_pdf(docs / "diary.pdf", "never-listed", "The diary mentions the okapi.")
    encrypted_pdf(docs / "wrong.pdf", "the-real-one", "Nobody reads this.")
    book = PasswordBook.load(write_book(tmp_path / "pw.toml", "\n".join([
        '"docs/bank/march.pdf" = "tiger-lily-7"',
        '"docs/bank/*.pdf" = "blue-heron-3"',
        '"docs/tax.pdf" = "umber-moth-9"',
        '"docs/wrong.pdf" = "fallback-pw-1"',
    ])))

    report = ingest_paths(store, [docs], passwords=book.for_path)

    assert sorted(Path(p).name for p in report.added) == ["april.pdf", "march.pdf", "tax.pdf"]
    reasons = {Path(p).name: r for p, r in report.failed.items()}
    assert set(reasons) == {"diary.pdf", "wrong.pdf"}
    assert "needs a password" in reasons["diary.pdf"] and "password file" in reasons["diary.pdf"]
    assert "wrong password" in reasons["wrong.pdf"]
    found = {query: {Path(h.path).name for h in store.search(query, k=5, mode="fts")}
             for query in ("pelican", "walrus", "narwhal", "okapi")}
    assert found == {"pelican": {"march.pdf"}, "walrus": {"april.pdf"}, "narwhal": {"tax.pdf"}, "okapi": set()}
    stored = json.dumps([r.__dict__ for r in store.documents()], default=str)
    assert not any(secret in stored for secret in SECRETS)
    assert not any(secret in json.dumps(report.__dict__) for secret in SECRETS)


# --------------------------------------------------------------------------------------------- CLI


@pytest.fixture
def locked_library(store_env: Path, embedder) -> Path:
    folder = store_env / "locked"
    folder.mkdir()
    encrypted_pdf(folder / "march.pdf", "tiger-lily-7", "March statement mentions the pelican account.")
    encrypted_pdf(folder / "april.pdf", "blue-heron-3", "April statement mentions the walrus account.")
    (folder / "notes.md").write_text("# Notes\n\nThe pelican account is closed in May.\n", encoding="utf-8")
    return folder


def test_cli_password_file_and_a_password_after_the_paths(locked_library: Path, store_env: Path, capsys) -> None:
    book = write_book(store_env / "pw.toml", '"locked/march.pdf" = "tiger-lily-7"\n')
    capsys.readouterr()
    # --password covers what the file does not list, and options may come between paths.
    code = main(["ingest", str(locked_library / "march.pdf"), "--password-file", str(book),
                 "--password", "blue-heron-3", str(locked_library / "april.pdf"), "--json"])
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert code == 0 and sorted(Path(p).name for p in summary["added"]) == ["april.pdf", "march.pdf"]
    assert "tiger-lily-7" not in out + err


def test_cli_password_file_from_the_settings_and_its_errors(locked_library: Path, store_env: Path, capsys,
                                                             monkeypatch) -> None:
    book = write_book(store_env / "pw.toml", '"locked/*.pdf" = "blue-heron-3"\n"locked/march.pdf" = "tiger-lily-7"\n',
                      mode=0o644)
    monkeypatch.setenv("SELFRAG_INGEST__PASSWORD_FILE", str(book))
    capsys.readouterr()
    assert main(["ingest", str(locked_library)]) == 0
    out, err = capsys.readouterr()
    assert "added" in out and "chmod 600" in out and str(book) in out
    assert "tiger-lily-7" not in out + err and "blue-heron-3" not in out + err

    monkeypatch.setenv("SELFRAG_INGEST__PASSWORD_FILE", str(store_env / "missing.toml"))
    (locked_library / "new.md").write_text("# New\n\nA note written later.\n", encoding="utf-8")
    assert main(["ingest", str(locked_library)]) == 2
    out, err = capsys.readouterr()
    assert "missing.toml" in err and "does not exist" in err
    # Nothing was read: the new note waits for a run with a usable password file.
    monkeypatch.delenv("SELFRAG_INGEST__PASSWORD_FILE")
    code = main(["ingest", str(locked_library), "--json"])
    assert code == 0 and [Path(p).name for p in json.loads(capsys.readouterr().out)["added"]] == ["new.md"]
