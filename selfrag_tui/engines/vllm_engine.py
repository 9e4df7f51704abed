"""vLLM in-process: the fast path on an NVIDIA GPU (SELFRAG_SPEC section 7).

Why it is written this way:

- All prompts of one decoder step (the K passage candidates) go to vLLM together, so they are scheduled as one
  continuous batch; prefix caching is on, so the shared instruction prefix is computed once per step.
- The reflection ids' logprobs are asked for directly with `SamplingParams.logprob_token_ids`, the way vLLM's own
  OpenAI server does: `logprobs=None` with the ids (vLLM 0.32 rejects `logprobs` set to anything but the number of
  ids). vLLM then returns at every position the sampled token's logprob first, which the sequence score needs, and
  the ids' (`logprob_source="exact"`). When the installed vLLM lacks the field or rejects that request shape, the
  engine asks for the top `k <= 20` logprobs instead and counts ids outside them as -100 (`logprob_source="topk"`);
  `info()` and `doctor` say so and why. Full-vocabulary or 5,000-id logprob requests, as the official Self-RAG code
  made, cut throughput several-fold and are never made.
- Logprob values are `Logprob` objects in current vLLM (`.logprob`); the conversion helpers below accept those
  and plain floats, so they are tested without a GPU.
- Requests are driven step by step through `LLM.llm_engine` so a set cancel event aborts them between tokens,
  and a single prompt streams its tokens.

vLLM is an optional extra (`pip install 'selfrag-chat[vllm]'`), imported only when this engine loads.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from selfrag_tui.engines.base import (
    MISSING_LOGPROB,
    EngineError,
    EngineInfo,
    FinishReason,
    Generation,
    GenerationCancelled,
    LogprobSource,
    TokenCallback,
    import_or_raise,
)

# vLLM's default `max_logprobs`; also the OpenAI API's cap on top logprobs.
DEFAULT_TOP_LOGPROBS = 20

NO_CUDA_MESSAGE = (
    "The vLLM engine needs an NVIDIA GPU with CUDA, and none is available here ({reason}). Use another engine: "
    'model.engine = "llamacpp" with a GGUF file of the model (CPU laptops), "transformers" (CPU or GPU, slower), '
    'or "openai" pointed at a `vllm serve` endpoint on a GPU machine (SELFRAG_MODEL__ENGINE=... or --engine ...).'
)


# ---------------------------------------------------------------------------------------------------------------
# Pure conversion helpers: plain data in, plain data out (no vLLM import).


def logprob_value(entry: Any) -> float:
    """The float of one logprob entry: a vLLM `Logprob` object (`.logprob`) or a plain number."""
    value = getattr(entry, "logprob", entry)
    return float(value)


def step_logprobs(step: Mapping[int, Any] | None, score_ids: Iterable[int]) -> dict[int, float]:
    """The requested ids' logprobs at one position, from vLLM's `{token_id: Logprob}` dict.

    Ids vLLM did not return are left out; `Generation.logprob_at` reads them as -100 (spec section 3/4).
    """
    if not step:
        return {}
    wanted = set(score_ids)
    return {int(token_id): logprob_value(entry) for token_id, entry in step.items() if int(token_id) in wanted}


def chosen_logprob(step: Mapping[int, Any] | None, token_id: int) -> float:
    """Logprob of the generated token at one position (vLLM always returns the sampled token's entry)."""
    if not step or token_id not in step:
        return MISSING_LOGPROB
    return logprob_value(step[token_id])


def finish_reason_of(
    vllm_reason: str | None, stop_reason: int | str | None, token_ids: Sequence[int], eos_token_id: int
) -> FinishReason:
    """Map vLLM's (`finish_reason`, `stop_reason`) to ours: a stop id gives "stop", EOS "eos", the cap "length"."""
    if vllm_reason == "length":
        return "length"
    if vllm_reason == "abort":
        return "cancelled"
    if isinstance(stop_reason, int) and stop_reason != eos_token_id:
        return "stop"
    if token_ids and token_ids[-1] == eos_token_id:
        return "eos"
    # vLLM reports EOS as "stop" with stop_reason None; the EOS id may be dropped from token_ids.
    return "eos" if stop_reason is None else "stop"


def generation_from_output(
    output: Any,
    *,
    score_ids: Sequence[int],
    eos_token_id: int,
    decode: Callable[[Sequence[int]], str],
    logprob_source: LogprobSource,
) -> Generation:
    """Build a `Generation` from one vLLM `CompletionOutput` (read by attribute: token_ids, logprobs,
    finish_reason, stop_reason).

    Text is decoded from the ids with special tokens kept, so it never depends on how the server-side
    detokenizer treats special tokens.
    """
    token_ids = [int(t) for t in output.token_ids]
    steps = list(output.logprobs or [])
    if len(steps) < len(token_ids):
        steps += [None] * (len(token_ids) - len(steps))
    token_logprobs = [chosen_logprob(step, token_id) for step, token_id in zip(steps, token_ids)]
    return Generation(
        token_ids=token_ids,
        text=decode(token_ids),
        token_logprobs=token_logprobs,
        score_logprobs=[step_logprobs(step, score_ids) for step in steps[: len(token_ids)]],
        cumulative_logprob=float(sum(token_logprobs)),
        finish_reason=finish_reason_of(
            getattr(output, "finish_reason", None), getattr(output, "stop_reason", None), token_ids, eos_token_id
        ),
        logprob_source=logprob_source,
    )


def has_logprob_token_ids(sampling_params_cls: Any) -> bool:
    """Whether this vLLM's `SamplingParams` can return the logprobs of chosen token ids (`logprob_token_ids`)."""
    fields = getattr(sampling_params_cls, "__struct_fields__", None)  # msgspec Struct in current vLLM
    if fields is None:
        fields = getattr(sampling_params_cls, "__dataclass_fields__", None) or {}
        fields = tuple(fields)
    if "logprob_token_ids" in fields:
        return True
    import inspect

    try:
        return "logprob_token_ids" in inspect.signature(sampling_params_cls).parameters
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class LogprobRequest:
    """How reflection logprobs are asked of vLLM for one call."""

    logprobs: int | None
    logprob_token_ids: tuple[int, ...] | None
    source: LogprobSource

    def sampling_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"logprobs": self.logprobs}
        if self.logprob_token_ids is not None:
            kwargs["logprob_token_ids"] = list(self.logprob_token_ids)
        return kwargs


def plan_logprob_request(score_ids: Sequence[int], *, exact_supported: bool, max_logprobs: int) -> LogprobRequest:
    """Exact ids when vLLM takes them; otherwise top-k capped by `max_logprobs` (and at 20).

    The exact request leaves `logprobs` unset, as vLLM's server does: the sampled token's logprob comes back at
    every position anyway. With no ids to score, `logprobs=0` asks for the sampled token's logprob alone.
    """
    ids = tuple(dict.fromkeys(int(i) for i in score_ids))
    if exact_supported:
        if not ids:
            return LogprobRequest(logprobs=0, logprob_token_ids=None, source="exact")
        return LogprobRequest(logprobs=None, logprob_token_ids=ids, source="exact")
    top_k = max(1, min(DEFAULT_TOP_LOGPROBS, max_logprobs))
    return LogprobRequest(logprobs=top_k, logprob_token_ids=None, source="topk")


@dataclass(frozen=True)
class VocabularyLimits:
    """What vLLM's logprob validation reads from the model config: vocabulary size, `max_logprobs`, context."""

    vocab_size: int
    max_logprobs: int
    max_model_len: int = 4096

    def get_vocab_size(self) -> int:
        return self.vocab_size


def rejected_request_shape(
    sampling_params_cls: Any,
    *,
    score_ids: Sequence[int],
    vocab_size: int,
    max_logprobs: int,
    model_config: Any = None,
) -> str | None:
    """Why this vLLM refuses the exact-ids request shape, or None when it takes it.

    Builds the `SamplingParams` the engine sends and runs vLLM's own logprob validation on it (the check vLLM makes
    in `add_request`) against `model_config`: the loaded model's own config at load, or for `doctor`, which loads
    nothing, the vocabulary size and `max_logprobs` that validation reads.
    """
    if not has_logprob_token_ids(sampling_params_cls):
        return "this vLLM's SamplingParams has no logprob_token_ids field"
    plan = plan_logprob_request(score_ids, exact_supported=True, max_logprobs=max_logprobs)
    try:
        params = sampling_params_cls(temperature=0.0, max_tokens=1, **plan.sampling_kwargs())
        validate = getattr(params, "_validate_logprobs", None)
        if validate is not None:
            validate(model_config or VocabularyLimits(vocab_size=vocab_size, max_logprobs=max_logprobs))
    except Exception as exc:  # noqa: BLE001 - vLLM raises ValueError, TypeError or its own VLLMValidationError
        return f"{type(exc).__name__}: {exc}"
    return None


def is_request_rejection(exc: BaseException) -> bool:
    """Whether `exc` is vLLM refusing a request's parameters (not a crash of the engine)."""
    if isinstance(exc, (ValueError, TypeError)):
        return True
    return any(cls.__name__ in ("VLLMValidationError", "VLLMClientError") for cls in type(exc).__mro__)


# ---------------------------------------------------------------------------------------------------------------


def require_cuda() -> None:
    """Raise an EngineError with other engines to use when there is no CUDA device."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a core dependency
        raise EngineError(NO_CUDA_MESSAGE.format(reason=f"torch is missing: {exc}")) from exc
    if not torch.cuda.is_available():
        raise EngineError(NO_CUDA_MESSAGE.format(reason="torch.cuda.is_available() is False"))


def require_vllm():
    return import_or_raise("vllm", extra="vllm", what="The vLLM engine")


class VllmEngine:
    """Greedy Self-RAG generation with vLLM's `LLM` on one or more NVIDIA GPUs."""

    name = "vllm"

    def __init__(self, llm: Any, *, model_name: str, max_context: int, max_logprobs: int) -> None:
        vllm = require_vllm()
        self._llm = llm
        self._sampling_params_cls = vllm.SamplingParams
        self._tokens_prompt = _tokens_prompt_factory(vllm)
        self._tokenizer = llm.get_tokenizer()
        self.model_name = model_name
        self.max_context = max_context
        self.max_logprobs = max_logprobs
        self.eos_token_id = int(self._tokenizer.eos_token_id)
        self.logprob_fallback = rejected_request_shape(
            self._sampling_params_cls,
            score_ids=self._reflection_ids(),
            vocab_size=self._vocab_size(),
            max_logprobs=max_logprobs,
            model_config=getattr(getattr(llm, "llm_engine", None), "model_config", None),
        )
        """Why reflection logprobs are top-k instead of exact (None while exact)."""
        self._request_ids = itertools.count()
        self._lock = threading.Lock()

    @property
    def exact_logprobs(self) -> bool:
        return self.logprob_fallback is None

    def _reflection_ids(self) -> list[int]:
        from selfrag_tui.reflection import REFLECTION_TOKENS

        ids = [self.token_id(token) for token in REFLECTION_TOKENS]
        return [i for i in ids if i is not None]

    def _vocab_size(self) -> int:
        config = getattr(getattr(self._llm, "llm_engine", None), "model_config", None)
        get_vocab_size = getattr(config, "get_vocab_size", None)
        return int(get_vocab_size()) if get_vocab_size is not None else len(self._tokenizer)

    @classmethod
    def load(
        cls,
        model: str,
        *,
        dtype: str = "auto",
        tensor_parallel_size: int = 1,
        gpu_memory_utilization: float = 0.85,
        max_model_len: int | None = 4096,
        max_logprobs: int = DEFAULT_TOP_LOGPROBS,
        enable_prefix_caching: bool = True,
        seed: int = 0,
    ) -> "VllmEngine":
        require_cuda()
        vllm = require_vllm()
        try:
            llm = vllm.LLM(
                model=model,
                dtype=dtype,
                tensor_parallel_size=tensor_parallel_size,
                gpu_memory_utilization=gpu_memory_utilization,
                max_model_len=max_model_len,
                max_logprobs=max_logprobs,
                enable_prefix_caching=enable_prefix_caching,
                seed=seed,
            )
        except (OSError, ValueError, RuntimeError) as exc:
            raise EngineError(
                f"vLLM could not load the model '{model}': {exc}. Check model.model (a hub name already in the "
                f"local cache or a local folder), model.gpu_memory_utilization ({gpu_memory_utilization}) and "
                f"model.max_model_len ({max_model_len}); 'selfrag-chat doctor' shows GPU memory and the model's size."
            ) from exc
        context = max_model_len or int(getattr(llm.llm_engine.model_config, "max_model_len", 4096))
        return cls(llm, model_name=model, max_context=context, max_logprobs=max_logprobs)

    # -- tokenizer -----------------------------------------------------------------------------------------------
    def encode(self, text: str, *, add_bos: bool = True) -> list[int]:
        # The Hugging Face tokenizer parses added tokens such as [Retrieval] as single ids.
        ids = list(self._tokenizer.encode(text, add_special_tokens=False))
        bos = self._tokenizer.bos_token_id
        return [int(bos)] + ids if add_bos and bos is not None else ids

    def decode(self, token_ids: Sequence[int]) -> str:
        return self._tokenizer.decode(list(token_ids), skip_special_tokens=False)

    def token_id(self, token: str) -> int | None:
        token_id = self._tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == self._tokenizer.unk_token_id:
            return None
        return int(token_id)

    def info(self) -> EngineInfo:
        extra = {"max_logprobs": str(self.max_logprobs)}
        if self.logprob_fallback is not None:
            extra["logprob_fallback"] = (
                f"top-{plan_logprob_request((), exact_supported=False, max_logprobs=self.max_logprobs).logprobs} "
                f"logprobs with the -100 rule, because vLLM refused the exact request: {self.logprob_fallback}"
            )
        return EngineInfo(
            engine=self.name,
            model=self.model_name,
            device="cuda",
            dtype=str(getattr(self._llm.llm_engine.model_config, "dtype", "auto")),
            logprob_source="exact" if self.exact_logprobs else "topk",
            extra=extra,
        )

    # -- generation ------------------------------------------------------------------------------------------------
    def _sampling_params(self, *, max_tokens: int, stop_token_ids: Sequence[int], score_ids: Sequence[int]):
        plan = plan_logprob_request(score_ids, exact_supported=self.exact_logprobs, max_logprobs=self.max_logprobs)
        params = self._sampling_params_cls(
            temperature=0.0,
            max_tokens=max_tokens,
            stop_token_ids=list(stop_token_ids),
            skip_special_tokens=False,
            spaces_between_special_tokens=False,
            **plan.sampling_kwargs(),
        )
        return params, plan

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
        if not prompts:
            return []
        request = dict(max_tokens=max_new_tokens, stop_token_ids=stop_token_ids, score_ids=score_ids)
        params, plan = self._sampling_params(**request)
        stream = on_token if len(prompts) == 1 else None
        try:
            outputs = self._run(prompts, params, cancel=cancel, on_token=stream)
        except Exception as exc:
            if plan.source != "exact" or not plan.logprob_token_ids or not is_request_rejection(exc):
                raise
            # This vLLM refused the exact-ids shape after all: top-k from now on, and say so in info().
            self.logprob_fallback = f"{type(exc).__name__}: {exc}"
            params, plan = self._sampling_params(**request)
            outputs = self._run(prompts, params, cancel=cancel, on_token=stream)
        return [
            generation_from_output(
                output,
                score_ids=score_ids,
                eos_token_id=self.eos_token_id,
                decode=self.decode,
                logprob_source=plan.source,
            )
            for output in outputs
        ]

    def next_token_logprobs(
        self, prompts: Sequence[Sequence[int]], token_ids: Sequence[int]
    ) -> list[dict[int, float]]:
        generations = self.generate(prompts, max_new_tokens=1, score_ids=token_ids)
        return [
            {int(t): generation.logprob_at(0, int(t)) for t in token_ids} for generation in generations
        ]

    def _run(
        self,
        prompts: Sequence[Sequence[int]],
        params: Any,
        *,
        cancel: threading.Event | None,
        on_token: TokenCallback | None,
    ) -> list[Any]:
        """Run the prompts as one batch, stepping the engine so cancellation and streaming work between tokens."""
        engine = getattr(self._llm, "llm_engine", None)
        steppable = engine is not None and all(
            hasattr(engine, name) for name in ("add_request", "step", "has_unfinished_requests", "abort_request")
        )
        if not steppable:  # pragma: no cover - depends on the vLLM version
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled()
            results = self._llm.generate([self._tokens_prompt(p) for p in prompts], params, use_tqdm=False)
            return [result.outputs[0] for result in results]

        with self._lock:  # one engine loop at a time: requests of two callers must not interleave
            ids = [f"selfrag-{next(self._request_ids)}" for _ in prompts]
            added: list[str] = []
            finished: dict[str, Any] = {}
            streamed = 0
            try:
                for request_id, prompt in zip(ids, prompts):
                    # vLLM validates the sampling parameters here and raises on a shape it refuses.
                    engine.add_request(request_id, self._tokens_prompt(prompt), params)
                    added.append(request_id)
                while engine.has_unfinished_requests():
                    if cancel is not None and cancel.is_set():
                        raise GenerationCancelled()
                    for result in engine.step():
                        output = result.outputs[0]
                        if on_token is not None:
                            new_ids = list(output.token_ids)[streamed:]
                            for token_id in new_ids:
                                on_token(int(token_id), self.decode([token_id]))
                            streamed += len(new_ids)
                        if result.finished:
                            finished[result.request_id] = output
            except BaseException:
                pending = [request_id for request_id in added if request_id not in finished]
                if pending:
                    engine.abort_request(pending)
                raise
        return [finished[request_id] for request_id in ids]

    def close(self) -> None:
        """Free GPU memory: drop the engine and let torch release its cache."""
        self._llm = None
        try:
            import gc

            import torch

            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:  # pragma: no cover
            pass


def _tokens_prompt_factory(vllm: Any) -> Callable[[Sequence[int]], Any]:
    """`TokensPrompt(prompt_token_ids=...)`: prompts go in as ids, never re-tokenised text."""
    try:
        from vllm.inputs import TokensPrompt
    except ImportError:  # pragma: no cover - very old vLLM
        return lambda ids: {"prompt_token_ids": list(ids)}
    return lambda ids: TokensPrompt(prompt_token_ids=[int(i) for i in ids])
