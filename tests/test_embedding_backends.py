"""The ONNX Runtime embedding backends against the PyTorch model they are exported from: same vectors (int8: close
enough to rank passages the same), exported once and reused, texts embedded in their own order."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from ingest.embedding import BACKENDS, Embedder, EmbedderLoadError, export_onnx, resolve_model_location

TEXTS = [
    "Alpacas are shorn once every year, usually late in spring.",
    "ok",
    "The Company reported net income of $484,000, or $.14 per share for the quarter ended March 31, 2021, "
    "compared to a net loss of ($401,000) in the same quarter last year. " * 2,
    "Sourdough needs a lively starter, a long cold proof and a very hot oven with steam.",
    "word " * 400,  # past the 256-token window: both backends read the same first 256 tokens
]


@pytest.fixture(scope="module")
def torch_embedder() -> Embedder:
    return Embedder.load(backend="torch")


@pytest.fixture(scope="module")
def onnx_embedder() -> Embedder:
    return Embedder.load(backend="onnx")


@pytest.fixture(scope="module")
def int8_embedder() -> Embedder:
    return Embedder.load(backend="onnx-int8")


def test_onnx_full_precision_gives_the_pytorch_vectors(torch_embedder: Embedder, onnx_embedder: Embedder) -> None:
    assert onnx_embedder.backend == "onnx" and onnx_embedder.note is None
    cosines = (torch_embedder.embed(TEXTS, batch_size=2) * onnx_embedder.embed(TEXTS, batch_size=2)).sum(axis=1)
    assert cosines.min() > 0.9999


def test_int8_vectors_stay_close_and_rank_passages_alike(torch_embedder: Embedder, int8_embedder: Embedder) -> None:
    assert int8_embedder.backend == "onnx-int8" and int8_embedder.note is None
    reference, quantised = torch_embedder.embed(TEXTS), int8_embedder.embed(TEXTS)
    cosines = (reference * quantised).sum(axis=1)
    assert cosines.mean() > 0.98 and cosines.min() > 0.95  # a two-letter text moves most
    for query in ("how often are alpacas shorn", "quarterly net income per share", "baking bread at home"):
        by_torch = np.argsort(-(reference @ torch_embedder.embed_query(query)))
        by_int8 = np.argsort(-(quantised @ int8_embedder.embed_query(query)))
        assert by_torch[0] == by_int8[0]
    # An index written by one backend is searched with the other's query vectors: the identity is shared.
    assert int8_embedder.identity == torch_embedder.identity


@pytest.mark.parametrize("backend", ["onnx", "onnx-int8"])
def test_rows_come_back_in_input_order_whatever_the_batching(backend: str) -> None:
    embedder = Embedder.load(backend=backend)
    one_by_one = np.stack([embedder.embed([t])[0] for t in TEXTS])
    batched = embedder.embed(TEXTS, batch_size=3)
    if backend == "onnx":
        assert np.allclose(one_by_one, batched, atol=1e-4)
    # int8 activations are scaled per batch, so a vector moves slightly with its batch neighbours; each row is
    # still, by far, its own text's.
    similarity = batched @ one_by_one.T
    assert list(similarity.argmax(axis=1)) == list(range(len(TEXTS))) and similarity.diagonal().min() > 0.94
    norms = np.linalg.norm(batched, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-5)
    # One call of 40 texts of mixed length: ONNX Runtime computes it in several small runs (RUN_TOKENS), several
    # texts a run for short ones, and every row still lands on its own text.
    many = embedder.embed(TEXTS * 8, batch_size=40)
    expected = np.tile(one_by_one, (8, 1))
    if backend == "onnx":
        assert np.allclose(many, expected, atol=1e-4)
    assert (many * expected).sum(axis=1).min() > 0.94


def test_progress_and_cancel_between_batches(int8_embedder: Embedder) -> None:
    seen: list[int] = []
    int8_embedder.embed(TEXTS, batch_size=2, on_batch=seen.append)
    assert seen == [2, 2, 1]
    cancel = threading.Event()
    cancel.set()
    assert len(int8_embedder.embed(TEXTS, batch_size=2, cancel=cancel)) == 0


def test_the_export_is_cached_and_reused(int8_embedder: Embedder) -> None:
    from pathlib import Path

    path = export_onnx(Path(resolve_model_location("all-MiniLM-L6-v2")), quantized=True)
    assert path == int8_embedder._model.path and path.exists()
    written = path.stat().st_mtime_ns
    assert export_onnx(Path(resolve_model_location("all-MiniLM-L6-v2")), quantized=True).stat().st_mtime_ns == written


def test_token_counts_match_the_model_window(torch_embedder: Embedder, int8_embedder: Embedder) -> None:
    assert int8_embedder.count_tokens(TEXTS) == torch_embedder.count_tokens(TEXTS)
    assert int8_embedder.count_tokens(["word " * 400])[0] > int8_embedder.max_tokens == 256


def test_an_unknown_backend_is_named() -> None:
    with pytest.raises(EmbedderLoadError, match="unknown embedding backend 'cuda-magic'.*onnx-int8"):
        Embedder.load(backend="cuda-magic")
    assert BACKENDS[0] == "onnx-int8"


def test_a_query_is_embedded_once_and_its_vector_cannot_be_changed(embedder):
    first = embedder.embed_query("How often are the tomatoes watered in summer?")
    again = embedder.embed_query("How often are the tomatoes watered in summer?")
    assert again is first  # the second search of a question reuses its vector
    np.testing.assert_allclose(first, embedder.embed(["How often are the tomatoes watered in summer?"])[0], atol=1e-6)
    with pytest.raises(ValueError):
        first[0] = 1.0  # shared between searches: read-only
