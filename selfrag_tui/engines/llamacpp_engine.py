"""llama.cpp in-process: GGUF files of the Self-RAG model on CPU laptops, offline (SELFRAG_SPEC section 7).

Why it is written this way:

- The model runs with `logits_all=True`, so every evaluated position keeps its full logits row. Greedy decoding
  takes the argmax of that row and the reflection ids are scored from a float32 log-softmax over the whole row:
  the logprobs are exact (`logprob_source="exact"`), as with the transformers engine.
- Prompts go in as token ids. Text is tokenised with `special=True`, so `[Retrieval]` in a prompt is the single
  added id and not the pieces `[`, `Ret`, ... A GGUF whose vocabulary lacks any Self-RAG token is refused at load
  time: scoring with it would silently compare garbage.
- The K candidates of one step run one after the other in a single llama.cpp context; each reuses the key/value
  cache of the prefix it shares with the previous prompt, so the instruction is evaluated once per step.
- A set cancel event stops generation between tokens.

Quantised files (q4_k_m, q8_0, ...) run faster and smaller, but 4-bit quantisation shifts logits enough to flip
critique decisions that were near a tie in fp16 (e.g. ISREL at 0.49 vs 0.51); prefer q8_0 or f16 when the
critiques matter.

llama-cpp-python is an optional extra (`pip install 'selfrag-chat[llamacpp]'`), imported only when this engine
loads.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Sequence

from selfrag_tui.engines.base import (
    EngineError,
    EngineInfo,
    FinishReason,
    Generation,
    GenerationCancelled,
    TokenCallback,
    import_or_raise,
)


def log_softmax_row(logits: Any) -> Any:
    """Float32 log-softmax of one logits row (numpy), stable against large logits."""
    import numpy as np

    row = np.asarray(logits, dtype=np.float32)
    top = row.max()
    shifted = row - top
    return shifted - np.log(np.exp(shifted).sum(dtype=np.float32))


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


class LlamaCppEngine:
    """Greedy Self-RAG generation with llama.cpp over a GGUF file."""

    name = "llamacpp"

    def __init__(self, llama: Any, *, model_path: Path, tokenizer: Any = None) -> None:
        self._llama = llama
        self._hf_tokenizer = tokenizer
        self.model_name = str(model_path)
        self.max_context = int(llama.n_ctx())
        self.eos_token_id = int(llama.token_eos())
        self.bos_token_id = int(llama.token_bos())
        self.n_vocab = int(llama.n_vocab())
        self._lock = threading.Lock()

    @classmethod
    def load(
        cls,
        model: str | Path,
        *,
        n_threads: int | None = None,
        max_context: int | None = 4096,
        n_gpu_layers: int = 0,
        seed: int = 0,
        tokenizer: str | None = None,
        check_vocab: bool = True,
        kv_cache_dtype: str = "f16",
    ) -> "LlamaCppEngine":
        """Load a GGUF file. `tokenizer` (a Hugging Face folder or cached hub name) makes prompts tokenise exactly
        as in the transformers engine; without it llama.cpp's own tokenizer is used, which puts a space after
        special tokens the way Llama-2's original (legacy) tokenizer does."""
        # ggml type ids of the attention cache (GGML_TYPE_F32 = 0, GGML_TYPE_F16 = 1).
        kv_types = {"f32": 0, "f16": 1}
        if kv_cache_dtype not in kv_types:
            raise EngineError(f"model.kv_cache_dtype must be 'f16' or 'f32', not '{kv_cache_dtype}'.")
        kv_type = kv_types[kv_cache_dtype]
        path = Path(model).expanduser()
        if path.suffix.lower() != ".gguf":
            raise EngineError(
                f"The llama.cpp engine needs a .gguf file, but model.model is '{model}'. Point model.model at a "
                f"GGUF file of the Self-RAG model (e.g. a q8_0 or f16 conversion), or use engine \"transformers\" "
                f"for a Hugging Face folder or hub name."
            )
        if not path.is_file():
            raise EngineError(
                f"The GGUF file '{path}' does not exist. Set model.model (or --model) to the path of a GGUF file of "
                f"the Self-RAG model; 'selfrag-chat doctor' checks it."
            )
        llama_cpp = import_or_raise("llama_cpp", extra="llamacpp", what="The llama.cpp engine")
        try:
            llama = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=max_context or 0,  # 0: the model's own context length
                n_threads=n_threads,
                n_threads_batch=n_threads,
                n_gpu_layers=n_gpu_layers,
                logits_all=True,
                seed=seed,
                type_k=kv_type,
                type_v=kv_type,
                verbose=False,
            )
        except (ValueError, RuntimeError) as exc:
            raise EngineError(
                f"llama.cpp could not load '{path}': {exc}. The file may be truncated or from a newer llama.cpp; "
                f"re-download it or re-convert it with convert_hf_to_gguf.py."
            ) from exc
        hf_tokenizer = None
        if tokenizer:
            from selfrag_tui.engines.tokenizer import load_tokenizer

            hf_tokenizer = load_tokenizer(tokenizer)
        engine = cls(llama, model_path=path, tokenizer=hf_tokenizer)
        if check_vocab:
            engine.check_reflection_vocab()
        return engine

    def check_reflection_vocab(self) -> None:
        """Refuse a GGUF whose vocabulary lacks the Self-RAG tokens or splits them into pieces."""
        from selfrag_tui.reflection import MissingReflectionTokens, ReflectionVocab

        try:
            vocab = ReflectionVocab.from_engine(self)
        except MissingReflectionTokens as exc:
            raise EngineError(
                f"{exc} (GGUF file: {self.model_name}; convert the Self-RAG checkpoint itself with llama.cpp's "
                f"convert_hf_to_gguf.py so its 16 added tokens are in the GGUF vocabulary)"
            ) from exc
        if self._hf_tokenizer is not None:
            gguf_ids = {token: self._gguf_token_id(token) for token in vocab.ids}
            differing = [token for token, token_id in vocab.ids.items() if gguf_ids[token] != token_id]
            if differing:
                raise EngineError(
                    f"The GGUF file {self.model_name} and the tokenizer given in model.tokenizer disagree on the ids "
                    f"of {', '.join(differing)}: they come from different models. Use the tokenizer of the model the "
                    f"GGUF was converted from, or leave model.tokenizer unset."
                )

    def info(self) -> EngineInfo:
        return EngineInfo(engine=self.name, model=self.model_name, device="cpu", dtype="gguf", logprob_source="exact")

    # -- tokenizer -----------------------------------------------------------------------------------------------
    def encode(self, text: str, *, add_bos: bool = True) -> list[int]:
        if self._hf_tokenizer is not None:
            ids = [int(t) for t in self._hf_tokenizer.encode(text, add_special_tokens=False)]
            return [self.bos_token_id] + ids if add_bos else ids
        return [int(t) for t in self._llama.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)]

    def decode(self, token_ids: Sequence[int]) -> str:
        ids = [int(t) for t in token_ids if int(t) != self.bos_token_id]
        if self._hf_tokenizer is not None:
            return self._hf_tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
        return self._llama.detokenize(ids, special=True).decode("utf-8", errors="replace")

    def token_id(self, token: str) -> int | None:
        if self._hf_tokenizer is not None:
            token_id = self._hf_tokenizer.convert_tokens_to_ids(token)
            if token_id is None or token_id == self._hf_tokenizer.unk_token_id:
                return None
            return int(token_id)
        return self._gguf_token_id(token)

    def _gguf_token_id(self, token: str) -> int | None:
        ids = self._llama.tokenize(token.encode("utf-8"), add_bos=False, special=True)
        if len(ids) != 1:
            return None
        token_id = int(ids[0])
        # A single id is not enough: it must render back as the same text (not an unknown or byte token).
        if self._llama.detokenize([token_id], special=True).decode("utf-8", errors="replace") != token:
            return None
        return token_id

    # -- generation ------------------------------------------------------------------------------------------------
    def _prime(self, prompt: Sequence[int]) -> None:
        """Evaluate `prompt`, reusing the cached prefix it shares with what the context holds."""
        llama = self._llama
        if not prompt:
            raise EngineError("The llama.cpp engine got an empty prompt; prompts start with the BOS token.")
        if len(prompt) >= self.max_context:
            raise EngineError(
                f"The prompt has {len(prompt)} tokens, more than the llama.cpp context of {self.max_context}; "
                f"raise model.max_model_len or use fewer or shorter passages (decoding.k)."
            )
        cached = llama.input_ids[: llama.n_tokens].tolist()
        reuse = common_prefix_length(cached, prompt)
        if reuse == len(prompt) and reuse > 0:
            # The logits row of the last prompt token is still the one computed for this exact prefix.
            llama.n_tokens = reuse
            return
        llama.n_tokens = reuse  # eval() drops the key/value cache beyond n_tokens first
        llama.eval(list(prompt[reuse:]))

    def _generate_one(
        self,
        prompt: Sequence[int],
        *,
        max_new_tokens: int,
        stop_token_ids: set[int],
        score_ids: Sequence[int],
        cancel: threading.Event | None,
        on_token: TokenCallback | None,
    ) -> Generation:
        import numpy as np

        llama = self._llama
        self._prime(prompt)
        score_index = np.asarray(list(score_ids), dtype=np.int64)
        token_ids: list[int] = []
        token_logprobs: list[float] = []
        score_logprobs: list[dict[int, float]] = []
        finish: FinishReason = "length"
        budget = min(max_new_tokens, self.max_context - len(prompt))
        for _ in range(budget):
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled()
            logits = llama.scores[llama.n_tokens - 1]
            logprobs = log_softmax_row(logits)
            token = int(np.argmax(logits))
            token_ids.append(token)
            token_logprobs.append(float(logprobs[token]))
            score_logprobs.append(
                {int(i): float(lp) for i, lp in zip(score_index.tolist(), logprobs[score_index].tolist())}
            )
            if on_token is not None:
                previous = list(prompt) + token_ids[:-1]
                piece = llama.detokenize([token], prev_tokens=previous, special=True)
                on_token(token, piece.decode("utf-8", errors="replace"))
            if token == self.eos_token_id:
                finish = "eos"
                break
            if token in stop_token_ids:
                finish = "stop"
                break
            if len(token_ids) < budget:
                llama.eval([token])
        return Generation(
            token_ids=token_ids,
            text=self.decode(token_ids),
            token_logprobs=token_logprobs,
            score_logprobs=score_logprobs,
            cumulative_logprob=float(sum(token_logprobs)),
            finish_reason=finish,
            logprob_source="exact",
        )

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
        stops = {int(t) for t in stop_token_ids}
        results = []
        with self._lock:  # one llama.cpp context: calls from two threads must not interleave
            for prompt in prompts:
                results.append(
                    self._generate_one(
                        [int(t) for t in prompt],
                        max_new_tokens=max_new_tokens,
                        stop_token_ids=stops,
                        score_ids=score_ids,
                        cancel=cancel,
                        on_token=on_token if len(prompts) == 1 else None,
                    )
                )
        return results

    def next_token_logprobs(
        self, prompts: Sequence[Sequence[int]], token_ids: Sequence[int]
    ) -> list[dict[int, float]]:
        results = []
        with self._lock:
            for prompt in prompts:
                self._prime([int(t) for t in prompt])
                logprobs = log_softmax_row(self._llama.scores[self._llama.n_tokens - 1])
                results.append({int(t): float(logprobs[int(t)]) for t in token_ids})
        return results

    def close(self) -> None:
        llama, self._llama = self._llama, None
        if llama is not None:
            llama.close()
