"""The OpenAI-compatible server engine against a real llama.cpp server process on loopback."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from engine_agreement import assert_agree, build_prompts, read, sample_cases
from selfrag_tui.engines.base import EngineError, GenerationCancelled
from selfrag_tui.engines.completions import (
    ParsedChoice,
    build_piece_table,
    cut_at_stop,
    max_logprobs_from_error,
    parse_choice,
    spm_text_for_server,
)
from selfrag_tui.engines.http import ServerClient, ServerError, normalise_base_url
from selfrag_tui.engines.openai_engine import OpenAIEngine
from selfrag_tui.reflection import ReflectionVocab

# ---------------------------------------------------------------------------------------------------------------
# Response parsing over plain JSON (vLLM's `token_id:N` names and llama.cpp's token texts)


def test_parses_token_id_names_and_keeps_only_requested_ids():
    choice = {
        "finish_reason": "stop",
        "logprobs": {
            "tokens": ["token_id:32004", "token_id:450", "token_id:32012"],
            "token_logprobs": [-0.1, -0.5, -0.2],
            "top_logprobs": [
                {"token_id:32004": -0.1, "token_id:32003": -2.5, "token_id:13": -3.0},
                {"token_id:450": -0.5},
                {"token_id:32012": -0.2, "token_id:32013": -1.8},
            ],
        },
    }
    parsed = parse_choice(choice, score_ids=[32003, 32004, 32012, 32013, 32014], piece_table={})
    assert parsed.token_ids == [32004, 450, 32012]
    assert parsed.score_logprobs == [{32004: -0.1, 32003: -2.5}, {}, {32012: -0.2, 32013: -1.8}]
    assert parsed.token_logprobs == [-0.1, -0.5, -0.2]


def test_maps_sentencepiece_texts_back_to_ids():
    pieces = ["<unk>", "<s>", "</s>", "<0x0A>", "\u2581the", "the", "\n", "[Relevant]"]
    table = build_piece_table(pieces, prefer=[7])
    assert table[" the"] == 4 and table["the"] == 5 and table["[Relevant]"] == 7
    assert table["\n"] == 6  # the ordinary piece wins over the byte token with the same text
    text = spm_text_for_server([4, 7, 4], pieces, added_ids={0, 1, 2, 7})
    assert text == "the[Relevant]the"  # llama.cpp adds the space before each stretch of text itself


def test_cut_at_stop_keeps_the_stop_token_and_names_the_reason():
    parsed = ParsedChoice([5, 6, 32001, 7], [-1, -1, -1, -1], [{}, {}, {32001: -1.0}, {}], "stop")
    cut, reason = cut_at_stop(parsed, stop_ids={32001}, eos_token_id=2)
    assert cut.token_ids == [5, 6, 32001] and reason == "stop"
    _, reason = cut_at_stop(ParsedChoice([5], [-1], [{}], "length"), stop_ids={32001}, eos_token_id=2)
    assert reason == "length"
    _, reason = cut_at_stop(ParsedChoice([5, 2], [-1, -1], [{}, {}], "stop"), stop_ids=set(), eos_token_id=2)
    assert reason == "eos"


def test_reads_the_logprob_cap_from_a_server_error_and_normalises_urls():
    assert max_logprobs_from_error("Requested sample logprobs of 20, which is greater than max allowed: 5") == 5
    assert normalise_base_url("127.0.0.1:8000/v1/") == "http://127.0.0.1:8000/v1"


# ---------------------------------------------------------------------------------------------------------------
# A real server


@pytest.fixture(scope="module")
def server_engine(llama_server, tiny_gguf_text_tokens, tiny_model_dir):
    engine = OpenAIEngine.connect(
        llama_server, model=str(tiny_gguf_text_tokens), tokenizer=str(tiny_model_dir), timeout_s=60, retries=1
    )
    yield engine
    engine.close()




@pytest.mark.slow
def test_connects_and_reports_what_the_server_accepts(server_engine):
    caps = server_engine.capabilities
    assert caps.token_id_prompts is False  # llama.cpp's server takes text prompts only
    assert caps.exact_logprobs is False and caps.top_logprobs == 20
    assert server_engine.info().logprob_source == "topk"
    vocab = ReflectionVocab.from_engine(server_engine)
    assert server_engine.encode("[Retrieval]", add_bos=False) == [vocab.retrieval]


@pytest.mark.slow
def test_agrees_with_transformers_on_decisions_tokens_and_scores(server_engine, tiny_transformers_engine):
    vocab = ReflectionVocab.from_engine(server_engine)
    base, passages = build_prompts(server_engine.encode, sample_cases())
    reference = read(tiny_transformers_engine, vocab, base, passages)
    over_http = read(server_engine, vocab, base, passages)
    assert_agree(reference, over_http, eos_dropped=tiny_transformers_engine.eos_token_id)
    generations = server_engine.generate(passages, max_new_tokens=5, score_ids=vocab.score_ids)
    assert [g.logprob_source for g in generations] == ["topk"] * len(passages)


@pytest.mark.slow
def test_cancel_before_answers_arrive_raises(server_engine):
    base = [server_engine.encode("### Instruction:\nHi\n\n### Response:\n")]
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(GenerationCancelled):
        server_engine.generate(base, max_new_tokens=5, cancel=cancel)


@pytest.mark.slow
def test_wrong_model_name_is_reported_with_what_the_server_serves(llama_server, tiny_model_dir):
    with pytest.raises(EngineError, match=r"serves \[.*tiny-selfrag.*\], not 'selfrag/selfrag_llama2_7b'"):
        OpenAIEngine.connect(llama_server, model="selfrag/selfrag_llama2_7b", tokenizer=str(tiny_model_dir))


@pytest.mark.slow
def test_base_url_without_v1_is_explained(llama_server, tiny_gguf_text_tokens, tiny_model_dir):
    root = llama_server.removesuffix("/v1")
    with pytest.raises(EngineError, match=r"404.*end(ing)? in /v1"):
        OpenAIEngine.connect(root, model=str(tiny_gguf_text_tokens), tokenizer=str(tiny_model_dir), retries=0)


@pytest.mark.slow
def test_one_prompt_streams_token_by_token_and_matches_the_whole_answer(server_engine):
    vocab = ReflectionVocab.from_engine(server_engine)
    base, passages = build_prompts(server_engine.encode, sample_cases())
    streamed: list[int] = []
    arrival: list[float] = []

    def on_token(token_id: int, text: str) -> None:
        streamed.append(token_id)
        arrival.append(time.monotonic())

    (generation,) = server_engine.generate([passages[0]], max_new_tokens=12, stop_token_ids=vocab.retrieve_ids,
                                           score_ids=vocab.score_ids, on_token=on_token)
    finished = time.monotonic()
    assert streamed == generation.token_ids and len(streamed) > 3
    assert arrival[0] < finished  # the first token came before the answer ended
    whole = server_engine._complete(passages[0], max_new_tokens=12, stop_token_ids=vocab.retrieve_ids,
                                    score_ids=vocab.score_ids, stream=False)
    assert generation.token_ids == whole.token_ids
    assert generation.token_logprobs == pytest.approx(whole.token_logprobs, abs=1e-5)
    for ours, theirs in zip(generation.score_logprobs, whole.score_logprobs, strict=True):
        assert ours == pytest.approx(theirs, abs=1e-4)


@pytest.mark.slow
def test_cancel_during_a_stream_stops_at_the_next_token(server_engine):
    prompt = server_engine.encode("### Instruction:\nTell me about alpacas.\n\n### Response:\n")
    cancel = threading.Event()
    seen: list[int] = []

    def stop_after_three(token_id: int, text: str) -> None:
        seen.append(token_id)
        if len(seen) == 3:
            cancel.set()

    with pytest.raises(GenerationCancelled):
        server_engine.generate([prompt], max_new_tokens=30, cancel=cancel, on_token=stop_after_three)
    assert len(seen) == 3
    (again,) = server_engine.generate([prompt], max_new_tokens=2)  # the connection pool still works
    assert len(again.token_ids) == 2


# ---------------------------------------------------------------------------------------------------------------
# Servers that are down, fail or hang (real loopback servers)


class MisbehavingServer:
    """A loopback HTTP server that answers every request with `status` after `delay_s`, counting requests."""

    def __init__(self, status: int, *, delay_s: float = 0.0, body: str = '{"error": {"message": "boom"}}') -> None:
        self.requests = 0
        self.client_ports: set[int] = set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, so a client can reuse its connection

            def log_message(self, *args) -> None:
                pass

            def answer(self) -> None:
                server.requests += 1
                server.client_ports.add(self.client_address[1])
                if self.headers.get("Content-Length"):
                    self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(delay_s)
                raw = body.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_requests_reuse_one_connection():
    server = MisbehavingServer(200, body='{"object": "list", "data": []}')
    client = ServerClient(server.base_url, retries=0)
    try:
        for _ in range(3):
            assert client.request("GET", "/models") == {"object": "list", "data": []}
        assert server.requests == 3 and len(server.client_ports) == 1
    finally:
        client.close()
        server.close()


def test_an_overloaded_server_is_retried_with_back_off_then_explained():
    server = MisbehavingServer(503)
    client = ServerClient(server.base_url, retries=2, backoff_s=0.01)
    try:
        with pytest.raises(ServerError, match=r"HTTP 503 after 3 attempts.*overloaded") as info:
            client.request("GET", "/models")
        assert info.value.status == 503 and server.requests == 3
    finally:
        client.close()
        server.close()


def test_a_request_the_server_rejects_is_not_retried_and_says_what_the_server_said():
    server = MisbehavingServer(400, body='{"error": {"message": "max_tokens must be at least 1"}}')
    client = ServerClient(server.base_url, retries=3, backoff_s=0.01)
    try:
        with pytest.raises(ServerError, match=r"rejected /completions \(HTTP 400\).*max_tokens must be") as info:
            list(client.stream("/completions", {"prompt": [1]}))
        assert info.value.status == 400 and server.requests == 1
    finally:
        client.close()
        server.close()


def test_a_server_that_does_not_answer_in_time_names_the_timeout_setting():
    server = MisbehavingServer(200, delay_s=2.0)
    client = ServerClient(server.base_url, timeout_s=0.3, retries=2)
    try:
        started = time.monotonic()
        with pytest.raises(EngineError, match=r"did not answer /completions within 0.3 s.*--request-timeout-s"):
            client.request("POST", "/completions", {"prompt": [1]})
        assert time.monotonic() - started < 1.5  # a read timeout is not retried: the request may be running
        assert server.requests == 1
    finally:
        client.close()
        server.close()


def test_unreachable_server_is_reported_after_retries(tiny_model_dir):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(EngineError, match=r"Cannot reach the server at http://127.0.0.1:\d+/v1.*2 attempts.*Start it "
                                          r"\(e.g. `vllm serve.*--base-url"):
        OpenAIEngine.connect(f"127.0.0.1:{port}/v1", model="x", tokenizer=str(tiny_model_dir), retries=1)


@pytest.mark.slow
def test_server_that_hides_special_tokens_is_refused(tiny_gguf, tiny_model_dir, tmp_path):
    """llama.cpp's server renders control tokens as empty text: the decoder could not read any decision."""
    from llama_server_process import start_llama_server, stop_llama_server

    process, base_url = start_llama_server(tiny_gguf, tmp_path / "server.log")
    try:
        with pytest.raises(EngineError, match="hides special tokens"):
            OpenAIEngine.connect(base_url, model=str(tiny_gguf), tokenizer=str(tiny_model_dir), retries=0)
    finally:
        stop_llama_server(process)


def test_missing_tokenizer_says_how_to_get_it(tmp_path):
    with pytest.raises(EngineError, match="tokenizer.*model.tokenizer"):
        OpenAIEngine.connect("http://127.0.0.1:9/v1", model=str(tmp_path / "nothing-here"))
