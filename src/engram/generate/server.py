"""A small OpenAI-compatible chat completions server around any :class:`Generator`.

Standard library only (``http.server``), one thread per request, streaming over SSE.
Meant for tests and for exposing a local model to OpenAI clients on a trusted network:
it has no TLS, and authentication is a single optional bearer key.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from engram.errors import GenerationError
from engram.generate.base import Generator, validate_messages, validate_options

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024 * 1024
COMPLETION_PATHS = ("/v1/chat/completions", "/chat/completions")


class OpenAICompatibleServer(ThreadingHTTPServer):
    """Serves ``POST /v1/chat/completions``, ``GET /v1/models`` and ``GET /health``."""

    daemon_threads = True

    def __init__(
        self,
        generator: Generator,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
    ):
        self.generator = generator
        self.api_key = api_key
        self._thread: threading.Thread | None = None
        self._closed = False
        super().__init__((host, port), _Handler)

    @property
    def base_url(self) -> str:
        """``http://host:port/v1`` (a wildcard host is reported as 127.0.0.1)."""
        address, port = self.server_address[:2]
        host = address.decode() if isinstance(address, bytes) else str(address)
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        return f"http://{host}:{port}/v1"

    def start(self) -> OpenAICompatibleServer:
        """Serve in a daemon thread; returns ``self``."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self.serve_forever,
                kwargs={"poll_interval": 0.1},
                name="engram-openai-server",
                daemon=True,
            )
            self._thread.start()
        return self

    def shutdown(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            super().shutdown()
            self._thread.join(timeout=5)
        self.server_close()

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def serve_openai_compatible(
    generator: Generator,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    api_key: str | None = None,
) -> tuple[OpenAICompatibleServer, str]:
    """Start serving ``generator`` in a background thread; return ``(server, base_url)``.

    ``port=0`` picks a free port. Call ``server.shutdown()`` to stop. With ``api_key``,
    requests must send ``Authorization: Bearer <api_key>``.
    """
    try:
        server = OpenAICompatibleServer(generator, host, port, api_key=api_key)
    except OSError as exc:
        raise GenerationError(f"cannot listen on {host}:{port}: {exc}") from exc
    server.start()
    return server, server.base_url


class _ClientGone(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    server: OpenAICompatibleServer
    server_version = "engram-openai/0.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("%s - %s", self.address_string(), format % args)

    # -- helpers -------------------------------------------------------------------------------

    def _send_json(self, status: int, obj: Any) -> None:
        body = json.dumps(obj).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_error_json(self, status: int, message: str, kind: str) -> None:
        self._send_json(status, {"error": {"message": message, "type": kind, "code": status}})

    def _authorized(self) -> bool:
        key = self.server.api_key
        if not key:
            return True
        sent = self.headers.get("Authorization", "")
        if hmac.compare_digest(sent.encode(), f"Bearer {key}".encode()):
            return True
        self._send_error_json(401, "missing or wrong API key", "authentication_error")
        return False

    def _write_event(self, obj: Any) -> None:
        data = obj if isinstance(obj, str) else json.dumps(obj)
        try:
            self.wfile.write(f"data: {data}\n\n".encode())
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError) as exc:
            raise _ClientGone from exc

    # -- routes --------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/health":
            self._send_json(200, {"status": "ok"})
        elif not self._authorized():
            return
        elif path in ("/v1/models", "/models"):
            model = {"id": self.server.generator.model_id, "object": "model", "owned_by": "engram"}
            self._send_json(200, {"object": "list", "data": [model]})
        else:
            self._send_error_json(404, f"no route GET {path}", "not_found_error")

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        path = self.path.split("?", 1)[0].rstrip("/")
        if path not in COMPLETION_PATHS:
            self._send_error_json(404, f"no route POST {path}", "not_found_error")
            return
        if not self._authorized():
            return
        request = self._read_request()
        if request is None:
            return
        try:
            messages = validate_messages(request.get("messages"))
            max_tokens = request.get("max_completion_tokens") or request.get("max_tokens") or 256
            temperature = request.get("temperature")
            temperature = 0.0 if temperature is None else temperature
            stop = validate_options(max_tokens, temperature, request.get("stop"))
        except GenerationError as exc:
            self._send_error_json(400, str(exc), "invalid_request_error")
            return
        options = {"max_tokens": max_tokens, "temperature": temperature, "stop": stop or None}
        if request.get("stream"):
            self._stream(messages, options)
        else:
            self._complete(messages, options)

    def _read_request(self) -> dict[str, Any] | None:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self._send_error_json(411, "Content-Length required", "invalid_request_error")
            return None
        if length < 0 or length > MAX_BODY_BYTES:
            self._send_error_json(413, "request body too large", "invalid_request_error")
            return None
        try:
            request = json.loads(self.rfile.read(length))
        except ValueError:
            self._send_error_json(400, "the request body is not JSON", "invalid_request_error")
            return None
        if not isinstance(request, dict):
            self._send_error_json(400, "the body must be a JSON object", "invalid_request_error")
            return None
        return request

    def _finish_reason(self, text: str, max_tokens: int) -> str:
        try:
            return "length" if self.server.generator.count_tokens(text) >= max_tokens else "stop"
        except Exception:
            return "stop"

    def _complete(self, messages: list[dict[str, str]], options: dict[str, Any]) -> None:
        generator = self.server.generator
        try:
            text = generator.complete(messages, **options)
        except Exception as exc:
            self._send_error_json(500, _describe(exc), "server_error")
            return
        try:
            prompt_tokens = sum(generator.count_tokens(m["content"]) for m in messages)
            completion_tokens = generator.count_tokens(text)
        except Exception:
            prompt_tokens = completion_tokens = 0
        self._send_json(
            200,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": generator.model_id,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": self._finish_reason(text, options["max_tokens"]),
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            },
        )

    def _stream(self, messages: list[dict[str, str]], options: dict[str, Any]) -> None:
        generator = self.server.generator
        pieces: Any = None
        first: str | None = None
        try:  # start generating before the headers go out, so early failures get a status
            pieces = iter(generator.stream(messages, **options))
            first = next(pieces, None)
        except Exception as exc:
            self._send_error_json(500, _describe(exc), "server_error")
            return
        chunk_id, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

        def chunk(delta: dict[str, str], finish: str | None = None) -> dict[str, Any]:
            return {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": generator.model_id,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }

        self.close_connection = True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        text: list[str] = []
        try:
            self._write_event(chunk({"role": "assistant", "content": ""}))
            piece = first
            while piece is not None:
                if piece:
                    text.append(piece)
                    self._write_event(chunk({"content": piece}))
                piece = next(pieces, None)
            finish = self._finish_reason("".join(text), options["max_tokens"])
            self._write_event(chunk({}, finish))
            self._write_event("[DONE]")
        except _ClientGone:
            pass
        except Exception as exc:
            error = {"message": _describe(exc), "type": "server_error", "code": 500}
            with contextlib.suppress(_ClientGone):
                self._write_event({"error": error})
        finally:
            close = getattr(pieces, "close", None)
            if close is not None:
                close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, GenerationError):
        return str(exc)
    return f"generation failed: {type(exc).__name__}: {exc}"
