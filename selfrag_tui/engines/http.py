"""HTTP to an OpenAI-compatible server: one httpx Client per engine (connections reused across the K concurrent
requests of a step), a timeout on every request, retries with back-off on connection errors and on 502/503/504,
and server-sent event streams read as they arrive.

Every failure becomes an EngineError that names the URL and what to do. httpx is imported inside functions so
importing the engines package stays cheap.
"""

from __future__ import annotations

import json
import re
import threading
import time
from typing import Any, Iterator

from selfrag_tui.engines.base import EngineError, GenerationCancelled

RETRY_STATUSES = (502, 503, 504)
START_HINT = (
    "Start it (e.g. `vllm serve selfrag/selfrag_llama2_7b`) or fix model.base_url (--base-url, "
    "SELFRAG_MODEL__BASE_URL); it ends in /v1, e.g. http://127.0.0.1:8000/v1."
)


class ServerError(EngineError):
    """The server answered with an HTTP error status."""

    def __init__(self, message: str, *, status: int, body: str) -> None:
        super().__init__(message)
        self.status = status
        self.body = body


def normalise_base_url(base_url: str) -> str:
    """`http://host:8000/v1/` -> `http://host:8000/v1`; adds `http://` when the scheme is missing."""
    url = base_url.strip().rstrip("/")
    if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", url):
        url = "http://" + url
    return url


def server_root(base_url: str) -> str:
    """The server's root, for endpoints outside the OpenAI API (llama.cpp's /extras/tokenize)."""
    return re.sub(r"/v1$", "", base_url)


class ServerClient:
    """JSON requests and event streams to one server, with the retry and error rules above."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        max_connections: int = 8,
    ) -> None:
        import httpx

        self.base_url = normalise_base_url(base_url)
        self.timeout_s = timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        headers = {"Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._httpx = httpx
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    def close(self) -> None:
        self._client.close()

    def url(self, path: str, *, root: bool = False) -> str:
        return (server_root(self.base_url) if root else self.base_url) + path

    # -- plain JSON ------------------------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, *, root: bool = False, timeout_s: float | None = None
                ) -> dict:
        """One JSON request; the decoded JSON answer."""
        url = self.url(path, root=root)
        extra = {} if timeout_s is None else {"timeout": timeout_s}
        response = self._with_retries(
            path, lambda: self._client.request(method, url, json=body, **extra), timeout_s or self.timeout_s
        )
        if response.status_code >= 400:
            raise self._status_error(response.status_code, path, response.text)
        try:
            return response.json()
        except ValueError as exc:
            raise EngineError(
                f"{url} answered with something that is not JSON ({response.text[:80]!r}...): model.base_url "
                f"(--base-url) does not point at an OpenAI-compatible API (it should end in /v1)."
            ) from exc

    # -- server-sent events --------------------------------------------------------------------------------------
    def stream(self, path: str, body: Any, *, cancel: threading.Event | None = None) -> Iterator[dict]:
        """POST `body` and yield each `data:` event's JSON as it arrives, until `data: [DONE]`.

        A set `cancel` closes the connection (the server stops generating) and raises GenerationCancelled.
        """
        url = self.url(path)

        def open_stream():
            request = self._client.build_request("POST", url, json=body)
            return self._client.send(request, stream=True)

        response = self._with_retries(path, open_stream, self.timeout_s)
        try:
            if response.status_code >= 400:
                response.read()
                raise self._status_error(response.status_code, path, response.text)
            content_type = response.headers.get("content-type", "")
            if "text/event-stream" not in content_type:
                response.read()
                try:  # a server that ignores "stream": the whole answer at once
                    yield response.json()
                    return
                except ValueError as exc:
                    raise EngineError(
                        f"{url} answered with neither an event stream nor JSON ({response.text[:80]!r}...): "
                        f"model.base_url (--base-url) does not point at an OpenAI-compatible API."
                    ) from exc
            try:
                for line in response.iter_lines():
                    if cancel is not None and cancel.is_set():
                        raise GenerationCancelled()
                    if not line.startswith("data:"):
                        continue  # blank separators, comments (": ping"), event names
                    data = line[len("data:"):].strip()
                    if data == "[DONE]":
                        return
                    try:
                        event = json.loads(data)
                    except ValueError as exc:
                        raise EngineError(f"The server at {self.base_url} sent an event that is not JSON: "
                                          f"{data[:120]!r}") from exc
                    if isinstance(event, dict) and "error" in event and "choices" not in event:
                        raise ServerError(self._error_text(path, event["error"]), status=500, body=data)
                    yield event
            except self._httpx.TimeoutException as exc:
                raise self._timeout_error(path) from exc
            except self._httpx.TransportError as exc:
                raise EngineError(
                    f"The connection to the server at {self.base_url} broke during {path} ({exc}). Check the "
                    f"server's log; it may have run out of memory."
                ) from exc
            if cancel is not None and cancel.is_set():
                raise GenerationCancelled()
        finally:
            response.close()

    # -- shared rules ----------------------------------------------------------------------------------------------
    def _with_retries(self, path: str, send, timeout_s: float):
        """Send, retrying connection errors and 502/503/504 with doubling back-off; raise clear errors."""
        httpx = self._httpx
        delay = self.backoff_s
        for attempt in range(self.retries + 1):
            try:
                response = send()
            except httpx.TimeoutException as exc:
                if isinstance(exc, httpx.ConnectTimeout) and attempt < self.retries:
                    time.sleep(delay)
                    delay *= 2
                    continue
                raise self._timeout_error(path, timeout_s) from exc
            except httpx.TransportError as exc:  # refused, reset, DNS: the server is not (yet) there
                if attempt < self.retries:
                    time.sleep(delay)
                    delay *= 2
                    continue
                raise EngineError(
                    f"Cannot reach the server at {self.base_url} ({exc}) after {self.retries + 1} attempts. "
                    + START_HINT
                ) from exc
            if response.status_code in RETRY_STATUSES and attempt < self.retries:
                response.close()
                time.sleep(delay)
                delay *= 2
                continue
            return response
        raise AssertionError("unreachable")

    def _timeout_error(self, path: str, timeout_s: float | None = None) -> EngineError:
        return EngineError(
            f"The server at {self.base_url} did not answer {path} within {timeout_s or self.timeout_s:g} s. It may "
            f"be overloaded or still loading the model; raise model.request_timeout_s (--request-timeout-s) or "
            f"try again."
        )

    def _error_text(self, path: str, error: Any) -> str:
        detail = error.get("message", error) if isinstance(error, dict) else error
        return f"The server at {self.base_url} rejected {path}: {str(detail)[:300]}"

    def _status_error(self, status: int, path: str, text: str) -> ServerError:
        detail = text.strip().replace("\n", " ")[:300]
        if status == 404:
            message = (
                f"{self.base_url}{path} does not exist (HTTP 404): model.base_url (--base-url) must be the "
                f"server's OpenAI API root, ending in /v1 (e.g. http://127.0.0.1:8000/v1). Server said: {detail}"
            )
        elif status in (401, 403):
            message = (
                f"The server at {self.base_url} refused the API key (HTTP {status}); set model.api_key "
                f"(--api-key, SELFRAG_MODEL__API_KEY) to the key the server was started with."
            )
        elif status in RETRY_STATUSES:
            message = (
                f"The server at {self.base_url} answered {path} with HTTP {status} after {self.retries + 1} "
                f"attempts: it is overloaded, restarting or behind a proxy that cannot reach it. Server said: {detail}"
            )
        else:
            message = f"The server at {self.base_url} rejected {path} (HTTP {status}): {detail}"
        return ServerError(message, status=status, body=text)
