"""A client for any OpenAI-compatible ``/v1/chat/completions`` endpoint.

Works with vLLM, Ollama (``http://localhost:11434/v1``), the llama.cpp server, LM Studio,
hosted APIs, and :func:`engram.generate.server.serve_openai_compatible`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit

import httpx

from engram.errors import GenerationError
from engram.generate.base import (
    BaseGenerator,
    Message,
    StopFilter,
    apply_stop,
    validate_messages,
    validate_options,
)

DEFAULT_TIMEOUT = 120.0
DEFAULT_CONTEXT_WINDOW = 8192
CHARS_PER_TOKEN = 4  # rough average for English text with BPE tokenizers

_HINTS = {
    400: "check the request options (max_tokens, stop) and the messages",
    401: "check the API key (api_key=, ENGRAM_LLM_API_KEY or OPENAI_API_KEY)",
    403: "check the API key and its permissions",
    404: "check base_url (it usually ends in /v1) and the model name",
    429: "the server is rate limiting or overloaded; retry later",
}


def normalize_base_url(url: str) -> str:
    """``http://host:port`` -> ``http://host:port/v1``; strips ``/chat/completions`` and ``/``."""
    url = (url or "").strip().rstrip("/")
    if url.endswith("/chat/completions"):
        url = url[: -len("/chat/completions")]
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise GenerationError(
            f"base_url {url!r} is not an http(s) URL; expected e.g. http://127.0.0.1:8000/v1"
        )
    return url if parts.path.strip("/") else url + "/v1"


def _error_text(body: str) -> str:
    """The human-readable message inside an error body (OpenAI, FastAPI or plain text)."""
    try:
        data = json.loads(body)
    except ValueError:
        return body.strip()[:500] or "(empty body)"
    if isinstance(data, dict):
        error = data.get("error", data.get("detail", data.get("message")))
        if isinstance(error, dict):
            error = error.get("message") or json.dumps(error)
        if error is not None:
            return str(error)[:500]
    return json.dumps(data)[:500]


class OpenAIGenerator(BaseGenerator):
    """Chat completions over HTTP from an OpenAI-compatible server.

    Args:
        base_url: e.g. ``http://127.0.0.1:8000/v1``; default ``$ENGRAM_LLM_BASE_URL``, or
            ``https://api.openai.com/v1`` when only ``OPENAI_API_KEY`` is set.
        model: model name sent to the server; default ``$ENGRAM_LLM_MODEL``.
        api_key: bearer token; default ``$ENGRAM_LLM_API_KEY``, then ``$OPENAI_API_KEY``.
        timeout: seconds for connecting and between received bytes; default
            ``$ENGRAM_LLM_TIMEOUT`` or 120.
        context_window: the model's context length in tokens (the API does not report it);
            default ``$ENGRAM_LLM_CONTEXT_WINDOW`` or 8192.
        tokenizer: optional callable ``text -> token list (or count)`` for exact
            :meth:`count_tokens`; without it counts are approximate (~4 characters a token).
        headers: extra HTTP headers.
    """

    def __init__(
        self,
        base_url: str | None = None,
        model: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | None = None,
        context_window: int | None = None,
        tokenizer: Callable[[str], Any] | None = None,
        headers: dict[str, str] | None = None,
    ):
        env = os.environ
        api_key = api_key or env.get("ENGRAM_LLM_API_KEY") or env.get("OPENAI_API_KEY") or None
        base_url = base_url or env.get("ENGRAM_LLM_BASE_URL")
        if not base_url:
            if not env.get("OPENAI_API_KEY"):
                raise GenerationError(
                    "no endpoint for OpenAIGenerator: pass base_url= (e.g. "
                    "http://127.0.0.1:8000/v1) or set ENGRAM_LLM_BASE_URL"
                )
            base_url = "https://api.openai.com/v1"
        self.base_url = normalize_base_url(base_url)
        self.url = self.base_url + "/chat/completions"
        model = model or env.get("ENGRAM_LLM_MODEL")
        if not model:
            raise GenerationError(
                f"no model name for {self.base_url}: pass model= or set ENGRAM_LLM_MODEL "
                "(servers that serve a single model accept any name)"
            )
        self.model_id = model
        self.api_key = api_key
        self.timeout = float(timeout if timeout is not None else self._env_number("TIMEOUT"))
        if not self.timeout > 0:
            raise GenerationError(f"timeout must be a positive number of seconds, got {timeout}")
        self.context_window = int(
            context_window
            if context_window is not None
            else self._env_number("CONTEXT_WINDOW", DEFAULT_CONTEXT_WINDOW)
        )
        self.tokenizer = tokenizer
        self.headers = {"Accept": "application/json", **(headers or {})}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self._http: httpx.Client | None = None

    @staticmethod
    def _env_number(name: str, default: float = DEFAULT_TIMEOUT) -> float:
        value = os.environ.get(f"ENGRAM_LLM_{name}", "").strip()
        if not value:
            return default
        try:
            return float(value)
        except ValueError:
            raise GenerationError(f"ENGRAM_LLM_{name} must be a number, got {value!r}") from None

    # -- HTTP --------------------------------------------------------------------------------

    @property
    def client(self) -> httpx.Client:
        """The underlying ``httpx.Client`` (created on first use)."""
        if self._http is None:
            self._http = httpx.Client(timeout=self.timeout, headers=self.headers)
        return self._http

    def close(self) -> None:
        """Close the HTTP connections."""
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> OpenAIGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _transport_error(self, exc: httpx.HTTPError) -> GenerationError:
        if isinstance(exc, httpx.TimeoutException):
            return GenerationError(
                f"request to {self.url} timed out after {self.timeout:g} s "
                f"({type(exc).__name__}); the server may be busy or still loading the model: "
                "pass a larger timeout= or set ENGRAM_LLM_TIMEOUT"
            )
        if isinstance(exc, httpx.ConnectError):
            return GenerationError(
                f"could not connect to {self.url}: {exc}; check that the server is running "
                "and that base_url / ENGRAM_LLM_BASE_URL is right"
            )
        return GenerationError(f"request to {self.url} failed: {type(exc).__name__}: {exc}")

    def _status_error(self, response: httpx.Response) -> GenerationError:
        try:
            body = response.read().decode("utf-8", "replace")
        except httpx.HTTPError:
            body = ""
        status = response.status_code
        hint = _HINTS.get(status, "check the server's logs" if status >= 500 else "")
        return GenerationError(
            f"{self.url} returned HTTP {status} {response.reason_phrase}: {_error_text(body)}"
            + (f" ({hint})" if hint else "")
        )

    def _malformed(self, what: str) -> GenerationError:
        return GenerationError(
            f"malformed reply from {self.url}: {what}; check that base_url points at an "
            "OpenAI-compatible chat completions API"
        )

    def _payload(
        self, messages: list[Message], max_tokens: int, temperature: float, stops: list[str]
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "model": self.model_id,
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": float(temperature),
        }
        if stops:
            payload["stop"] = stops
        return payload

    def _message_text(self, data: Any) -> str:
        try:
            content = data["choices"][0]["message"].get("content")
        except (KeyError, IndexError, TypeError, AttributeError):
            raise self._malformed("no choices[0].message in the JSON reply") from None
        if content is not None and not isinstance(content, str):
            raise self._malformed("choices[0].message.content is not a string")
        return content or ""

    # -- Generator API -----------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        """Exact with ``tokenizer=``; otherwise ``ceil(len(text) / 4)``, an approximation."""
        if self.tokenizer is not None:
            result = self.tokenizer(text)
            return result if isinstance(result, int) else len(result)
        return math.ceil(len(text) / CHARS_PER_TOKEN)

    def complete(
        self,
        messages: list[Message],
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> str:
        """One non-streaming request; returns the reply text."""
        messages = validate_messages(messages)
        stops = validate_options(max_tokens, temperature, stop)
        payload = self._payload(messages, max_tokens, temperature, stops)
        try:
            response = self.client.post(self.url, json=payload)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        if response.status_code >= 400:
            raise self._status_error(response)
        try:
            data = response.json()
        except ValueError:
            raise self._malformed(f"not JSON (starts with {response.text[:200]!r})") from None
        return "".join(apply_stop([self._message_text(data)], stops))

    def stream(
        self,
        messages: list[Message],
        max_tokens: int = 256,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Iterator[str]:
        """Stream the reply over server-sent events (``stream: true``)."""
        messages = validate_messages(messages)
        stops = validate_options(max_tokens, temperature, stop)
        payload = {**self._payload(messages, max_tokens, temperature, stops), "stream": True}
        return self._stream(payload, stops)

    def _stream(self, payload: dict[str, Any], stops: list[str]) -> Iterator[str]:
        stop_filter = StopFilter(stops)
        headers = {"Accept": "text/event-stream"}
        try:
            with self.client.stream("POST", self.url, json=payload, headers=headers) as response:
                if response.status_code >= 400:
                    raise self._status_error(response)
                if "text/event-stream" not in response.headers.get("content-type", ""):
                    # A server that ignores "stream": answer with the whole message.
                    try:
                        data = json.loads(response.read())
                    except ValueError:
                        raise self._malformed("neither an event stream nor JSON") from None
                    yield from apply_stop([self._message_text(data)], stops)
                    return
                for piece in self._events(response):
                    out = stop_filter.push(piece)
                    if out:
                        yield out
                    if stop_filter.stopped:
                        return
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        tail = stop_filter.flush()
        if tail:
            yield tail

    def _events(self, response: httpx.Response) -> Iterator[str]:
        """Content pieces from the ``data:`` lines of an SSE chat completion stream."""
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue  # blank separators, ": comments", event:/id:/retry: fields
            data = line[5:].strip()
            if data == "[DONE]":
                return
            try:
                event = json.loads(data)
            except ValueError:
                raise self._malformed(f"bad event stream line {line[:200]!r}") from None
            if not isinstance(event, dict):
                raise self._malformed(f"bad event stream line {line[:200]!r}")
            if event.get("error") is not None:
                raise GenerationError(
                    f"{self.url} reported an error while streaming: "
                    f"{_error_text(json.dumps(event))}"
                )
            choices = event.get("choices")
            if not choices:
                continue  # e.g. a final usage-only chunk
            try:
                content = (choices[0].get("delta") or {}).get("content")
            except (AttributeError, IndexError, TypeError):
                raise self._malformed(f"bad chunk {data[:200]!r}") from None
            if content:
                yield str(content)
