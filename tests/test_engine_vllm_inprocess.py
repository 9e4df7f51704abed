"""The vLLM engine against vLLM's own code: the sampling parameters it sends pass vLLM's validation, and what it
reads comes from vLLM's own output classes, filled the way vLLM's engine fills them.

No GPU is needed: vLLM's request validation, its logprob containers (`create_sample_logprobs`,
`append_logprobs_for_next_position`) and its `Logprob`, `CompletionOutput` and `RequestOutput` classes are plain
Python. Only the model runner and scheduler are replaced, by `TinyModelLLM` below: the tiny Self-RAG model on the
CPU computes each next-token distribution, and the rows handed to vLLM's containers are laid out as vLLM's sampler
lays them out (the sampled token first, then the requested ids or the top k).

`make test` runs this file in the vLLM test environment (.venv/vllm-contract); in an environment without vLLM it
is skipped.
"""

from __future__ import annotations

import threading
from typing import Any, Sequence

import pytest

pytest.importorskip(
    "vllm.sampling_params",
    reason="vLLM's Python code is not importable here; `make test` runs this file in .venv/vllm-contract, "
    "which `make install` builds",
)

from vllm.logprobs import Logprob, append_logprobs_for_next_position, create_sample_logprobs  # noqa: E402
from vllm.outputs import CompletionOutput, RequestOutput  # noqa: E402
from vllm.sampling_params import SamplingParams  # noqa: E402

from selfrag_tui.engines.base import MISSING_LOGPROB, GenerationCancelled  # noqa: E402
from selfrag_tui.engines.vllm_engine import (  # noqa: E402
    VllmEngine,
    VocabularyLimits,
    generation_from_output,
    has_logprob_token_ids,
    plan_logprob_request,
    rejected_request_shape,
)
from selfrag_tui.reflection import ReflectionVocab  # noqa: E402

LLAMA2_VOCAB = 32016  # Llama-2's 32000 + the 16 Self-RAG tokens
SELF_RAG_SCORE_IDS = list(range(32000, 32015))


def validate(params: SamplingParams, *, vocab_size: int = LLAMA2_VOCAB, max_logprobs: int = 20) -> None:
    """vLLM's own logprob validation, the check `add_request` makes against the model config."""
    params._validate_logprobs(VocabularyLimits(vocab_size=vocab_size, max_logprobs=max_logprobs))


# ---------------------------------------------------------------------------------------------------------------
# The request shape


def test_this_vllm_takes_logprob_token_ids():
    assert has_logprob_token_ids(SamplingParams)


def test_the_exact_request_passes_vllms_validation_as_its_server_sends_it():
    plan = plan_logprob_request(SELF_RAG_SCORE_IDS, exact_supported=True, max_logprobs=20)
    assert plan.source == "exact"
    params = SamplingParams(temperature=0.0, max_tokens=8, stop_token_ids=[32001], **plan.sampling_kwargs())
    validate(params)  # raises VLLMValidationError on a shape vLLM refuses
    assert params.logprobs is None and params.logprob_token_ids == SELF_RAG_SCORE_IDS
    # vLLM's own count of logprob entries per position: the ids (the sampled token comes on top).
    assert params.num_logprobs == len(SELF_RAG_SCORE_IDS)
    assert rejected_request_shape(SamplingParams, score_ids=SELF_RAG_SCORE_IDS, vocab_size=LLAMA2_VOCAB,
                                  max_logprobs=20) is None


def test_the_old_shape_logprobs_0_with_ids_is_what_vllm_refuses():
    """The validation above is live: the shape the engine used to send (logprobs=0 with 15 ids) fails it."""
    from vllm.exceptions import VLLMValidationError

    params = SamplingParams(temperature=0.0, max_tokens=8, logprobs=0, logprob_token_ids=SELF_RAG_SCORE_IDS)
    with pytest.raises(VLLMValidationError, match="logprobs must equal len"):
        validate(params)


def test_a_refused_shape_falls_back_to_top_20_and_says_why():
    # A model whose vocabulary lacks the ids: vLLM refuses them as out of vocabulary.
    reason = rejected_request_shape(SamplingParams, score_ids=SELF_RAG_SCORE_IDS, vocab_size=32000, max_logprobs=20)
    assert reason is not None and "out-of-vocab" in reason
    plan = plan_logprob_request(SELF_RAG_SCORE_IDS, exact_supported=False, max_logprobs=20)
    assert (plan.logprobs, plan.logprob_token_ids, plan.source) == (20, None, "topk")
    validate(SamplingParams(temperature=0.0, max_tokens=8, **plan.sampling_kwargs()))


def test_top_k_stays_within_the_servers_max_logprobs():
    plan = plan_logprob_request(SELF_RAG_SCORE_IDS, exact_supported=False, max_logprobs=5)
    validate(SamplingParams(temperature=0.0, max_tokens=1, **plan.sampling_kwargs()), max_logprobs=5)
    assert plan.logprobs == 5


# ---------------------------------------------------------------------------------------------------------------
# Reading vLLM's outputs


def sample_logprobs(rows: Sequence[tuple[list[int], list[float], int]], num_logprobs: int) -> Any:
    """vLLM's per-request logprob container, filled row by row as its LogprobsProcessor does."""
    container = create_sample_logprobs(False)
    for token_ids, logprobs, rank in rows:
        append_logprobs_for_next_position(container, token_ids, logprobs, [None] * len(token_ids), rank,
                                          num_logprobs)
    return container


def test_a_completion_output_with_exact_ids_becomes_a_generation():
    ids = [32003, 32004]
    # The sampler's rows: the sampled token first, then the requested ids (the sampled one may be among them).
    rows = [([32004, 32003, 32004], [-0.1, -2.5, -0.1], 1), ([450, 32003, 32004], [-0.7, -9.0, -8.0], 1),
            ([32001, 32003, 32004], [-0.05, -7.0, -6.0], 1)]
    output = CompletionOutput(index=0, text="", token_ids=[32004, 450, 32001], cumulative_logprob=-0.85,
                              logprobs=sample_logprobs(rows, len(ids)), finish_reason="stop", stop_reason=32001)
    assert isinstance(output.logprobs[0][32004], Logprob)
    generation = generation_from_output(output, score_ids=ids, eos_token_id=2, decode=str, logprob_source="exact")
    assert generation.token_ids == [32004, 450, 32001]
    assert generation.token_logprobs == [-0.1, -0.7, -0.05]
    assert generation.cumulative_logprob == pytest.approx(-0.85)
    assert generation.score_logprobs == [{32003: -2.5, 32004: -0.1}, {32003: -9.0, 32004: -8.0},
                                         {32003: -7.0, 32004: -6.0}]
    assert generation.finish_reason == "stop"


def test_top_k_output_keeps_the_minus_100_rule():
    rows = [([32004, 32004, 32003], [-0.1, -0.1, -2.5], 1), ([450, 450, 13], [-0.7, -0.7, -1.2], 1)]
    output = CompletionOutput(index=0, text="", token_ids=[32004, 450], cumulative_logprob=-0.8,
                              logprobs=sample_logprobs(rows, 2), finish_reason="length")
    generation = generation_from_output(output, score_ids=[32003, 32004, 32005], eos_token_id=2, decode=str,
                                        logprob_source="topk")
    assert generation.score_logprobs[0] == {32004: -0.1, 32003: -2.5}
    assert generation.logprob_at(0, 32005) == MISSING_LOGPROB
    assert generation.logprob_at(1, 32004) == MISSING_LOGPROB
    assert generation.finish_reason == "length" and generation.logprob_source == "topk"


# ---------------------------------------------------------------------------------------------------------------
# The engine end to end over vLLM's request validation and output classes


class TinyModelEngineCore:
    """Stands in for vLLM's scheduler and GPU model runner with the tiny model on the CPU.

    `add_request` validates the parameters with vLLM's own check; each `step` decodes one greedy token per request
    and returns vLLM `RequestOutput`s whose logprobs are vLLM containers with the sampler's row layout.
    """

    def __init__(self, model, *, max_logprobs: int = 20) -> None:
        self.model = model
        self.vocab_size = int(model._vocab_size)
        self.model_config = VocabularyLimits(vocab_size=self.vocab_size, max_logprobs=max_logprobs)
        self.requests: dict[str, dict] = {}
        self.aborted: list[str] = []

    def add_request(self, request_id: str, prompt: dict, params: SamplingParams) -> None:
        params._validate_logprobs(self.model_config)
        self.requests[request_id] = dict(prompt=list(prompt["prompt_token_ids"]), params=params, tokens=[],
                                         logprobs=create_sample_logprobs(params.flat_logprobs), cumulative=0.0)

    def has_unfinished_requests(self) -> bool:
        return bool(self.requests)

    def abort_request(self, request_ids: list[str]) -> None:
        self.aborted += request_ids
        for request_id in request_ids:
            self.requests.pop(request_id, None)

    def step(self) -> list[RequestOutput]:
        outputs = []
        for request_id, request in list(self.requests.items()):
            params: SamplingParams = request["params"]
            sequence = request["prompt"] + request["tokens"]
            (distribution,) = self.model.next_token_logprobs([sequence], range(self.vocab_size))
            ranked = sorted(distribution, key=lambda t: -distribution[t])
            sampled = ranked[0]
            others = list(params.logprob_token_ids) if params.logprob_token_ids else ranked[: params.num_logprobs]
            row = [sampled] + others
            append_logprobs_for_next_position(request["logprobs"], row, [distribution[t] for t in row],
                                              [None] * len(row), 1, params.num_logprobs)
            request["tokens"].append(sampled)
            request["cumulative"] += distribution[sampled]
            finish = stop_reason = None
            if sampled == self.model.eos_token_id:
                finish = "stop"
            elif sampled in (params.stop_token_ids or []):
                finish, stop_reason = "stop", sampled
            elif len(request["tokens"]) >= params.max_tokens:
                finish = "length"
            completion = CompletionOutput(index=0, text="", token_ids=list(request["tokens"]),
                                          cumulative_logprob=request["cumulative"], logprobs=request["logprobs"],
                                          finish_reason=finish, stop_reason=stop_reason)
            outputs.append(RequestOutput(request_id=request_id, prompt=None, prompt_token_ids=request["prompt"],
                                         prompt_logprobs=None, outputs=[completion], finished=finish is not None))
            if finish is not None:
                del self.requests[request_id]
        return outputs


class TinyModelLLM:
    """What VllmEngine uses of `vllm.LLM`: its tokenizer and its engine."""

    def __init__(self, model, **kwargs) -> None:
        self._tokenizer = model._tokenizer
        self.llm_engine = TinyModelEngineCore(model, **kwargs)

    def get_tokenizer(self):
        return self._tokenizer


@pytest.fixture
def vllm_engine(tiny_engine):
    return VllmEngine(TinyModelLLM(tiny_engine), model_name="tiny-selfrag", max_context=2048, max_logprobs=20)


@pytest.mark.slow
def test_the_engine_asks_for_exact_ids_and_agrees_with_the_transformers_engine(vllm_engine, tiny_engine):
    vocab = ReflectionVocab.from_engine(vllm_engine)
    assert vllm_engine.exact_logprobs and vllm_engine.info().logprob_source == "exact"
    prompt = vllm_engine.encode("### Instruction:\nWhat is the capital of France?\n\n### Response:\n")
    (reference,) = tiny_engine.generate([prompt], max_new_tokens=6, score_ids=vocab.score_ids)
    streamed: list[int] = []
    (generation,) = vllm_engine.generate([prompt], max_new_tokens=6, score_ids=vocab.score_ids,
                                         on_token=lambda token_id, text: streamed.append(token_id))
    assert generation.token_ids == reference.token_ids == streamed
    assert generation.logprob_source == "exact"
    assert generation.token_logprobs == pytest.approx(reference.token_logprobs, abs=1e-4)
    for ours, theirs in zip(generation.score_logprobs, reference.score_logprobs):
        assert set(ours) == set(vocab.score_ids)
        assert ours == pytest.approx(theirs, abs=1e-4)


@pytest.mark.slow
def test_a_shape_refused_in_add_request_falls_back_to_top_k_and_says_so(vllm_engine, tiny_engine):
    """A vLLM that takes the field but refuses the request in add_request: the call still answers, with top-k."""
    vocab = ReflectionVocab.from_engine(vllm_engine)
    # This model config allows no logprob ids beyond its vocabulary: the Self-RAG ids are out of range there.
    vllm_engine._llm.llm_engine.model_config = VocabularyLimits(vocab_size=min(vocab.score_ids), max_logprobs=20)
    prompt = vllm_engine.encode("### Instruction:\nHi\n\n### Response:\n")
    (generation,) = vllm_engine.generate([prompt], max_new_tokens=2, score_ids=vocab.score_ids)
    assert generation.logprob_source == "topk" and not vllm_engine.exact_logprobs
    info = vllm_engine.info()
    assert info.logprob_source == "topk" and "out-of-vocab" in info.extra["logprob_fallback"]
    assert "top-20" in info.extra["logprob_fallback"]
    (reference,) = tiny_engine.generate([prompt], max_new_tokens=2, score_ids=vocab.score_ids)
    assert generation.token_ids == reference.token_ids


@pytest.mark.slow
def test_cancel_aborts_the_requests_in_vllm(vllm_engine):
    prompt = vllm_engine.encode("### Instruction:\nHi\n\n### Response:\n")
    cancel = threading.Event()

    def cancel_after_first(token_id: int, text: str) -> None:
        cancel.set()

    with pytest.raises(GenerationCancelled):
        vllm_engine.generate([prompt], max_new_tokens=20, cancel=cancel, on_token=cancel_after_first)
    assert vllm_engine._llm.llm_engine.aborted and not vllm_engine._llm.llm_engine.requests


# ---------------------------------------------------------------------------------------------------------------
# What `doctor` says about this vLLM (the same check the engine makes at load)


def test_doctor_says_this_vllm_gives_exact_reflection_logprobs(tiny_model_dir):
    import json

    from selfrag_tui.engines.preflight import vllm_logprob_finding

    config = json.loads((tiny_model_dir / "config.json").read_text())
    finding = vllm_logprob_finding(tiny_model_dir, config, max_logprobs=20)
    assert finding.status == "ok" and finding.details["logprob_source"] == "exact"
    assert "vLLM 0.32" in finding.message and "15 reflection tokens" in finding.message


def test_doctor_says_when_the_engine_would_fall_back_to_top_k_and_why(tiny_model_dir):
    import json

    from selfrag_tui.engines.preflight import vllm_logprob_finding

    config = json.loads((tiny_model_dir / "config.json").read_text())
    config["vocab_size"] = 100  # a model config whose vocabulary ends before the Self-RAG tokens
    finding = vllm_logprob_finding(tiny_model_dir, config, max_logprobs=20)
    assert finding.status == "warn" and finding.details["logprob_source"] == "topk"
    assert "top 20 logprobs" in finding.message and "-100" in finding.message
    assert "out-of-vocab" in finding.details["reason"]
