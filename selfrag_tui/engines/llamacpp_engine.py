"""llama.cpp in-process: GGUF files of the Self-RAG model on CPU laptops, offline (SELFRAG_SPEC section 7).

Why it is written this way:

- Greedy decoding takes the argmax of each logits row, and the reflection ids are scored from a float32
  log-softmax over the whole row: the logprobs are exact (`logprob_source="exact"`), as with the transformers
  engine. Only the rows that are needed are computed and copied (the last prompt token and each new token).
- Prompts go in as token ids. Text is tokenised with `special=True`, so `[Retrieval]` in a prompt is the single
  added id and not the pieces `[`, `Ret`, ... A GGUF whose vocabulary lacks any Self-RAG token is refused at load
  time: scoring with it would silently compare garbage.
- The K candidates of one step run as parallel sequences of one llama.cpp batch. On a CPU a decode step is bound
  by reading the weights, so K tokens in one step cost little more than one (benchmarks/bench_cpu_7b.py). All
  sequences live in one unified key/value cache. Prompt tokens that several candidates share at the same place
  (the instruction, earlier segments, a passage title) are evaluated once, as one batch entry carrying every
  sequence id, so their cells serve them all.
- The cache is kept between calls: every sequence slot remembers the tokens its cells hold, and a new prompt
  continues from the slot holding its longest prefix (`llama_memory_seq_cp` lends the cells to another sequence
  without copying them). A long-form segment therefore evaluates only its new tokens (its marker and passage), not
  the question and earlier segments again; a segment that goes on after `max_new_tokens` evaluates one token.
  Slots that are not needed are evicted, least recently used first, when the cache is full; a batch that does not
  fit even then runs in smaller groups. Results do not depend on the grouping: every sequence sees only its own
  tokens, and the logprobs agree with one prompt at a time to ~1e-5 (f32 cache).
- A set cancel event stops generation between tokens (and between prompt chunks).

Quantised files (q4_k_m, q8_0, ...) run faster and smaller, but 4-bit quantisation shifts logits enough to flip
critique decisions that were near a tie in fp16 (e.g. ISREL at 0.49 vs 0.51); prefer q8_0 or f16 when the
critiques matter.

llama-cpp-python is an optional extra (`pip install 'selfrag-chat[llamacpp]'`), imported only when this engine
loads.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
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

# Sequence slots of the shared cache: K candidates of up to half of them run in one batch, the rest keep the
# prefixes of other paths (long-form beams) for the next calls. llama.cpp allows 256.
DEFAULT_SEQUENCES = 32
# Tokens per llama_decode call while reading prompts.
DEFAULT_BATCH = 512


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


class _NoRoom(Exception):
    """The cache cannot hold this batch even with every idle slot evicted."""


@dataclass
class _Running:
    """One prompt of a call while it runs in its slot."""

    prompt: list[int]
    slot: int
    budget: int
    have: int = 0
    """Prompt tokens the slot's cache already holds before the prompt is read."""
    logits: Any = None
    token_ids: list[int] = field(default_factory=list)
    token_logprobs: list[float] = field(default_factory=list)
    score_logprobs: list[dict[int, float]] = field(default_factory=list)
    finish: FinishReason = "length"


@dataclass
class EvalCounters:
    """What the engine ran through the model, for benchmarks and tests (cumulative since load)."""

    calls: int = 0
    prompt_tokens: int = 0
    """Tokens of every prompt handed in."""
    evaluated_tokens: int = 0
    """Prompt tokens actually run through the model (a prefix shared or cached is not run again)."""
    generated_tokens: int = 0
    decode_steps: int = 0
    """llama_decode calls while generating (one per step for all running candidates)."""
    prefill_s: float = 0.0
    decode_s: float = 0.0
    evictions: int = 0
    splits: int = 0


class _Runtime:
    """A llama.cpp context with one unified key/value cache and `n_slots` sequence slots."""

    def __init__(self, model: Any, ctx: Any, *, n_slots: int, n_batch: int, n_vocab: int) -> None:
        import llama_cpp

        self._lib = llama_cpp
        self.model = model
        self.ctx = ctx
        self.n_slots = n_slots
        self.n_batch = n_batch
        self.n_vocab = n_vocab
        self.cells = int(llama_cpp.llama_n_ctx(ctx.ctx))
        self.memory = llama_cpp.llama_get_memory(ctx.ctx)
        self.batch = llama_cpp.llama_batch_init(n_batch, 0, n_slots)
        self.slots: list[list[int]] = [[] for _ in range(n_slots)]
        self.last_used = [0] * n_slots
        self.clock = 0
        self.counters = EvalCounters()

    def close(self) -> None:
        if self.batch is not None:
            self._lib.llama_batch_free(self.batch)
            self.batch = None
        if self.ctx is not None:
            self.ctx.close()
            self.ctx = None
        if self.model is not None:
            self.model.close()
            self.model = None

    # -- the cache -------------------------------------------------------------------------------------------------
    def clear(self) -> None:
        self._lib.llama_memory_clear(self.memory, True)
        self.slots = [[] for _ in range(self.n_slots)]

    def _drop(self, slot: int, start: int = 0) -> None:
        """Forget positions >= start of a slot."""
        self._lib.llama_memory_seq_rm(self.memory, slot, start, -1)
        del self.slots[slot][start:]

    def _evict(self, protected: set[int]) -> bool:
        """Free the cells of the least recently used slot outside `protected`; False when none holds any."""
        idle = [s for s in range(self.n_slots) if s not in protected and self.slots[s]]
        if not idle:
            return False
        slot = min(idle, key=lambda s: self.last_used[s])
        self._drop(slot)
        self.counters.evictions += 1
        return True

    def best_match(self, prompt: Sequence[int], limit: int) -> tuple[int, int]:
        """(slot, length) of the cached prefix of `prompt` that is longest (at most `limit`); newest on ties."""
        best, best_len = -1, 0
        for slot, cached in enumerate(self.slots):
            n = min(common_prefix_length(cached, prompt), limit)
            if n > best_len or (n == best_len and n > 0 and self.last_used[slot] > self.last_used[best]):
                best, best_len = slot, n
        return best, best_len

    def place(self, prompts: list[list[int]]) -> tuple[list[int], list[int]]:
        """Give each prompt a slot holding as much of it as the cache has; return (slots, cached lengths).

        Every prompt keeps at least its last token to evaluate, which yields the logits of its next token.
        """
        self.clock += 1
        matches = [self.best_match(p, len(p) - 1) for p in prompts]
        # A source slot becomes the target of the prompt that keeps most of it; the others get fresh slots.
        claims: dict[int, int] = {}
        for i, (slot, length) in enumerate(matches):
            if length > 0 and (slot not in claims or length > matches[claims[slot]][1]):
                claims[slot] = i
        sources = {slot for slot, length in matches if length > 0}
        free = sorted(
            (s for s in range(self.n_slots) if s not in sources), key=lambda s: (bool(self.slots[s]), self.last_used[s])
        )
        targets: list[int] = []
        for i, (slot, length) in enumerate(matches):
            targets.append(slot if length > 0 and claims[slot] == i else free.pop(0))
        # Copy first (sources still whole), then cut claimed sources to the length their prompt keeps.
        for i, (slot, length) in enumerate(matches):
            target = targets[i]
            if target == slot:
                continue
            self._drop(target)
            if length > 0:
                self._lib.llama_memory_seq_cp(self.memory, slot, target, 0, length)
                self.slots[target] = list(self.slots[slot][:length])
        for i, (slot, length) in enumerate(matches):
            if targets[i] == slot:
                self._drop(slot, length)
        for target in targets:
            self.last_used[target] = self.clock
        return targets, [length for _, length in matches]

    # -- evaluation ------------------------------------------------------------------------------------------------
    def decode(self, items: list[tuple[int, int, Sequence[int], bool]], protected: set[int]) -> list[Any]:
        """Run `items` (token, position, slots, wants logits) through the model in one llama_decode call; return
        the logits rows asked for, in order. Evicts idle slots when the cache is full; raises _NoRoom when even
        that is not enough."""
        import numpy as np

        lib, batch = self._lib, self.batch
        batch.n_tokens = len(items)
        for j, (token, pos, slots, wants) in enumerate(items):
            batch.token[j] = token
            batch.pos[j] = pos
            batch.n_seq_id[j] = len(slots)
            for k, slot in enumerate(slots):
                batch.seq_id[j][k] = slot
            batch.logits[j] = 1 if wants else 0
        while True:
            code = lib.llama_decode(self.ctx.ctx, batch)
            if code == 0:
                break
            if code == 1 and self._evict(protected):
                continue
            if code == 1:
                raise _NoRoom()
            for slot in protected:  # a failed batch may leave part of itself in the cache
                self._drop(slot)
            raise EngineError(f"llama.cpp failed to evaluate a batch of {len(items)} tokens (llama_decode {code}).")
        rows = []
        for j, (token, _pos, slots, wants) in enumerate(items):
            for slot in slots:
                self.slots[slot].append(token)
            if wants:
                pointer = lib.llama_get_logits_ith(self.ctx.ctx, j)
                rows.append(np.ctypeslib.as_array(pointer, shape=(self.n_vocab,)).copy())
        return rows


class LlamaCppEngine:
    """Greedy Self-RAG generation with llama.cpp over a GGUF file."""

    name = "llamacpp"

    def __init__(
        self,
        llama: Any,
        *,
        model_path: Path,
        tokenizer: Any = None,
        runtime: _Runtime | None = None,
        max_context: int | None = None,
    ) -> None:
        """`llama` is a `llama_cpp.Llama` used for its tokenizer (it may be loaded with `vocab_only=True`);
        `runtime` is the context that generates (see `load`); without one the engine only tokenises."""
        self._llama = llama
        self._runtime = runtime
        self._hf_tokenizer = tokenizer
        self.model_name = str(model_path)
        self.max_context = int(max_context or llama.n_ctx())
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
        kv_cache_tokens: int | None = None,
        max_sequences: int = DEFAULT_SEQUENCES,
        n_batch: int = DEFAULT_BATCH,
    ) -> "LlamaCppEngine":
        """Load a GGUF file. `tokenizer` (a Hugging Face folder or cached hub name) makes prompts tokenise exactly
        as in the transformers engine; without it llama.cpp's own tokenizer is used, which puts a space after
        special tokens the way Llama-2's original (legacy) tokenizer does.

        `kv_cache_tokens` is the size of the key/value cache all sequences share (default: `max_context`, the
        memory a single sequence of full context needs: 2 GiB for the 7B model at f16); more lets more candidates
        and cached paths stay in memory at once. `n_threads` defaults to the CPUs this process may use."""
        del seed  # greedy decoding draws no random numbers
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
        from llama_cpp import _internals

        _quiet_llama_log(llama_cpp)
        threads = n_threads or _usable_cpus()
        try:
            model_params = llama_cpp.llama_model_default_params()
            model_params.n_gpu_layers = n_gpu_layers
            weights = _internals.LlamaModel(path_model=str(path), params=model_params, verbose=False)
        except (ValueError, RuntimeError) as exc:
            raise EngineError(
                f"llama.cpp could not load '{path}': {exc}. The file may be truncated or from a newer llama.cpp; "
                f"re-download it or re-convert it with convert_hf_to_gguf.py."
            ) from exc
        context = int(max_context or weights.n_ctx_train())
        cells = max(int(kv_cache_tokens or context), context)
        sequences = max(2, min(int(max_sequences), llama_cpp.llama_max_parallel_sequences()))
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = cells
        params.n_batch = n_batch
        params.n_ubatch = n_batch
        params.n_seq_max = sequences
        params.kv_unified = True
        params.n_threads = threads
        params.n_threads_batch = threads
        params.type_k = kv_type
        params.type_v = kv_type
        params.embeddings = False
        params.no_perf = True
        params.flash_attn_type = llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        try:
            ctx = _internals.LlamaContext(model=weights, params=params, verbose=False)
        except (ValueError, RuntimeError) as exc:
            weights.close()
            raise EngineError(
                f"llama.cpp could not make a {cells}-token cache for '{path}' ({exc}); lower model.max_model_len "
                f"or free memory."
            ) from exc
        llama = _Vocabulary(weights)
        runtime = _Runtime(weights, ctx, n_slots=sequences, n_batch=n_batch, n_vocab=int(llama.n_vocab()))
        hf_tokenizer = None
        if tokenizer:
            from selfrag_tui.engines.tokenizer import load_tokenizer

            hf_tokenizer = load_tokenizer(tokenizer)
        engine = cls(llama, model_path=path, tokenizer=hf_tokenizer, runtime=runtime, max_context=context)
        if check_vocab:
            try:
                engine.check_reflection_vocab()
            except EngineError:
                engine.close()
                raise
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

    # -- the cache -------------------------------------------------------------------------------------------------
    @property
    def counters(self) -> EvalCounters:
        """Tokens evaluated and generated since load (benchmarks/bench_cpu_7b.py reads them)."""
        return self._loaded().counters

    def clear_cache(self) -> None:
        """Forget every cached prefix: the next prompt is read from its first token."""
        with self._lock:
            self._loaded().clear()

    def _loaded(self) -> _Runtime:
        if self._runtime is None:
            raise EngineError(f"The llama.cpp engine for {self.model_name} was opened for its vocabulary only.")
        return self._runtime

    # -- generation ------------------------------------------------------------------------------------------------
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
        scored = [int(t) for t in score_ids]
        lists = [self._checked(prompt) for prompt in prompts]
        with self._lock:  # one llama.cpp context: calls from two threads must not interleave
            runs = self._run_all(lists, max_new_tokens, stops, scored, cancel, on_token if len(lists) == 1 else None)
        return [
            Generation(
                token_ids=run.token_ids,
                text=self.decode(run.token_ids),
                token_logprobs=run.token_logprobs,
                score_logprobs=run.score_logprobs,
                cumulative_logprob=float(sum(run.token_logprobs)),
                finish_reason=run.finish,
                logprob_source="exact",
            )
            for run in runs
        ]

    def next_token_logprobs(
        self, prompts: Sequence[Sequence[int]], token_ids: Sequence[int]
    ) -> list[dict[int, float]]:
        lists = [self._checked(prompt) for prompt in prompts]
        with self._lock:
            runs = self._run_all(lists, 0, set(), [], None, None)
        results = []
        for run in runs:
            logprobs = log_softmax_row(run.logits)
            results.append({int(t): float(logprobs[int(t)]) for t in token_ids})
        return results

    def _checked(self, prompt: Sequence[int]) -> list[int]:
        ids = [int(t) for t in prompt]
        if not ids:
            raise EngineError("The llama.cpp engine got an empty prompt; prompts start with the BOS token.")
        if len(ids) >= self.max_context:
            raise EngineError(
                f"The prompt has {len(ids)} tokens, more than the llama.cpp context of {self.max_context}; "
                f"raise model.max_model_len or use fewer or shorter passages (decoding.k)."
            )
        return ids

    def _run_all(
        self,
        prompts: list[list[int]],
        max_new_tokens: int,
        stops: set[int],
        score_ids: list[int],
        cancel: threading.Event | None,
        on_token: TokenCallback | None,
    ) -> list[_Running]:
        """Run the prompts in groups of at most half the slots (the other half keep cached prefixes); a group
        the cache cannot hold is halved until it fits."""
        runtime = self._loaded()
        runtime.counters.calls += 1
        group = max(1, runtime.n_slots // 2)
        pending = [prompts[i : i + group] for i in range(0, len(prompts), group)]
        results: list[_Running] = []
        while pending:
            chunk = pending.pop(0)
            try:
                results.extend(self._run_group(chunk, max_new_tokens, stops, score_ids, cancel, on_token))
            except _NoRoom:
                if len(chunk) == 1:
                    raise EngineError(
                        f"The llama.cpp cache of {runtime.cells} tokens cannot hold a prompt of {len(chunk[0])} "
                        f"tokens and its answer; raise model.max_model_len."
                    ) from None
                runtime.counters.splits += 1
                half = (len(chunk) + 1) // 2
                pending[:0] = [chunk[:half], chunk[half:]]
        return results

    def _run_group(
        self,
        prompts: list[list[int]],
        max_new_tokens: int,
        stops: set[int],
        score_ids: list[int],
        cancel: threading.Event | None,
        on_token: TokenCallback | None,
    ) -> list[_Running]:
        import numpy as np

        runtime = self._runtime
        assert runtime is not None
        counters = runtime.counters
        slots, cached = runtime.place(prompts)
        runs = [
            _Running(prompt, slot, min(max_new_tokens, self.max_context - len(prompt)), have=cached[i])
            for i, (prompt, slot) in enumerate(zip(prompts, slots))
        ]
        protected = set(slots)
        items, owners = _prompt_items(runs)
        counters.prompt_tokens += sum(len(p) for p in prompts)
        counters.evaluated_tokens += len(items)
        started = time.perf_counter()
        for begin in range(0, len(items), runtime.n_batch):
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled()
            chunk = items[begin : begin + runtime.n_batch]
            rows = iter(runtime.decode(chunk, protected))
            for waiting in owners[begin : begin + runtime.n_batch]:
                if waiting:
                    row = next(rows)
                    for run in waiting:
                        run.logits = row
        counters.prefill_s += time.perf_counter() - started
        if max_new_tokens <= 0:
            return runs
        # Generate: one step for every running candidate at once.
        started = time.perf_counter()
        score_index = np.asarray(score_ids, dtype=np.int64)
        active = [run for run in runs if run.budget > 0]
        while active:
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled()
            step: list[tuple[int, int, Sequence[int], bool]] = []
            going: list[_Running] = []
            for run in active:
                logprobs = log_softmax_row(run.logits)
                token = int(np.argmax(run.logits))
                run.token_ids.append(token)
                run.token_logprobs.append(float(logprobs[token]))
                run.score_logprobs.append(
                    dict(zip(score_ids, logprobs[score_index].tolist())) if score_ids else {}
                )
                if on_token is not None:
                    previous = run.prompt + run.token_ids[:-1]
                    piece = self._llama.detokenize([token], prev_tokens=previous, special=True)
                    on_token(token, piece.decode("utf-8", errors="replace"))
                if token == self.eos_token_id:
                    run.finish = "eos"
                elif token in stops:
                    run.finish = "stop"
                elif len(run.token_ids) < run.budget:
                    step.append((token, len(run.prompt) + len(run.token_ids) - 1, (run.slot,), True))
                    going.append(run)
            active = going
            if step:
                counters.decode_steps += 1
                for run, row in zip(going, runtime.decode(step, protected)):
                    run.logits = row
        counters.generated_tokens += sum(len(run.token_ids) for run in runs)
        counters.decode_s += time.perf_counter() - started
        return runs

    def close(self) -> None:
        runtime, self._runtime = self._runtime, None
        if runtime is not None:
            runtime.close()
        llama, self._llama = self._llama, None
        if llama is not None:
            llama.close()


def _prompt_items(runs: list[_Running]) -> tuple[list[tuple[int, int, list[int], bool]], list[list[_Running]]]:
    """The prompt tokens to evaluate, each once for every sequence whose prompt has the same tokens up to it.

    Prompts are walked through one token trie: a token that several prompts need at the same place (the
    instruction and earlier segments the K candidates share, a passage title two of them share) becomes one
    batch entry carrying all their sequence ids. Entries are ordered by position, so each sequence's tokens stay
    in order however the batch is cut. Returns the entries (token, position, slots, wants logits) and, for each,
    the prompts whose last token it is (they take its logits row).
    """
    trie: dict = {}
    entries: dict[int, int] = {}
    items: list[tuple[int, int, list[int], bool]] = []
    owners: list[list[_Running]] = []
    for run in runs:
        node = trie
        last = len(run.prompt) - 1
        for pos, token in enumerate(run.prompt):
            node = node.setdefault(token, {})
            if pos < run.have:
                continue
            index = entries.get(id(node))
            if index is None:
                index = entries[id(node)] = len(items)
                items.append((token, pos, [], False))
                owners.append([])
            items[index][2].append(run.slot)
            if pos == last:
                items[index] = (*items[index][:3], True)
                owners[index].append(run)
    order = sorted(range(len(items)), key=lambda i: items[i][1])
    return [items[i] for i in order], [owners[i] for i in order]


class _Vocabulary:
    """The tokenizer calls of `llama_cpp.Llama`, answered by the loaded model itself (no second context)."""

    def __init__(self, model: Any) -> None:
        self._model = model

    def tokenize(self, text: bytes, add_bos: bool = True, special: bool = False) -> list[int]:
        return self._model.tokenize(text, add_bos=add_bos, special=special)

    def detokenize(self, tokens: Sequence[int], prev_tokens: Sequence[int] | None = None, special: bool = False) -> bytes:
        del prev_tokens  # llama.cpp's pieces do not depend on earlier tokens
        return self._model.detokenize(list(tokens), special=special)

    def token_eos(self) -> int:
        return self._model.token_eos()

    def token_bos(self) -> int:
        return self._model.token_bos()

    def n_vocab(self) -> int:
        return self._model.n_vocab()

    def n_ctx(self) -> int:
        return self._model.n_ctx_train()

    def close(self) -> None:
        """The model is closed with the runtime that owns it."""


_LOG_CALLBACK: Any = None


def _quiet_llama_log(llama_cpp: Any) -> None:
    """Let only llama.cpp's errors reach stderr (where they would land in the terminal UI). llama-cpp-python's
    own filter reads ggml's log levels with an older numbering and lets warnings through, among them the
    "failed to find a memory slot" that precedes every eviction here."""
    global _LOG_CALLBACK
    if _LOG_CALLBACK is not None:
        return
    import ctypes
    import sys

    error, cont = 4, 5  # GGML_LOG_LEVEL_ERROR, GGML_LOG_LEVEL_CONT in current ggml
    state = {"error": False}

    @llama_cpp.llama_log_callback
    def callback(level: int, text: bytes, _user_data: Any) -> None:
        if level != cont:
            state["error"] = level == error
        if state["error"]:
            print(text.decode("utf-8", errors="replace"), end="", flush=True, file=sys.stderr)

    _LOG_CALLBACK = callback  # ctypes must keep the callback alive
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))


def _usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)
