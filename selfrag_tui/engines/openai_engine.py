"""A client for an OpenAI-compatible completions server, e.g. `vllm serve selfrag/selfrag_llama2_7b`
(SELFRAG_SPEC section 7). For teams that run the 7B model on a shared GPU box; the decoder is unchanged.

How it talks to the server, and why:

- `POST {base_url}/completions` with the prompt as token ids (vLLM accepts them), greedy (`temperature: 0`),
  `echo: false`, `logprobs: k` top-k capped by the server's `--max-logprobs` (20 by default in vLLM), and the
  vLLM extra body fields `stop_token_ids`, `skip_special_tokens: false`, `return_tokens_as_token_ids: true` and,
  where the server supports it, `logprob_token_ids` (the reflection ids' exact logprobs at every position).
  Without that, reflection ids outside the top k count as logprob -100 (`logprob_source="topk"`).
- Servers that only take text prompts and stop strings (llama.cpp's `llama_cpp.server`) are detected once at
  connect time: prompts are then sent as text with the special tokens kept (the server parses them as tokens),
  and returned token strings are mapped back to ids through the local tokenizer. The reflection tokens map
  exactly; an ordinary token whose text is ambiguous (a byte-fallback piece) maps to its usual piece.
- The K candidate prompts of a step are sent concurrently from threads; each request has a timeout, and
  connection errors are retried with back-off.
- Problems a user can fix get a message that says what to do: a wrong URL, a server serving another model, a
  server that hides special tokens, a missing tokenizer.

The tokenizer is loaded locally (from `model.tokenizer`, else `model.model`) so prompts are built as token ids;
it is small and works offline once in the Hugging Face cache or a local folder. Only the standard library is used
for HTTP.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from selfrag_tui.engines.base import (
    MISSING_LOGPROB,
    EngineError,
    EngineInfo,
    FinishReason,
    Generation,
    GenerationCancelled,
    LogprobSource,
    TokenCallback,
)

DEFAULT_TOP_LOGPROBS = 20
TOKEN_ID_PREFIX = "token_id:"
PROBE_INSTRUCTION = "### Instruction:\nWhat is the capital of France?\n\n### Response:\n"
PROBE_PASSAGE = "[Retrieval]<paragraph>Paris\nParis is the capital of France.</paragraph>"


class ServerError(EngineError):
    """The server answered with an HTTP error status."""

    def __init__(self, message: str, *, status: int, body: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


# ---------------------------------------------------------------------------------------------------------------
# Pure helpers over the completions API's JSON (tested without a server).


def normalise_base_url(base_url: str) -> str:
    """`http://host:8000/v1/` -> `http://host:8000/v1`; adds `http://` when the scheme is missing."""
    url = base_url.strip().rstrip("/")
    if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", url):
        url = "http://" + url
    return url


def sentencepiece_text(piece: str) -> str | None:
    """How a server renders one SentencePiece token as text: `▁the` -> ` the`, `<0x0A>` -> a newline.

    None for a byte token that is only part of a UTF-8 character (servers render those as nothing).
    """
    match = re.fullmatch(r"<0x([0-9A-Fa-f]{2})>", piece)
    if match:
        value = int(match.group(1), 16)
        return chr(value) if value < 0x80 else None
    return piece.replace("\u2581", " ")


def build_piece_table(pieces: Sequence[str | None], *, prefer: Sequence[int] = ()) -> dict[str, int]:
    """Token text -> id. Where texts collide the ordinary piece wins over a byte token; ids in `prefer` (the
    reflection tokens) always win."""
    table: dict[str, int] = {}
    byte_ids: dict[str, int] = {}
    for token_id, piece in enumerate(pieces):
        if piece is None:
            continue
        text = sentencepiece_text(piece)
        if text is None:
            continue
        if re.fullmatch(r"<0x[0-9A-Fa-f]{2}>", piece):
            byte_ids.setdefault(text, token_id)
        else:
            table.setdefault(text, token_id)
    for text, token_id in byte_ids.items():
        table.setdefault(text, token_id)
    for token_id in prefer:
        piece = pieces[token_id] if 0 <= token_id < len(pieces) else None
        if piece is not None:
            table[piece] = token_id
    return table


def spm_text_for_server(
    token_ids: Sequence[int], pieces: Sequence[str | None], added_ids: set[int]
) -> str:
    """Text that a llama.cpp server tokenises back into `token_ids` (SentencePiece vocabularies).

    llama.cpp splits text at added tokens and puts a space in front of every stretch of ordinary text that starts
    the prompt or follows an added token, so that space is taken off here. A stretch whose first piece has no
    leading `▁` cannot be written this way; the connect-time round-trip check reports it.
    """
    parts: list[str] = []
    run: list[int] = []

    def flush() -> None:
        if not run:
            return
        raw = bytearray()
        for token_id in run:
            piece = pieces[token_id] or ""
            match = re.fullmatch(r"<0x([0-9A-Fa-f]{2})>", piece)
            raw += bytes([int(match.group(1), 16)]) if match else piece.replace("\u2581", " ").encode("utf-8")
        text = raw.decode("utf-8", errors="replace")
        parts.append(text[1:] if text.startswith(" ") else text)
        run.clear()

    for token_id in token_ids:
        if token_id in added_ids:
            flush()
            parts.append(pieces[token_id] or "")
        else:
            run.append(int(token_id))
    flush()
    return "".join(parts)


def token_key_to_id(key: str, piece_table: Mapping[str, int]) -> int | None:
    """A token as the server names it (`token_id:123` or its text) -> id, or None when unknown."""
    if key.startswith(TOKEN_ID_PREFIX):
        try:
            return int(key[len(TOKEN_ID_PREFIX):])
        except ValueError:
            return None
    return piece_table.get(key)


def max_logprobs_from_error(message: str) -> int | None:
    """The cap a server states when too many logprobs were asked, e.g. vLLM's '... max allowed: 5'."""
    match = re.search(r"(?:max(?:imum)?(?: allowed)?|at most|<=)\D{0,20}(\d+)", message, re.IGNORECASE)
    return int(match.group(1)) if match else None


@dataclass
class ParsedChoice:
    token_ids: list[int]
    token_logprobs: list[float]
    score_logprobs: list[dict[int, float]]
    finish_reason: str | None
    unknown_tokens: list[str] = field(default_factory=list)


def parse_choice(
    choice: Mapping[str, Any], *, score_ids: Sequence[int], piece_table: Mapping[str, int]
) -> ParsedChoice:
    """Token ids, chosen logprobs and the reflection ids' logprobs of one completion choice."""
    logprobs = choice.get("logprobs") or {}
    tokens = list(logprobs.get("tokens") or [])
    chosen = list(logprobs.get("token_logprobs") or [])
    tops = list(logprobs.get("top_logprobs") or [])
    wanted = set(int(i) for i in score_ids)
    token_ids: list[int] = []
    token_logprobs: list[float] = []
    score_logprobs: list[dict[int, float]] = []
    unknown: list[str] = []
    for position, token in enumerate(tokens):
        token_id = token_key_to_id(token, piece_table)
        if token_id is None:
            unknown.append(token)
            token_id = -1
        token_ids.append(token_id)
        value = chosen[position] if position < len(chosen) else None
        token_logprobs.append(float(value) if value is not None else MISSING_LOGPROB)
        top = tops[position] if position < len(tops) and tops[position] else {}
        scores: dict[int, float] = {}
        for key, lp in top.items():
            key_id = token_key_to_id(key, piece_table)
            if key_id is not None and key_id in wanted and lp is not None:
                scores[key_id] = float(lp)
        if token_id in wanted and value is not None:
            scores.setdefault(token_id, float(value))
        score_logprobs.append(scores)
    return ParsedChoice(token_ids, token_logprobs, score_logprobs, choice.get("finish_reason"), unknown)


def cut_at_stop(parsed: ParsedChoice, *, stop_ids: set[int], eos_token_id: int) -> tuple[ParsedChoice, FinishReason]:
    """Keep tokens up to and including the first stop id or EOS, and say why generation ended."""
    for position, token_id in enumerate(parsed.token_ids):
        if token_id == eos_token_id or token_id in stop_ids:
            end = position + 1
            reason: FinishReason = "eos" if token_id == eos_token_id else "stop"
            return (
                ParsedChoice(
                    parsed.token_ids[:end],
                    parsed.token_logprobs[:end],
                    parsed.score_logprobs[:end],
                    parsed.finish_reason,
                    parsed.unknown_tokens,
                ),
                reason,
            )
    if parsed.finish_reason == "length":
        return parsed, "length"
    # "stop" without a stop id in the tokens: the server ended on EOS and left it out.
    return parsed, "eos"


# ---------------------------------------------------------------------------------------------------------------


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
        self.base_url = normalise_base_url(base_url)
        self.model_name = served_model
        self.served_model = served_model
        self.api_key = api_key
        self.timeout_s = timeout_s
        self.retries = retries
        self.max_concurrency = max(1, max_concurrency)
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
        engine.served_model = engine.check_served_model(model)
        engine.capabilities = engine.probe(top_logprobs=top_logprobs)
        return engine

    def check_served_model(self, model: str) -> str:
        """The server's id for `model`; a clear error when the server serves something else."""
        data = self._request("GET", "/models")
        served = [str(entry.get("id")) for entry in data.get("data", []) if isinstance(entry, Mapping)]
        if model in served:
            return model
        same_name = [s for s in served if Path(s).name == Path(model).name]
        if len(same_name) == 1:
            return same_name[0]
        raise EngineError(
            f"The server at {self.base_url} serves {served or 'no models'}, not '{model}'. Start it with the "
            f"Self-RAG model (e.g. `vllm serve selfrag/selfrag_llama2_7b`), or set model.model to the name the "
            f"server uses for it (SELFRAG_MODEL__MODEL=...)."
        )

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
                response = self._request("POST", "/completions", body)
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

    # -- HTTP ----------------------------------------------------------------------------------------------------
    def _request(self, method: str, path: str, body: Any = None, *, root: bool = False) -> dict:
        url = (re.sub(r"/v1$", "", self.base_url) if root else self.base_url) + path
        data = json.dumps(body).encode("utf-8") if body is not None else None
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        delay = 0.5
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(url, data=data, headers=headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    raw = response.read()
            except urllib.error.HTTPError as exc:
                text = exc.read().decode("utf-8", errors="replace")
                if exc.code in (502, 503, 504) and attempt < self.retries:
                    time.sleep(delay)
                    delay *= 2
                    continue
                raise ServerError(self._http_error_message(exc.code, path, text), status=exc.code, body=text) from exc
            except (TimeoutError, socket.timeout) as exc:
                raise EngineError(
                    f"The server at {self.base_url} did not answer {path} within {self.timeout_s:g} s. It may be "
                    f"overloaded or still loading the model; raise model.request_timeout_s or try again."
                ) from exc
            except (urllib.error.URLError, ConnectionError) as exc:
                reason = getattr(exc, "reason", exc)
                if isinstance(reason, (TimeoutError, socket.timeout)):
                    raise EngineError(
                        f"The server at {self.base_url} did not answer {path} within {self.timeout_s:g} s; raise "
                        f"model.request_timeout_s or check the server."
                    ) from exc
                if attempt < self.retries:
                    time.sleep(delay)
                    delay *= 2
                    continue
                raise EngineError(
                    f"Cannot reach the server at {self.base_url} ({reason}) after {self.retries + 1} attempts. Start "
                    f"it (e.g. `vllm serve selfrag/selfrag_llama2_7b`) or fix model.base_url "
                    f"(SELFRAG_MODEL__BASE_URL); it should end in /v1, e.g. http://127.0.0.1:8000/v1."
                ) from exc
            try:
                return json.loads(raw)
            except json.JSONDecodeError as exc:
                raise EngineError(
                    f"{url} answered with something that is not JSON ({raw[:80]!r}...): model.base_url does not point "
                    f"at an OpenAI-compatible API (it should end in /v1)."
                ) from exc
        raise AssertionError("unreachable")

    def _http_error_message(self, status: int, path: str, text: str) -> str:
        detail = text.strip().replace("\n", " ")[:300]
        if status == 404:
            return (
                f"{self.base_url}{path} does not exist (HTTP 404): model.base_url must be the server's OpenAI API "
                f"root, ending in /v1 (e.g. http://127.0.0.1:8000/v1). Server said: {detail}"
            )
        if status in (401, 403):
            return (
                f"The server at {self.base_url} refused the API key (HTTP {status}); set model.api_key "
                f"(SELFRAG_MODEL__API_KEY) to the key the server was started with."
            )
        return f"The server at {self.base_url} rejected {path} (HTTP {status}): {detail}"

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
        data = self._request("POST", "/extras/tokenize", {"input": text}, root=True)
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
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.served_model,
            "prompt": [int(t) for t in prompt] if caps.token_id_prompts else self._prompt_text(prompt),
            "max_tokens": max_new_tokens,
            "temperature": 0.0,
            "logprobs": caps.top_logprobs,
            "echo": False,
            "stream": False,
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
    ) -> Generation:
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
        )
        response = self._request("POST", "/completions", body)
        choices = response.get("choices") or []
        if not choices:
            raise EngineError(f"The server at {self.base_url} returned no completion choices: {str(response)[:200]}")
        parsed = parse_choice(choices[0], score_ids=score_ids, piece_table=self._piece_table)
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
        """Send the prompts concurrently; on cancel, stop waiting and abandon requests still in flight.

        Responses arrive whole (no streaming), so `on_token` is called for each token once the answer is in.
        """
        if cancel is not None and cancel.is_set():
            raise GenerationCancelled()
        results: list[Generation | None] = [None] * len(prompts)
        pool = ThreadPoolExecutor(max_workers=min(self.max_concurrency, max(1, len(prompts))))
        try:
            futures: dict[Future, int] = {
                pool.submit(
                    self._complete,
                    prompt,
                    max_new_tokens=max_new_tokens,
                    stop_token_ids=stop_token_ids,
                    score_ids=score_ids,
                ): index
                for index, prompt in enumerate(prompts)
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
        generations = [g for g in results if g is not None]
        if on_token is not None and len(generations) == 1:
            for token_id in generations[0].token_ids:
                on_token(token_id, self.decode([token_id]))
        return generations

    def next_token_logprobs(
        self, prompts: Sequence[Sequence[int]], token_ids: Sequence[int]
    ) -> list[dict[int, float]]:
        generations = self.generate(prompts, max_new_tokens=1, score_ids=token_ids)
        return [{int(t): g.logprob_at(0, int(t)) for t in token_ids} for g in generations]

    def close(self) -> None:
        """Nothing to release: the server keeps the model."""


def load_tokenizer(name_or_path: str) -> Any:
    """The model's Hugging Face tokenizer from a local folder or the local cache (never downloaded here)."""
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:  # pragma: no cover - transformers is a core dependency
        raise EngineError(f"The openai engine needs transformers for the tokenizer: {exc}") from exc
    import os

    folder = Path(name_or_path).expanduser()
    source = str(folder) if folder.is_dir() else name_or_path
    local_only = folder.is_dir() or os.environ.get("HF_HUB_OFFLINE") == "1"
    try:
        return AutoTokenizer.from_pretrained(source, local_files_only=local_only)
    except Exception as exc:  # noqa: BLE001 - transformers raises OSError, ValueError, HFValidationError ...
        raise EngineError(
            f"The openai engine builds prompts as token ids and needs the model's tokenizer locally, but "
            f"'{name_or_path}' could not be loaded ({exc}). Set model.tokenizer to a folder with the Self-RAG "
            f"tokenizer files, or fetch them once: hf download selfrag/selfrag_llama2_7b "
            f"--include 'tokenizer*' 'special_tokens_map.json'."
        ) from exc
