"""The server engine against vLLM's OpenAI server models: the JSON it sends validates as vLLM's
`CompletionRequest` and converts with vLLM's own `to_sampling_params` into parameters vLLM's validation takes, and
the answers it reads are built with vLLM's response models (`CompletionResponse`, `CompletionLogProbs`, and the
streamed `CompletionStreamResponse` chunks).

The end-to-end tests run a loopback HTTP server that speaks vLLM's completions protocol through those models, with
the tiny Self-RAG model on the CPU in place of vLLM's GPU engine: every request is validated and converted the way
vLLM's server does it, and logprobs are laid out the way vLLM's sampler and server lay them out.

`make test` runs this file in the vLLM test environment (.venv/vllm-contract); without vLLM it is skipped.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

pytest.importorskip(
    "vllm.entrypoints.openai.completion.protocol",
    reason="vLLM's Python code is not importable here; `make test` runs this file in .venv/vllm-contract, "
    "which `make install` builds",
)

from vllm.entrypoints.openai.completion.protocol import (  # noqa: E402
    CompletionLogProbs,
    CompletionRequest,
    CompletionResponse,
    CompletionResponseChoice,
    CompletionResponseStreamChoice,
    CompletionStreamResponse,
)
from vllm.entrypoints.serve.engine.protocol import (  # noqa: E402
    ErrorInfo,
    ErrorResponse,
    ModelCard,
    ModelList,
    UsageInfo,
)
from vllm.exceptions import VLLMValidationError  # noqa: E402
from vllm.logprobs import Logprob, append_logprobs_for_next_position, create_sample_logprobs  # noqa: E402
from vllm.sampling_params import SamplingParams  # noqa: E402

from engine_agreement import assert_agree, build_prompts, read, sample_cases  # noqa: E402
from selfrag_tui.engines.base import GenerationCancelled  # noqa: E402
from selfrag_tui.engines.completions import StreamedChoice, parse_choice  # noqa: E402
from selfrag_tui.engines.openai_engine import OpenAIEngine, ServerCapabilities  # noqa: E402
from selfrag_tui.engines.tokenizer import load_tokenizer  # noqa: E402
from selfrag_tui.engines.vllm_engine import VocabularyLimits  # noqa: E402
from selfrag_tui.reflection import ReflectionVocab  # noqa: E402

VLLM_CAPABILITIES = ServerCapabilities(token_id_prompts=True, token_ids_in_output=True, exact_logprobs=True,
                                       top_logprobs=20)


@pytest.fixture(scope="module")
def offline_engine(tiny_model_dir):
    """The engine's request building and parsing, with no server behind it (nothing is sent)."""
    engine = OpenAIEngine(base_url="http://127.0.0.1:9/v1", served_model="selfrag",
                          tokenizer=load_tokenizer(str(tiny_model_dir)))
    engine.capabilities = VLLM_CAPABILITIES
    yield engine
    engine.close()


def vllm_sampling_params(body: dict, *, vocab_size: int) -> tuple[CompletionRequest, SamplingParams]:
    """What vLLM's server makes of a request body: its request model, its sampling parameters, validated."""
    request = CompletionRequest.model_validate(body)
    params = request.to_sampling_params(request.max_tokens, {})
    params._validate_logprobs(VocabularyLimits(vocab_size=vocab_size, max_logprobs=20))
    return request, params


# ---------------------------------------------------------------------------------------------------------------
# Requests


@pytest.mark.parametrize("stream", [False, True])
def test_the_request_body_is_a_valid_vllm_completion_request(offline_engine, stream):
    vocab = ReflectionVocab.from_engine(offline_engine)
    prompt = offline_engine.encode("### Instruction:\nHi\n\n### Response:\n")
    body = offline_engine._body(prompt, max_new_tokens=12, stop_token_ids=vocab.retrieve_ids,
                                score_ids=vocab.score_ids, caps=VLLM_CAPABILITIES, exact=True, stream=stream)
    request, params = vllm_sampling_params(json.loads(json.dumps(body)), vocab_size=len(offline_engine._tokenizer))
    assert request.prompt == prompt and request.stream is stream and request.return_tokens_as_token_ids
    # vLLM's server asks its engine for the ids alone (logprobs unset), as the in-process engine does.
    assert params.logprobs is None and params.logprob_token_ids == list(vocab.score_ids)
    assert params.temperature == 0.0 and params.max_tokens == 12
    assert params.stop_token_ids == list(vocab.retrieve_ids)
    assert params.skip_special_tokens is False and params.spaces_between_special_tokens is False


def test_the_top_k_body_and_the_probe_body_are_valid_too(offline_engine):
    vocab = ReflectionVocab.from_engine(offline_engine)
    prompt = offline_engine.encode("### Instruction:\nHi\n\n### Response:\n")
    topk = ServerCapabilities(token_id_prompts=True, exact_logprobs=False, top_logprobs=5)
    body = offline_engine._body(prompt, max_new_tokens=4, stop_token_ids=(), score_ids=vocab.score_ids, caps=topk,
                                exact=False)
    _, params = vllm_sampling_params(body, vocab_size=len(offline_engine._tokenizer))
    assert params.logprobs == 5 and params.logprob_token_ids is None
    body = offline_engine._body(prompt, max_new_tokens=1, stop_token_ids=(), score_ids=vocab.score_ids,
                                caps=VLLM_CAPABILITIES, exact=True)
    body["logit_bias"] = {str(vocab.retrieval): 100}  # what the connect-time probe adds
    _, params = vllm_sampling_params(body, vocab_size=len(offline_engine._tokenizer))
    assert params.logit_bias == {vocab.retrieval: 100.0}


def test_vllms_server_refuses_ids_without_logprobs(offline_engine):
    """The validation above is live: the server wants `logprobs` with the ids (it then asks its engine for the ids
    alone), which is why the engine sends both."""
    with pytest.raises(VLLMValidationError, match="logprobs"):
        CompletionRequest.model_validate({"model": "m", "prompt": [1, 2], "logprob_token_ids": [3]})


# ---------------------------------------------------------------------------------------------------------------
# Responses, built as vLLM's server builds them


def logprob_rows(steps: list[tuple[int, float, dict[int, float]]], num_logprobs: int) -> list[dict[int, Logprob]]:
    """vLLM's per-position logprob dicts: the sampled token first, then the requested ids (or the top k)."""
    container = create_sample_logprobs(False)
    for sampled, sampled_logprob, others in steps:
        ids = [sampled, *others]
        append_logprobs_for_next_position(container, ids, [sampled_logprob, *others.values()], [None] * len(ids), 1,
                                          num_logprobs)
    return container


def completion_logprobs(token_ids: list[int], rows: list[dict[int, Logprob]], *, exact: bool, top: int
                        ) -> CompletionLogProbs:
    """vLLM's server's completion logprobs with `return_tokens_as_token_ids` (tokens named `token_id:N`)."""
    tokens, chosen, tops, offsets = [], [], [], []
    for token_id, row in zip(token_ids, rows):
        tokens.append(f"token_id:{token_id}")
        chosen.append(max(row[token_id].logprob, -9999.0))
        entries = list(row.items()) if exact else list(row.items())[: top + 1]
        tops.append({f"token_id:{t}": max(lp.logprob, -9999.0) for t, lp in entries})
        offsets.append(len(offsets) * 10)
    return CompletionLogProbs(text_offset=offsets, token_logprobs=chosen, tokens=tokens, top_logprobs=tops)


def test_a_vllm_completion_response_is_parsed_into_ids_and_reflection_scores():
    steps = [(32004, -0.1, {32003: -2.5, 32004: -0.1}), (450, -0.7, {32003: -9.0, 32004: -8.0}),
             (32001, -0.05, {32003: -7.0, 32004: -6.0})]
    rows = logprob_rows(steps, 2)
    logprobs = completion_logprobs([32004, 450, 32001], rows, exact=True, top=20)
    response = CompletionResponse(model="selfrag", choices=[CompletionResponseChoice(
        index=0, text="[Relevant] the", logprobs=logprobs, finish_reason="stop", stop_reason=32001)],
        usage=UsageInfo(prompt_tokens=5, completion_tokens=3, total_tokens=8))
    choice = json.loads(response.model_dump_json())["choices"][0]
    parsed = parse_choice(choice, score_ids=[32003, 32004], piece_table={})
    assert parsed.token_ids == [32004, 450, 32001]
    assert parsed.token_logprobs == [-0.1, -0.7, -0.05]
    assert parsed.score_logprobs == [{32003: -2.5, 32004: -0.1}, {32003: -9.0, 32004: -8.0},
                                     {32003: -7.0, 32004: -6.0}]
    assert parsed.finish_reason == "stop"


def test_streamed_vllm_chunks_join_into_the_whole_answer():
    steps = [(32004, -0.1, {32004: -0.1, 32003: -2.5}), (450, -0.7, {32004: -8.0, 32003: -9.0})]
    rows = logprob_rows(steps, 2)
    whole = completion_logprobs([32004, 450], rows, exact=True, top=20)
    chunks = [
        CompletionStreamResponse(model="selfrag", choices=[CompletionResponseStreamChoice(
            index=0, text=text, logprobs=completion_logprobs([t], [row], exact=True, top=20), finish_reason=None)])
        for text, t, row in (("[Relevant]", 32004, rows[0]), (" the", 450, rows[1]))
    ] + [CompletionStreamResponse(model="selfrag", choices=[CompletionResponseStreamChoice(
        index=0, text="", finish_reason="length")])]
    streamed = StreamedChoice()
    added = [streamed.add(json.loads(chunk.model_dump_json())) for chunk in chunks]
    assert added == [["token_id:32004"], ["token_id:450"], []]
    expected = CompletionResponseChoice(index=0, text="[Relevant] the", logprobs=whole, finish_reason="length")
    joined = parse_choice(streamed.as_choice(), score_ids=[32003, 32004], piece_table={})
    assert joined == parse_choice(json.loads(expected.model_dump_json()), score_ids=[32003, 32004], piece_table={})


# ---------------------------------------------------------------------------------------------------------------
# A loopback server speaking vLLM's protocol over the tiny model


class TinyVllmServer:
    """`/v1/models` and `/v1/completions` as vLLM's server answers them, generating greedily with the tiny model."""

    def __init__(self, model, served_name: str, *, token_delay_s: float = 0.0) -> None:
        self.model = model
        self.served_name = served_name
        self.token_delay_s = token_delay_s
        self.vocab_size = int(model._vocab_size)
        self.bodies: list[dict] = []
        self.disconnects = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path != "/v1/models":
                    return self.send_json(404, {"detail": "Not Found"})
                self.send_json(200, ModelList(data=[ModelCard(id=server.served_name)]).model_dump(mode="json"))

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.bodies.append(body)
                if self.path != "/v1/completions":
                    return self.send_json(404, {"detail": "Not Found"})
                try:
                    request = CompletionRequest.model_validate(body)
                    params = request.to_sampling_params(request.max_tokens, {})
                    params._validate_logprobs(VocabularyLimits(vocab_size=server.vocab_size, max_logprobs=20))
                except (ValueError, VLLMValidationError) as exc:
                    error = ErrorResponse(error=ErrorInfo(message=str(exc), type="BadRequestError", code=400))
                    return self.send_json(400, error.model_dump(mode="json"))
                if request.stream:
                    self.stream(request, params)
                else:
                    choice = server.complete(request, params)
                    generated = len(choice.logprobs.tokens) if choice.logprobs else 0
                    usage = UsageInfo(prompt_tokens=len(request.prompt), completion_tokens=generated,
                                      total_tokens=len(request.prompt) + generated)
                    response = CompletionResponse(model=request.model, choices=[choice], usage=usage)
                    self.send_json(200, response.model_dump(mode="json"))

            def send_json(self, status: int, data: dict) -> None:
                raw = json.dumps(data).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def stream(self, request: CompletionRequest, params: SamplingParams) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    for choice in server.steps(request, params):
                        chunk = CompletionStreamResponse(model=request.model, choices=[choice])
                        self.wfile.write(f"data: {chunk.model_dump_json()}\n\n".encode())
                        self.wfile.flush()
                        time.sleep(server.token_delay_s)
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    server.disconnects += 1
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "TinyVllmServer":
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def steps(self, request: CompletionRequest, params: SamplingParams):
        """One stream choice per generated token (vLLM's DELTA outputs), then one with the finish reason."""
        sequence = list(request.prompt)
        rows = create_sample_logprobs(False)
        bias = params.logit_bias or {}
        for _ in range(params.max_tokens):
            (distribution,) = self.model.next_token_logprobs([sequence], range(self.vocab_size))
            # Like vLLM, the bias steers sampling and the logprobs are the model's own (raw) ones.
            sampled = max(distribution, key=lambda t: distribution[t] + bias.get(t, 0.0))
            if params.logprob_token_ids:
                others = list(params.logprob_token_ids)
            else:
                others = sorted(distribution, key=lambda t: -distribution[t])[: params.logprobs or 0]
            ids = [sampled, *others]
            append_logprobs_for_next_position(rows, ids, [distribution[t] for t in ids], [None] * len(ids), 1,
                                              params.num_logprobs)
            sequence.append(sampled)
            logprobs = completion_logprobs([sampled], [rows[-1]], exact=bool(params.logprob_token_ids),
                                           top=params.logprobs or 0)
            yield CompletionResponseStreamChoice(index=0, text=self.model.decode([sampled]), logprobs=logprobs)
            if sampled == self.model.eos_token_id or sampled in (params.stop_token_ids or []):
                stop_reason = None if sampled == self.model.eos_token_id else sampled
                yield CompletionResponseStreamChoice(index=0, text="", finish_reason="stop", stop_reason=stop_reason)
                return
        yield CompletionResponseStreamChoice(index=0, text="", finish_reason="length")

    def complete(self, request: CompletionRequest, params: SamplingParams) -> CompletionResponseChoice:
        """The whole answer: the stream's choices joined as vLLM's FINAL_ONLY output."""
        text, tokens, chosen, tops, offsets = "", [], [], [], []
        finish = stop_reason = None
        for choice in self.steps(request, params):
            text += choice.text
            if choice.logprobs is not None:
                tokens += choice.logprobs.tokens
                chosen += choice.logprobs.token_logprobs
                tops += choice.logprobs.top_logprobs
                offsets += choice.logprobs.text_offset
            finish, stop_reason = choice.finish_reason, choice.stop_reason
        logprobs = CompletionLogProbs(text_offset=offsets, token_logprobs=chosen, tokens=tokens, top_logprobs=tops)
        return CompletionResponseChoice(index=0, text=text, logprobs=logprobs, finish_reason=finish,
                                        stop_reason=stop_reason)


@pytest.fixture(scope="module")
def vllm_server(tiny_engine):
    with TinyVllmServer(tiny_engine, "selfrag/selfrag_llama2_7b") as server:
        yield server


@pytest.fixture(scope="module")
def server_engine(vllm_server, tiny_model_dir):
    engine = OpenAIEngine.connect(vllm_server.base_url, model="selfrag/selfrag_llama2_7b",
                                  tokenizer=str(tiny_model_dir), timeout_s=60, retries=0)
    yield engine
    engine.close()


@pytest.mark.slow
def test_connects_with_token_id_prompts_and_exact_reflection_logprobs(server_engine):
    caps = server_engine.capabilities
    assert caps.token_id_prompts and caps.token_ids_in_output and caps.exact_logprobs
    assert server_engine.info().logprob_source == "exact"


@pytest.mark.slow
def test_agrees_with_the_transformers_engine_over_vllms_protocol(server_engine, tiny_engine, vllm_server):
    vocab = ReflectionVocab.from_engine(server_engine)
    base, passages = build_prompts(server_engine.encode, sample_cases())
    assert_agree(read(tiny_engine, vocab, base, passages), read(server_engine, vocab, base, passages))
    # Every request the engine sent validated as a vLLM CompletionRequest (the server answers 400 otherwise).
    assert vllm_server.bodies and all("logprob_token_ids" in body for body in vllm_server.bodies[-len(passages):])


@pytest.mark.slow
def test_one_prompt_streams_its_tokens_in_order(server_engine, tiny_engine, vllm_server):
    vocab = ReflectionVocab.from_engine(server_engine)
    prompt = server_engine.encode("### Instruction:\nWhat is the capital of France?\n\n### Response:\n")
    streamed: list[tuple[int, str]] = []
    (generation,) = server_engine.generate([prompt], max_new_tokens=8, score_ids=vocab.score_ids,
                                           on_token=lambda token_id, text: streamed.append((token_id, text)))
    (reference,) = tiny_engine.generate([prompt], max_new_tokens=8, score_ids=vocab.score_ids)
    assert [t for t, _ in streamed] == generation.token_ids == reference.token_ids
    assert [text for _, text in streamed] == [server_engine.decode([t]) for t in generation.token_ids]
    assert vllm_server.bodies[-1]["stream"] is True
    assert generation.token_logprobs == pytest.approx(reference.token_logprobs, abs=1e-4)


@pytest.mark.slow
def test_cancel_mid_stream_closes_the_connection(tiny_engine, tiny_model_dir):
    with TinyVllmServer(tiny_engine, "selfrag", token_delay_s=0.05) as server:
        engine = OpenAIEngine.connect(server.base_url, model="selfrag", tokenizer=str(tiny_model_dir), retries=0)
        prompt = engine.encode("### Instruction:\nHi\n\n### Response:\n")
        cancel = threading.Event()
        seen: list[int] = []

        def stop_after_two(token_id: int, text: str) -> None:
            seen.append(token_id)
            if len(seen) == 2:
                cancel.set()

        with pytest.raises(GenerationCancelled):
            engine.generate([prompt], max_new_tokens=30, cancel=cancel, on_token=stop_after_two)
        assert len(seen) == 2
        deadline = time.monotonic() + 5
        while server.disconnects == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.disconnects == 1  # the server saw the stream closed and stopped generating
        # The engine still works after a cancelled stream.
        (again,) = engine.generate([prompt], max_new_tokens=2)
        assert len(again.token_ids) == 2
        engine.close()
