"""A client for an OpenAI-compatible completions server, e.g. `vllm serve selfrag/selfrag_llama2_7b`
(SELFRAG_SPEC section 7). For teams that run the 7B model on a shared GPU box; the decoder is unchanged.

How it talks to the server, and why:

- `POST {base_url}/completions` with the prompt as token ids (vLLM accepts them), greedy (`temperature: 0`),
  `echo: false`, `logprobs: k` top-k capped by the server's `--max-logprobs` (20 by default in vLLM), and the
  vLLM extra body fields `stop_token_ids`, `skip_special_tokens: false`, `return_tokens_as_token_ids: true` and,
  where the server supports it, `logprob_token_ids` (the reflection ids' exact logprobs at every position; vLLM's
  server turns the request into `logprobs=None` with the ids). Without that, reflection ids outside the top k count
  as logprob -100 (`logprob_source="topk"`).
- Answers stream (`"stream": true`, server-sent events): each token reaches the token callback as the server
  produces it, as with the local engines, and a set cancel event closes the connection, which stops the server
  generating.
- Servers that only take text prompts and stop strings (llama.cpp's `llama_cpp.server`) are detected once at
  connect time: prompts are then sent as text with the special tokens kept (the server parses them as tokens),
  and returned token strings are mapped back to ids through the local tokenizer. The reflection tokens map
  exactly; an ordinary token whose text is ambiguous (a byte-fallback piece) maps to its usual piece.
- The K candidate prompts of a step are sent concurrently over one connection pool (selfrag_tui/engines/http.py:
  timeouts, retries with back-off on connection errors).
- Problems a user can fix get a message that says what to do: a server that is down, a wrong URL, a server
  serving another model, a server that hides special tokens, a missing tokenizer.

The tokenizer is loaded locally (from `model.tokenizer`, else `model.model`) so prompts are built as token ids;
it is small and works offline once in the Hugging Face cache or a local folder. The JSON is read and written by
selfrag_tui/engines/completions.py.
"""

from __future__ import annotations

import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

from selfrag_tui.engines.base import (
    EngineError,
    EngineInfo,
    Generation,
    GenerationCancelled,
    LogprobSource,
    TokenCallback,
)
from selfrag_tui.engines.completions import (
    TOKEN_ID_PREFIX,
    StreamedChoice,
    build_piece_table,
    cut_at_stop,
    max_logprobs_from_error,
    parse_choice,
    spm_text_for_server,
    token_key_to_id,
)
from selfrag_tui.engines.http import ServerClient, ServerError, normalise_base_url
from selfrag_tui.engines.tokenizer import load_tokenizer

DEFAULT_TOP_LOGPROBS = 20
PROBE_INSTRUCTION = "### Instruction:\nWhat is the capital of France?\n\n### Response:\n"
PROBE_PASSAGE = "[Retrieval]<paragraph>Paris\nParis is the capital of France.</paragraph>"
SERVE_HINT = (
    "Start the server with the Self-RAG model (e.g. `vllm serve selfrag/selfrag_llama2_7b`), or set model.model "
    "(--model, SELFRAG_MODEL__MODEL) to the name the server uses for it."
)


def served_models(client: ServerClient) -> list[str]:
    """The model ids the server lists at GET /models."""
    data = client.request("GET", "/models")
    return [str(entry.get("id")) for entry in data.get("data", []) if isinstance(entry, Mapping)]


def match_served_model(model: str, served: Sequence[str]) -> str | None:
    """The server's id for `model`: the same id, or the only one with the same last path part."""
    if model in served:
        return model
    same_name = [s for s in served if Path(s).name == Path(model).name]
    return same_name[0] if len(same_name) == 1 else None


@dataclass
class ServerCapabilities:
    """What the server was found to accept at connect time."""

    token_id_prompts: bool = True
    token_ids_in_output: bool = True
    exact_logprobs: bool = False
    top_logprobs: int = DEFAULT_TOP_LOGPROBS


class OpenAIEngine:
    """Greedy Self-RAG generation through an OpenAI-compatible completions endpoint."""

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str,
        served_model: str,
        tokenizer: Any,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        retries: int = 3,
        max_concurrency: int = 8,
        max_context: int = 4096,
    ) -> None:
        self.max_concurrency = max(1, max_concurrency)
        self.client = ServerClient(base_url, api_key=api_key, timeout_s=timeout_s, retries=retries,
                                   max_connections=self.max_concurrency)
        self.base_url = self.client.base_url
        self.model_name = served_model
        self.served_model = served_model
        self.max_context = max_context
        self._tokenizer = tokenizer
        self.eos_token_id = int(tokenizer.eos_token_id)
        self.bos_token_id = tokenizer.bos_token_id
        self.capabilities = ServerCapabilities()
        self._pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        self._added_ids = {int(i) for i in getattr(tokenizer, "added_tokens_decoder", {})} | {
            int(i) for i in tokenizer.all_special_ids
        }
        self._reflection_ids = self._added_token_ids()
        self._piece_table = build_piece_table(self._pieces, prefer=self._reflection_ids)

    # -- connecting ----------------------------------------------------------------------------------------------
    @classmethod
    def connect(
        cls,
        base_url: str,
        *,
        model: str,
        tokenizer: str | None = None,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        retries: int = 3,
        top_logprobs: int = DEFAULT_TOP_LOGPROBS,
        max_concurrency: int = 8,
        max_context: int = 4096,
    ) -> "OpenAIEngine":
        """Load the tokenizer, check the server serves `model`, and probe what it accepts."""
        hf_tokenizer = load_tokenizer(tokenizer or model)
        engine = cls(
            base_url=base_url,
            served_model=model,
            tokenizer=hf_tokenizer,
            api_key=api_key,
            timeout_s=timeout_s,
            retries=retries,
            max_concurrency=max_concurrency,
            max_context=max_context,
        )
        try:
            engine.served_model = engine.check_served_model(model)
            engine.capabilities = engine.probe(top_logprobs=top_logprobs)
        except BaseException:
            engine.close()
            raise
        return engine

    def check_served_model(self, model: str) -> str:
        """The server's id for `model`; a clear error when the server serves something else."""
        served = served_models(self.client)
        match = match_served_model(model, served)
        if match is None:
            raise EngineError(f"The server at {self.base_url} serves {served or 'no models'}, not '{model}'. "
                              + SERVE_HINT)
        return match

    def probe(self, *, top_logprobs: int = DEFAULT_TOP_LOGPROBS) -> ServerCapabilities:
        """One-token requests that find what the server accepts and check it keeps Self-RAG's special tokens."""
        caps = ServerCapabilities(top_logprobs=max(1, min(top_logprobs, DEFAULT_TOP_LOGPROBS)))
        retrieval_id = self.token_id("[Retrieval]")
        if retrieval_id is None:
            raise EngineError(
                f"The tokenizer for '{self.model_name}' lacks the Self-RAG token [Retrieval]; set model.tokenizer "
                f"to the Self-RAG model's tokenizer (e.g. selfrag/selfrag_llama2_7b)."
            )
        prompt = self.encode(PROBE_INSTRUCTION)
        body = self._body(
            prompt, max_new_tokens=1, stop_token_ids=(), score_ids=self._reflection_ids, caps=caps, exact=True
        )
        # Force [Retrieval] as the generated token so its rendering shows whether special tokens survive.
        body["logit_bias"] = {str(retrieval_id): 100}
        response = None
        for _ in range(4):
            try:
                response = self.client.request("POST", "/completions", body)
                break
            except ServerError as exc:
                if exc.status not in (400, 422, 500):  # llama.cpp's server answers 500 to invalid fields
                    raise
                text = exc.body
                if caps.token_id_prompts and "prompt" in text:
                    caps.token_id_prompts = False
                elif "logprob_token_ids" in text and "logprob_token_ids" in body:
                    body.pop("logprob_token_ids")
                elif "logprobs" in text and caps.top_logprobs > 1:
                    caps.top_logprobs = max_logprobs_from_error(text) or 1
                else:
                    raise
                body = self._body(
                    prompt,
                    max_new_tokens=1,
                    stop_token_ids=(),
                    score_ids=self._reflection_ids,
                    caps=caps,
                    exact="logprob_token_ids" in body,
                )
                body["logit_bias"] = {str(retrieval_id): 100}
        if response is None:
            raise EngineError(f"The server at {self.base_url} refused every form of completions request.")
        choice = (response.get("choices") or [{}])[0]
        logprobs = choice.get("logprobs") or {}
        tokens = list(logprobs.get("tokens") or [])
        if not tokens:
            raise EngineError(
                f"The server at {self.base_url} returned no logprobs; the Self-RAG decoder needs them. For a llama.cpp "
                f"server start it with logits_all enabled (the default); for vLLM check --max-logprobs is at least 1."
            )
        first = tokens[0]
        caps.token_ids_in_output = first.startswith(TOKEN_ID_PREFIX)
        first_id = token_key_to_id(first, self._piece_table)
        if first_id != retrieval_id:
            if first.strip() == "" or (not caps.token_ids_in_output and choice.get("text", "") == ""):
                raise EngineError(
                    f"The server at {self.base_url} hides special tokens: Self-RAG's [Retrieval] came back as empty "
                    f"text, so no decision could be read. vLLM keeps them with skip_special_tokens=false, which this "
                    f"engine sends; check a proxy is not dropping request fields. llama.cpp's server drops control "
                    f"tokens from its output: use the in-process llama.cpp engine (engine \"llamacpp\") instead."
                )
            raise EngineError(
                f"The server at {self.base_url} serves a model with another vocabulary: token {retrieval_id} is "
                f"{first!r} there, not [Retrieval]. Point model.base_url at a server running the Self-RAG model, or "
                f"set model.tokenizer to the served model's tokenizer."
            )
        if not caps.token_id_prompts:
            self._check_text_round_trip()
        top = (logprobs.get("top_logprobs") or [{}])[0] or {}
        returned = {token_key_to_id(key, self._piece_table) for key in top}
        caps.exact_logprobs = "logprob_token_ids" in body and set(self._reflection_ids) <= returned
        return caps

    def _check_text_round_trip(self) -> None:
        """With text prompts the server tokenises: make sure it gets back our ids (llama.cpp's /extras/tokenize)."""
        try:
            ids = self._server_encode(PROBE_INSTRUCTION + PROBE_PASSAGE + "[Relevant]Paris.", add_bos=True)
            again = self._server_encode(self._prompt_text(ids), add_bos=True)
        except ServerError as exc:
            raise EngineError(
                f"The server at {self.base_url} accepts neither token-id prompts nor a tokenize endpoint "
                f"(/extras/tokenize), so prompts cannot be checked to reach the model as built. Use vLLM's server "
                f"(`vllm serve`) or llama.cpp's Python server. ({exc})"
            ) from exc
        if again != ids:
            raise EngineError(
                f"The server at {self.base_url} takes only text prompts, and text written from its own token ids "
                f"does not tokenise back to them with the local tokenizer ('{self.model_name}'): set model.tokenizer "
                f"to the served model's tokenizer, or use a server that accepts token ids (vLLM)."
            )

    # -- tokenizer -----------------------------------------------------------------------------------------------
    def _added_token_ids(self) -> list[int]:
        from selfrag_tui.reflection import REFLECTION_TOKENS

        ids = []
        for token in REFLECTION_TOKENS:
            token_id = self.token_id(token)
            if token_id is not None:
                ids.append(token_id)
        return ids

    def encode(self, text: str, *, add_bos: bool = True) -> list[int]:
        if not self.capabilities.token_id_prompts:
            # The server tokenises text prompts itself: use its tokenisation so the ids the decoder sees are the
            # ids the model gets.
            return self._server_encode(text, add_bos=add_bos)
        ids = [int(t) for t in self._tokenizer.encode(text, add_special_tokens=False)]
        return [int(self.bos_token_id)] + ids if add_bos and self.bos_token_id is not None else ids

    def decode(self, token_ids: Sequence[int]) -> str:
        return self._tokenizer.decode(
            [int(t) for t in token_ids if int(t) >= 0], skip_special_tokens=False, clean_up_tokenization_spaces=False
        )

    def token_id(self, token: str) -> int | None:
        token_id = self._tokenizer.convert_tokens_to_ids(token)
        if token_id is None or token_id == self._tokenizer.unk_token_id:
            return None
        return int(token_id)

    def _server_encode(self, text: str, *, add_bos: bool) -> list[int]:
        data = self.client.request("POST", "/extras/tokenize", {"input": text}, root=True)
        ids = [int(t) for t in data.get("tokens", [])]
        if not add_bos and ids and ids[0] == self.bos_token_id:
            ids = ids[1:]
        elif add_bos and self.bos_token_id is not None and (not ids or ids[0] != self.bos_token_id):
            ids = [int(self.bos_token_id)] + ids
        return ids

    def _prompt_text(self, prompt: Sequence[int]) -> str:
        ids = [int(t) for t in prompt]
        if ids and self.bos_token_id is not None and ids[0] == self.bos_token_id:
            ids = ids[1:]  # the server adds BOS itself when it tokenises text
        return spm_text_for_server(ids, self._pieces, self._added_ids)

    def info(self) -> EngineInfo:
        caps = self.capabilities
        return EngineInfo(
            engine=self.name,
            model=self.served_model,
            device=self.base_url,
            dtype="server",
            logprob_source="exact" if caps.exact_logprobs else "topk",
            extra={
                "prompts": "token ids" if caps.token_id_prompts else "text",
                "top_logprobs": str(caps.top_logprobs),
            },
        )

    # -- generation ------------------------------------------------------------------------------------------------
    def _body(
        self,
        prompt: Sequence[int],
        *,
        max_new_tokens: int,
        stop_token_ids: Sequence[int],
        score_ids: Sequence[int],
        caps: ServerCapabilities,
        exact: bool,
        stream: bool = False,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.served_model,
            "prompt": [int(t) for t in prompt] if caps.token_id_prompts else self._prompt_text(prompt),
            "max_tokens": max_new_tokens,
            "temperature": 0.0,
            "logprobs": caps.top_logprobs,
            "echo": False,
            "stream": stream,
            "n": 1,
            # vLLM extensions; other servers ignore fields they do not know.
            "stop_token_ids": [int(t) for t in stop_token_ids],
            "skip_special_tokens": False,
            "spaces_between_special_tokens": False,
            "return_tokens_as_token_ids": True,
            # llama.cpp's server penalises repeats by default, which changes greedy choices.
            "repeat_penalty": 1.0,
        }
        if exact and score_ids:
            body["logprob_token_ids"] = [int(t) for t in score_ids]
        if not caps.token_id_prompts and stop_token_ids:
            # Text-only servers stop on strings; the stop token stays in the returned logprobs and is cut here.
            body["stop"] = [self.decode([t]) for t in stop_token_ids if int(t) != self.eos_token_id]
        return body

    def _complete(
        self,
        prompt: Sequence[int],
        *,
        max_new_tokens: int,
        stop_token_ids: Sequence[int],
        score_ids: Sequence[int],
        stream: bool = False,
        cancel: threading.Event | None = None,
        on_token: TokenCallback | None = None,
    ) -> Generation:
        """One completion; streamed, its tokens go to `on_token` as their events arrive."""
        caps = self.capabilities
        if len(prompt) + max_new_tokens > self.max_context:
            max_new_tokens = max(1, self.max_context - len(prompt))
        body = self._body(
            prompt,
            max_new_tokens=max_new_tokens,
            stop_token_ids=stop_token_ids,
            score_ids=score_ids,
            caps=caps,
            exact=caps.exact_logprobs,
            stream=stream,
        )
        if stream:
            streamed = StreamedChoice()
            for event in self.client.stream("/completions", body, cancel=cancel):
                new_tokens = streamed.add(event)
                if on_token is not None:
                    for name in new_tokens:
                        token_id = token_key_to_id(name, self._piece_table)
                        if token_id is not None:
                            on_token(token_id, self.decode([token_id]))
            if not streamed.tokens and streamed.finish_reason is None:
                raise EngineError(f"The server at {self.base_url} streamed no completion for the prompt.")
            choice = streamed.as_choice()
        else:
            response = self.client.request("POST", "/completions", body)
            choices = response.get("choices") or []
            if not choices:
                raise EngineError(
                    f"The server at {self.base_url} returned no completion choices: {str(response)[:200]}"
                )
            choice = choices[0]
        parsed = parse_choice(choice, score_ids=score_ids, piece_table=self._piece_table)
        parsed, finish = cut_at_stop(parsed, stop_ids={int(t) for t in stop_token_ids}, eos_token_id=self.eos_token_id)
        source: LogprobSource = "exact" if caps.exact_logprobs else "topk"
        return Generation(
            token_ids=parsed.token_ids,
            text=self.decode(parsed.token_ids),
            token_logprobs=parsed.token_logprobs,
            score_logprobs=parsed.score_logprobs,
            cumulative_logprob=float(sum(parsed.token_logprobs)),
            finish_reason=finish,
            logprob_source=source,
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
        """One prompt streams in the calling thread: its tokens reach `on_token` as the server produces them, and a
        set cancel closes the stream, which stops the server generating.

        Several prompts (the K candidates of a step) are sent concurrently as whole requests; on cancel the engine
        stops waiting for them. They are not streamed because llama.cpp's server, by default, interrupts a stream
        when the next request arrives.
        """
        if cancel is not None and cancel.is_set():
            raise GenerationCancelled()
        request = dict(max_new_tokens=max_new_tokens, stop_token_ids=stop_token_ids, score_ids=score_ids)
        if len(prompts) == 1:
            return [self._complete(prompts[0], stream=True, cancel=cancel, on_token=on_token, **request)]
        results: list[Generation | None] = [None] * len(prompts)
        pool = ThreadPoolExecutor(max_workers=min(self.max_concurrency, max(1, len(prompts))))
        try:
            futures: dict[Future, int] = {
                pool.submit(self._complete, prompt, **request): index for index, prompt in enumerate(prompts)
            }
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
                for future in done:
                    results[futures[future]] = future.result()
                if cancel is not None and cancel.is_set():
                    raise GenerationCancelled()
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return [g for g in results if g is not None]

    def next_token_logprobs(
        self, prompts: Sequence[Sequence[int]], token_ids: Sequence[int]
    ) -> list[dict[int, float]]:
        generations = self.generate(prompts, max_new_tokens=1, score_ids=token_ids)
        return [{int(t): g.logprob_at(0, int(t)) for t in token_ids} for g in generations]

    def close(self) -> None:
        """Close the connection pool; the server keeps the model."""
        self.client.close()
