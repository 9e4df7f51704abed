"""Property-based and fuzz tests: arbitrary bytes, damaged PDFs, arbitrary text and arbitrary folder trees give
documents or the project's own per-file errors, never a crash, and the chunker loses no word.

The fuzz run's length is `SELFRAG_FUZZ_SECONDS` (default 3 s, for CI) and the examples per property
`SELFRAG_FUZZ_EXAMPLES` (default 60); raise both by hand to search deeper.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ingest.chunking import chunk_document
from ingest.errors import LoadError
from ingest.loaders import SUPPORTED_SUFFIXES, LoadedDocument, Section, load_file
from ingest.pipeline import ingest_paths
from ingest.store import DocumentStore
from pdf_factory import pdf_with_bad_pages, text_pdf

SUFFIXES = sorted(SUPPORTED_SUFFIXES) + [".PDF", ".Md", ".bin"]
EXAMPLES = int(os.environ.get("SELFRAG_FUZZ_EXAMPLES", "60"))
"""Examples per property (60 in CI; raise it by hand to search deeper)."""
FAST = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])


def _load_or_own_error(path: Path, data: bytes | None = None) -> LoadedDocument | LoadError:
    try:
        return load_file(path, data=data, time_budget_s=5)
    except LoadError as exc:
        assert exc.reason and exc.reason.isprintable(), exc.reason  # a reason in words, never a byte dump
        return exc


@FAST
@given(data=st.binary(max_size=4096), suffix=st.sampled_from(SUFFIXES))
def test_arbitrary_bytes_load_or_fail_with_a_reason(tmp_path: Path, data: bytes, suffix: str) -> None:
    path = tmp_path / f"input{suffix}"
    path.write_bytes(data)
    outcome = _load_or_own_error(path)
    if isinstance(outcome, LoadedDocument):
        chunk_document(outcome)  # what loads also chunks


@pytest.fixture(scope="module")
def sample_pdfs(tmp_path_factory) -> list[bytes]:
    folder = tmp_path_factory.mktemp("pdfs")
    pages = [f"Page {n}: the okapi eats leaves and the tapir swims. " * 5 for n in range(1, 4)]
    return [text_pdf(folder / "plain.pdf", pages, title="Okapi").read_bytes(),
            pdf_with_bad_pages(folder / "bad.pdf", pages, {2: "flate"}).read_bytes()]


@FAST
@given(seed=st.integers(0, 2**32 - 1), which=st.integers(0, 1), flips=st.integers(1, 40),
       cut=st.floats(0.05, 1.0))
def test_damaged_pdfs_load_or_fail_with_a_reason(tmp_path: Path, sample_pdfs, seed: int, which: int, flips: int,
                                                 cut: float) -> None:
    rng = random.Random(seed)
    data = bytearray(sample_pdfs[which][: max(8, int(len(sample_pdfs[which]) * cut))])
    for _ in range(flips):
        data[rng.randrange(len(data))] = rng.randrange(256)
    outcome = _load_or_own_error(tmp_path / "damaged.pdf", bytes(data))
    if isinstance(outcome, LoadedDocument):
        assert outcome.pages >= 1 and all(s.page and 1 <= s.page <= outcome.pages for s in outcome.sections)


@FAST
@given(texts=st.lists(st.text(min_size=1, max_size=400), min_size=1, max_size=6), pdf=st.booleans(),
       chunk_words=st.integers(10, 60))
def test_the_chunker_loses_no_word(texts: list[str], pdf: bool, chunk_words: int) -> None:
    sections = [Section(text, page=n + 1 if pdf else None, heading=None if pdf else f"H{n}")
                for n, text in enumerate(texts)]
    doc = LoadedDocument(path="x", title="T", sections=sections, kind="pdf" if pdf else "markdown")
    chunks = chunk_document(doc, chunk_words=chunk_words, overlap_words=chunk_words // 5)
    chunked = [word for chunk in chunks for word in chunk.text.split()]
    for word in " ".join(texts).split():
        assert word in chunked or any(word in c.text for c in chunks), word
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert all(c.words <= chunk_words * 4 // 3 + chunk_words // 4 + 1 or len(c.text.split()) == 1 for c in chunks)


# --- folder trees ------------------------------------------------------------------------------------------------

NAMES = st.text(alphabet="ab.-_ [é\x1b\u202e", min_size=1, max_size=6).filter(
    lambda n: n not in (".", "..") and not n.startswith("."))
ENTRY = st.one_of(
    st.tuples(st.just("text"), st.text(max_size=80)),
    st.tuples(st.just("bytes"), st.binary(max_size=200)),
    st.tuples(st.just("link"), st.integers(0, 20)),  # to another entry, itself, or nowhere
    st.tuples(st.just("fifo"), st.none()),
    st.tuples(st.just("dir"), st.none()),
)
TREE = st.lists(st.tuples(NAMES, st.sampled_from([".md", ".txt", ".pdf", ".MD", "", ".png"]), ENTRY,
                          st.integers(0, 3)), min_size=1, max_size=12)


def _build(root: Path, spec) -> list[Path]:
    made: list[Path] = [root]
    for name, suffix, (kind, payload), parent in spec:
        folder = next((p for p in reversed(made[: parent + 1]) if p.is_dir() and not p.is_symlink()), root)
        path = folder / f"{name}{suffix}"
        if os.path.lexists(path):
            continue
        if kind == "text":
            path.write_text(payload, encoding="utf-8", errors="surrogatepass")
        elif kind == "bytes":
            path.write_bytes(payload)
        elif kind == "link":
            target = made[payload % len(made)] if payload < len(made) else path if payload % 2 else root / "gone"
            path.symlink_to(target)
        elif kind == "fifo":
            os.mkfifo(path)
        else:
            path.mkdir()
        made.append(path)
    return made


@settings(max_examples=max(12, EXAMPLES // 5), deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(spec=TREE)
def test_any_folder_tree_ingests_without_crashing(embedder, spec) -> None:
    with tempfile.TemporaryDirectory() as temp:
        root = Path(temp) / "tree"
        root.mkdir()
        _build(root, spec)
        store = DocumentStore.open(Path(temp) / "store", embedder=embedder.name)
        store.use_embedder(embedder)
        report = ingest_paths(store, [root])  # raises nothing
        records = {r.path: r for r in store.documents()}
        for path in report.added:
            assert records[path].status == "ok" and records[path].chunks > 0
        for path, reason in report.failed.items():
            assert reason and (path not in records or records[path].status == "failed")
        assert not (set(report.added) & set(report.failed))
        health = store.health()
        assert not [p for p in health.problems if "failed to ingest" not in p.problem], health.problems
        again = ingest_paths(store, [root])  # a second run changes nothing
        assert not again.added and not again.updated and again.failed == report.failed


def test_fuzz_loaders_and_chunker_for_a_time_budget(tmp_path: Path, sample_pdfs) -> None:
    """Random mutations of real files (byte flips, cuts, splices, inserted controls) through every loader."""
    seconds = float(os.environ.get("SELFRAG_FUZZ_SECONDS", "3"))
    rng = random.Random(int(os.environ.get("SELFRAG_FUZZ_SEED", "20261201")))
    notes = ["# Title\n\n## Part\n\nSome words here. More words there.\n\n```\n# code\n```\n".encode(),
             "title:: x\n- item one\n- item two\n".encode(), "Café crème".encode("cp1252"),
             "wide text\n".encode("utf-16")]
    corpus = [(".pdf", d) for d in sample_pdfs] + [(s, n) for n in notes for s in (".md", ".txt", "")]
    runs, loaded, deadline = 0, 0, time.monotonic() + seconds
    while time.monotonic() < deadline:
        suffix, base = rng.choice(corpus)
        data = bytearray(base)
        for _ in range(rng.randint(1, 6)):
            op = rng.randrange(4)
            at = rng.randrange(len(data) + 1)
            if op == 0 and data:
                data[min(at, len(data) - 1)] = rng.randrange(256)
            elif op == 1:
                del data[at:at + rng.randint(1, 64)]
            elif op == 2:
                data[at:at] = rng.choice([b"\x1b[2J", b"\x00", b"\xff\xfe", b"%PDF-1.7", b"\x9b", b"\r", b"(", b"<<"])
            else:
                other = rng.choice(corpus)[1]
                start = rng.randrange(len(other))
                data[at:at] = other[start:start + rng.randint(1, 200)]
        path = tmp_path / f"f{runs % 8}{suffix}"
        outcome = _load_or_own_error(path, bytes(data))
        if isinstance(outcome, LoadedDocument):
            chunk_document(outcome)
            loaded += 1
        runs += 1
    assert runs > 10 and loaded > 0
