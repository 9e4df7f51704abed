"""The transformers engine: a Hugging Face causal LM on CPU or CUDA with exact logprobs.

Generation is our own step loop over the model's forward pass (left-padded batch, KV cache) rather than
`model.generate`, so that we can check for cancellation between steps, stream text, stop each row on its own
stop ids, and read float32 log-softmax values of any ids from the full logits (SELFRAG_SPEC section 7).

torch and transformers are imported inside methods: importing this module is cheap.
"""

from __future__ import annotations

import gc
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from selfrag_tui.engines.base import (
    MISSING_LOGPROB,
    EngineError,
    EngineInfo,
    Generation,
    GenerationCancelled,
    TokenCallback,
)

if TYPE_CHECKING:
    import torch

DOWNLOAD_HINT = (
    "set it up with `selfrag-chat model download hf` (GPU) or `selfrag-chat model download gguf-q4_k_m` (CPU "
    "laptops; `selfrag-chat model list` shows what fits this machine), or try the bundled tiny model with `--demo`"
)
GGUF_HINT = "`selfrag-chat model download gguf-q4_k_m` (about 4.1 GB, runs with the llama.cpp engine)"
_WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth")
_DTYPE_ALIASES = {
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
}
_DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2}


def _looks_like_path(model: str) -> bool:
    """Hub ids are `org/name`; anything else with a separator, a dot prefix or a tilde is a filesystem path."""
    return (
        model.startswith((".", "/", "~"))
        or model.count("/") > 1
        or os.sep != "/" and os.sep in model
        or model.endswith(".gguf")
    )


def _weight_files(folder: Path) -> list[Path]:
    return sorted(p for pattern in _WEIGHT_PATTERNS for p in folder.glob(pattern) if p.is_file())


def _check_local_folder(folder: Path, model: str) -> None:
    """Reject folders that cannot hold a transformers checkpoint, naming the folder and what to do."""
    if folder.is_file():
        if folder.suffix == ".gguf":
            raise EngineError(
                f"{model} is a GGUF file, which the transformers engine cannot load: "
                "use the llama.cpp engine (--engine llamacpp) for GGUF files"
            )
        raise EngineError(f"model path {folder} is a file; give the folder that holds config.json and the weights")
    if not (folder / "config.json").is_file():
        raise EngineError(
            f"model folder {folder} has no config.json, so it is not a transformers model folder; "
            f"point --model at the folder that holds config.json and the weights, or {DOWNLOAD_HINT}"
        )
    if not _weight_files(folder):
        ggufs = sorted(folder.glob("*.gguf"))
        hint = (
            f"it holds GGUF files ({ggufs[0].name}): use the llama.cpp engine (--engine llamacpp)"
            if ggufs
            else "the download may be incomplete; download the model again"
        )
        raise EngineError(
            f"model folder {folder} has no weights (no *.safetensors or *.bin files): {hint}, or {DOWNLOAD_HINT}"
        )


def _hub_hint(model: str) -> str:
    from selfrag_tui.engines.settings import DEFAULT_MODEL

    if model == DEFAULT_MODEL:
        return DOWNLOAD_HINT
    return (
        f"download it with `hf download {model}` (the Hugging Face CLI) or point --model at its folder, "
        "or try the bundled tiny model with `--demo`"
    )


def _resolve_model(model: str) -> Path:
    """The local folder to load `model` from: a folder, or the snapshot of a hub name in the Hugging Face cache.

    Never downloads: a model the user has not set up is an error that says how to get it.
    """
    folder = Path(model).expanduser()
    if folder.exists():
        _check_local_folder(folder, model)
        return folder
    if _looks_like_path(model):
        raise EngineError(
            f"model folder {folder} does not exist; check the path in --model / model.model, or {DOWNLOAD_HINT}"
        )
    from huggingface_hub import constants as hub_constants
    from huggingface_hub import snapshot_download

    try:
        snapshot = Path(snapshot_download(repo_id=model, local_files_only=True))
    except Exception:  # not in the cache (or not a valid repo id)
        raise EngineError(
            f"model '{model}' is not on this machine (not a folder, and not in the Hugging Face cache "
            f"{hub_constants.HF_HUB_CACHE}); selfrag-chat downloads nothing unless asked: {_hub_hint(model)}"
        ) from None
    _check_local_folder(snapshot, model)
    return snapshot


def _pick_device(torch: Any, device: str) -> str:
    device = (device or "auto").strip().lower()
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise EngineError(
                f"device '{device}' was requested but CUDA is not available to torch {torch.__version__} "
                "(no NVIDIA GPU, no driver, or a CPU-only torch build); set model.device = \"cpu\" or \"auto\""
            )
        index = device.partition(":")[2]
        if index and (not index.isdigit() or int(index) >= torch.cuda.device_count()):
            raise EngineError(
                f"device '{device}' does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)"
            )
        return device
    if device == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise EngineError("device 'mps' was requested but Apple MPS is not available; use \"cpu\" or \"auto\"")
        return device
    if device == "cpu":
        return device
    raise EngineError(f"unknown device '{device}': use auto, cpu, cuda, cuda:N or mps")


def _pick_dtype(torch: Any, dtype: str, device: str) -> str:
    dtype = (dtype or "auto").strip().lower().removeprefix("torch.")
    if dtype == "auto":
        if device.startswith("cuda"):
            return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        if device == "mps":
            return "float16"
        return "float32"
    if dtype not in _DTYPE_ALIASES:
        raise EngineError(f"unknown dtype '{dtype}': use auto, float32, float16 or bfloat16")
    return _DTYPE_ALIASES[dtype]


def _available_memory(torch: Any, device: str) -> int | None:
    """Free bytes on the target device, or None when it cannot be told."""
    from selfrag_tui.engines import memory

    try:
        if device.startswith("cuda"):
            free, _total = torch.cuda.mem_get_info(torch.device(device))
            return int(free)
        if device == "cpu":
            return memory.available_ram()
    except (OSError, RuntimeError, ValueError):
        return None
    return None


def _read_config(folder: Path) -> dict[str, Any]:
    import json

    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _stored_dtype_bytes(config: dict[str, Any]) -> int:
    stored = str(config.get("dtype") or config.get("torch_dtype") or "float16").removeprefix("torch.")
    return _DTYPE_BYTES.get(_DTYPE_ALIASES.get(stored, "float16"), 2)


def _weights_on_disk(folder: Path) -> int:
    """Bytes of one copy of the weights (a folder holding both .safetensors and .bin is counted once)."""
    files = _weight_files(folder)
    if any(p.suffix == ".safetensors" for p in files):
        files = [p for p in files if p.suffix == ".safetensors"]
    return sum(p.stat().st_size for p in files)  # stat follows the hub cache's symlinks to the blobs


def memory_needed(folder: Path, dtype: str, context: int) -> tuple[int, int, int]:
    """(total, weights, key/value cache) bytes to run the model in `folder` in `dtype` with `context` tokens."""
    from selfrag_tui.engines import memory

    config = _read_config(folder)
    weights = int(_weights_on_disk(folder) * _DTYPE_BYTES[dtype] / _stored_dtype_bytes(config))
    shape = memory.ModelShape.from_config(config)
    kv = memory.kv_cache_bytes(shape, context, _DTYPE_BYTES[dtype]) if shape is not None else 0
    return memory.needed_bytes(weights, shape, context, _DTYPE_BYTES[dtype]), weights, kv


def _out_of_memory_message(model: str, device: str, dtype: str, detail: str, smaller: str = "") -> str:
    options = []
    if dtype == "float32":
        options.append(f"half the weights with --dtype bfloat16{smaller}")
    if device == "cpu":
        options.append(f"a quantised GGUF file with the llama.cpp engine, made for CPU laptops: {GGUF_HINT}")
    else:
        options.append(f"a quantised GGUF file with the llama.cpp engine: {GGUF_HINT}")
    options.append("a shorter context (--max-model-len 2048)")
    options.append("the bundled tiny model (--demo)")
    return f"not enough memory to run {model} on {device} in {dtype} ({detail}). Options: " + "; ".join(options)


def _check_memory(torch: Any, folder: Path, model: str, device: str, dtype: str, context: int) -> None:
    """Refuse up front when the model clearly cannot fit: a CPU process that runs out is killed, not told."""
    from selfrag_tui.engines.memory import gib

    if _weights_on_disk(folder) == 0:
        return
    needed, weights, kv = memory_needed(folder, dtype, context)
    available = _available_memory(torch, device)
    if available is None or needed <= available:
        return
    smaller = ""
    if dtype == "float32":
        smaller = f" (about {gib(memory_needed(folder, 'bfloat16', context)[0])})"
    detail = (
        f"needs about {gib(needed)}: weights {gib(weights)} + key/value cache {gib(kv)} for {context} tokens; "
        f"{gib(available)} is free"
    )
    raise EngineError(_out_of_memory_message(model, device, dtype, detail, smaller))


def _check_sentencepiece_support(folder: Path) -> None:
    """A folder with only tokenizer.model (as Llama-2 checkpoints ship) is converted by transformers through
    sentencepiece and protobuf; without them transformers fails with an unrelated tiktoken message."""
    if not (folder / "tokenizer.model").is_file() or (folder / "tokenizer.json").is_file():
        return
    import importlib.util

    def installed(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # a missing parent package
            return False

    missing = [package for package, module in (("sentencepiece", "sentencepiece"), ("protobuf", "google.protobuf"))
               if not installed(module)]
    if missing:
        raise EngineError(
            f"the tokenizer of {folder} is a SentencePiece tokenizer.model, which needs the Python package(s) "
            f"{' and '.join(missing)}: pip install {' '.join(missing)}"
        )


def _placement(device: str) -> dict[str, Any]:
    """Load the weights straight onto a GPU (accelerate's device map), never through a full copy in RAM first.

    On the CPU transformers already reads the safetensors memory-mapped into the model, so nothing is added.
    """
    if device == "cpu":
        return {}
    import importlib.util

    if importlib.util.find_spec("accelerate") is None:
        return {}
    return {"device_map": {"": device}}


def _is_out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, MemoryError) or "out of memory" in str(exc).lower()


class TransformersEngine:
    """A transformers causal LM and its tokenizer, implementing `engines.base.Engine` with exact logprobs."""

    name = "transformers"
    logprob_source = "exact"

    def __init__(self, model: Any, tokenizer: Any, *, model_name: str, device: str, dtype: str, max_context: int):
        import torch

        self._torch = torch
        self._model = model
        self._tokenizer = tokenizer
        self.model_name = model_name
        self.device = device
        self.dtype = dtype
        self.max_context = max_context
        self._vocab: dict[str, int] = dict(tokenizer.get_vocab())
        self._vocab_size = int(model.config.vocab_size)
        eos = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else model.config.eos_token_id
        if isinstance(eos, list):
            eos = eos[0]
        if eos is None:
            raise EngineError(f"model {model_name} defines no end-of-sequence token (eos_token_id)")
        self.eos_token_id = int(eos)
        self.bos_token_id = tokenizer.bos_token_id
        # Padding ids are masked out; any valid id works, the pad token keeps dumps readable.
        self._pad_id = int(tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_token_id)

    # ------------------------------------------------------------------ loading

    @classmethod
    def load(
        cls,
        model: str,
        *,
        device: str = "auto",
        dtype: str = "auto",
        n_threads: int | None = None,
        max_context: int | None = None,
    ) -> "TransformersEngine":
        """Load a local folder or a hub name already in the Hugging Face cache (never downloaded here).

        Memory is checked first (weights in the chosen dtype + the key/value cache for the context), and the
        weights go straight to the target device. Every failure a user can fix becomes an EngineError saying
        what to do.
        """
        try:
            import torch
            import transformers
        except ImportError as exc:  # both are core dependencies: a broken install
            raise EngineError(
                f"the transformers engine cannot import {exc.name}: reinstall selfrag-chat (pip install selfrag-chat)"
            ) from exc
        if n_threads:
            torch.set_num_threads(int(n_threads))
        # Per-tensor loading bars on stderr would garble the terminal UI; callers show their own progress.
        transformers.utils.logging.disable_progress_bar()
        folder = _resolve_model(model)
        source = str(folder)
        device = _pick_device(torch, device)
        dtype = _pick_dtype(torch, dtype, device)
        config_context = int(_read_config(folder).get("max_position_embeddings") or 4096)
        context = min(config_context, int(max_context)) if max_context else config_context
        _check_sentencepiece_support(folder)
        _check_memory(torch, folder, model, device, dtype, context)

        try:
            tokenizer = transformers.AutoTokenizer.from_pretrained(source, local_files_only=True)
        except ImportError as exc:
            raise EngineError(
                f"loading the tokenizer of {model} needs a missing package ({exc}); "
                "install it with: pip install sentencepiece protobuf"
            ) from exc
        except (OSError, ValueError) as exc:
            raise EngineError(f"cannot load the tokenizer of {model}: {exc}; {DOWNLOAD_HINT}") from exc
        try:
            placement = _placement(device)
            causal_lm = transformers.AutoModelForCausalLM.from_pretrained(
                source, dtype=getattr(torch, dtype), local_files_only=True, **placement
            )
            if not placement and device != "cpu":  # without accelerate: loaded on the CPU, then moved
                causal_lm.to(device)
        except (MemoryError, RuntimeError) as exc:
            if _is_out_of_memory(exc):
                gc.collect()
                if device.startswith("cuda"):
                    torch.cuda.empty_cache()
                raise EngineError(_out_of_memory_message(model, device, dtype, "ran out while loading")) from exc
            raise EngineError(f"cannot load the model {model}: {exc}") from exc
        except (OSError, ValueError) as exc:
            raise EngineError(f"cannot load the model {model}: {exc}; {DOWNLOAD_HINT}") from exc
        causal_lm.eval()
        return cls(causal_lm, tokenizer, model_name=model, device=device, dtype=dtype, max_context=context)

    def info(self) -> EngineInfo:
        return EngineInfo(
            engine=self.name,
            model=self.model_name,
            device=self.device,
            dtype=self.dtype,
            logprob_source="exact",
            extra={"max_context": str(self.max_context), "vocab_size": str(self._vocab_size)},
        )

    def close(self) -> None:
        """Drop the model so its memory can be reclaimed (the engine is unusable afterwards)."""
        self._model = None
        gc.collect()
        if self.device.startswith("cuda"):
            self._torch.cuda.empty_cache()

    # ------------------------------------------------------------------ tokens

    def encode(self, text: str, *, add_bos: bool = True) -> list[int]:
        ids = list(self._tokenizer.encode(text, add_special_tokens=False))
        if add_bos and self.bos_token_id is not None:
            ids.insert(0, int(self.bos_token_id))
        return ids

    def decode(self, token_ids: Sequence[int]) -> str:
        return self._tokenizer.decode(list(token_ids), skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def token_id(self, token: str) -> int | None:
        return self._vocab.get(token)

    # ------------------------------------------------------------------ inference

    def _left_padded(self, prompts: Sequence[Sequence[int]]) -> tuple["torch.Tensor", "torch.Tensor", "torch.Tensor"]:
        """input ids, attention mask and position ids for a left-padded batch (positions start at 0 per row)."""
        torch = self._torch
        width = max(len(p) for p in prompts)
        input_ids = torch.full((len(prompts), width), self._pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            if prompt:
                input_ids[row, width - len(prompt):] = torch.tensor(list(prompt), dtype=torch.long)
                attention_mask[row, width - len(prompt):] = 1
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        return input_ids.to(self.device), attention_mask.to(self.device), position_ids.to(self.device)

    def _check_prompts(self, prompts: Sequence[Sequence[int]]) -> None:
        if self._model is None:
            raise EngineError(f"the engine for {self.model_name} was closed; load the model again")
        for index, prompt in enumerate(prompts):
            if len(prompt) == 0:
                raise EngineError(f"prompt {index} is empty; encode the prompt with its BOS token")
            if len(prompt) >= self.max_context:
                raise EngineError(
                    f"prompt {index} has {len(prompt)} tokens, the model's context is {self.max_context}: "
                    "shorten the passages or the conversation history"
                )
            bad = [t for t in prompt if not 0 <= int(t) < self._vocab_size]
            if bad:
                raise EngineError(f"prompt {index} has token ids outside the vocabulary of {self._vocab_size}: {bad[:5]}")

    def _forward(self, **inputs: Any) -> Any:
        try:
            return self._model(**inputs)
        except (MemoryError, RuntimeError) as exc:
            if _is_out_of_memory(exc):
                if self.device.startswith("cuda"):
                    self._torch.cuda.empty_cache()
                raise EngineError(
                    _out_of_memory_message(
                        self.model_name, self.device, self.dtype, "ran out during generation; fewer passages (--k) "
                        "or fewer new tokens also help"
                    )
                ) from exc
            raise

    def generate(
        self,
        prompts: Sequence[Sequence[int]],
        *,
        max_new_tokens: int,
        stop_token_ids: Sequence[int] = (),
        score_ids: Sequence[int] = (),
        cancel: threading.Event | None = None,
        on_token: TokenCallback | None = None,
    ) -> list[Generation]:
        """Greedy decoding of all prompts in one left-padded batch; see `engines.base.Engine.generate`."""
        if not prompts:
            return []
        self._check_prompts(prompts)
        torch = self._torch
        from transformers import DynamicCache

        batch = len(prompts)
        stop_ids = {int(t) for t in stop_token_ids} | {self.eos_token_id}
        wanted = [int(t) for t in score_ids]
        in_vocab = [t for t in dict.fromkeys(wanted) if 0 <= t < self._vocab_size]
        in_vocab_index = torch.tensor(in_vocab, dtype=torch.long, device=self.device)
        limits = [min(int(max_new_tokens), self.max_context - len(p)) for p in prompts]
        stream = on_token if batch == 1 else None

        token_ids: list[list[int]] = [[] for _ in range(batch)]
        token_logprobs: list[list[float]] = [[] for _ in range(batch)]
        score_logprobs: list[list[dict[int, float]]] = [[] for _ in range(batch)]
        finish: list[str | None] = [None] * batch
        for row, limit in enumerate(limits):
            if limit <= 0:
                finish[row] = "length"
        streamed = ""

        def check_cancel() -> None:
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled()

        check_cancel()
        input_ids, attention_mask, position_ids = self._left_padded(prompts)
        with torch.inference_mode():
            cache = DynamicCache(config=self._model.config)
            output = self._forward(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                cache=cache,
                use_cache=True,
                logits_to_keep=1,
            )
            next_position = position_ids[:, -1] + 1
            while any(reason is None for reason in finish):
                logprobs = torch.log_softmax(output.logits[:, -1, :].float(), dim=-1)
                chosen = torch.argmax(logprobs, dim=-1)
                chosen_logprob = logprobs.gather(1, chosen.unsqueeze(1)).squeeze(1)
                scored = logprobs.index_select(1, in_vocab_index) if in_vocab else None
                chosen_list = chosen.tolist()
                chosen_logprob_list = chosen_logprob.tolist()
                scored_rows = scored.tolist() if scored is not None else [[] for _ in range(batch)]

                for row in range(batch):
                    if finish[row] is not None:
                        continue
                    token = int(chosen_list[row])
                    token_ids[row].append(token)
                    token_logprobs[row].append(float(chosen_logprob_list[row]))
                    values = dict(zip(in_vocab, scored_rows[row]))
                    score_logprobs[row].append({t: values.get(t, MISSING_LOGPROB) for t in wanted})
                    if token == self.eos_token_id:
                        finish[row] = "eos"
                    elif token in stop_ids:
                        finish[row] = "stop"
                    elif len(token_ids[row]) >= limits[row]:
                        finish[row] = "length"
                    if stream is not None:
                        streamed = self._stream_delta(stream, token, token_ids[row], streamed, finish[row] is not None)

                if all(reason is not None for reason in finish):
                    break
                check_cancel()
                # Finished rows keep a slot in the batch: they are fed padding that nothing attends to.
                active = torch.tensor([reason is None for reason in finish], device=self.device)
                step_ids = torch.where(active, chosen, torch.full_like(chosen, self._pad_id)).unsqueeze(1)
                attention_mask = torch.cat([attention_mask, active.long().unsqueeze(1)], dim=1)
                output = self._forward(
                    input_ids=step_ids,
                    attention_mask=attention_mask,
                    position_ids=next_position.unsqueeze(1),
                    cache=output.cache,
                    use_cache=True,
                )
                next_position = next_position + 1

        generations = []
        for row in range(batch):
            generations.append(
                Generation(
                    token_ids=token_ids[row],
                    text=self.decode(token_ids[row]),
                    token_logprobs=token_logprobs[row],
                    score_logprobs=score_logprobs[row],
                    cumulative_logprob=float(sum(token_logprobs[row])),
                    finish_reason=finish[row],  # type: ignore[arg-type]
                    logprob_source="exact",
                )
            )
        return generations

    def _stream_delta(self, on_token: TokenCallback, token: int, ids: list[int], streamed: str, last: bool) -> str:
        """Send the text the new token completes; hold back a trailing partial UTF-8 character until it is whole."""
        text = self.decode(ids)
        if text.endswith("\ufffd") and not last:
            on_token(token, "")
            return streamed
        # Decoding a longer id list only appends text (Llama decoders strip one leading space, at the start only).
        delta = text[len(streamed):]
        on_token(token, delta)
        return streamed + delta

    def next_token_logprobs(
        self, prompts: Sequence[Sequence[int]], token_ids: Sequence[int]
    ) -> list[dict[int, float]]:
        """One forward pass over the batch; float32 log-softmax of the last position, gathered at `token_ids`."""
        if not prompts:
            return []
        self._check_prompts(prompts)
        torch = self._torch
        wanted = [int(t) for t in token_ids]
        in_vocab = [t for t in dict.fromkeys(wanted) if 0 <= t < self._vocab_size]
        input_ids, attention_mask, position_ids = self._left_padded(prompts)
        with torch.inference_mode():
            output = self._forward(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                use_cache=False,
                logits_to_keep=1,
            )
            logprobs = torch.log_softmax(output.logits[:, -1, :].float(), dim=-1)
            rows = logprobs.index_select(1, torch.tensor(in_vocab, dtype=torch.long, device=self.device)).tolist() \
                if in_vocab else [[] for _ in prompts]
        results = []
        for row in rows:
            values = dict(zip(in_vocab, row))
            results.append({t: values.get(t, MISSING_LOGPROB) for t in wanted})
        return results
