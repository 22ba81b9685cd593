"""OpenAI-compatible chat with memory: ``POST /v1/chat/completions`` and ``GET /v1/models``.

Any tool that speaks the OpenAI chat API gets Engram's memory by pointing its base URL at
``engram serve`` (``http://127.0.0.1:8765/v1``) with an Engram API key as its API key. The last
user message is the question: Engram recalls evidence for it in one namespace and answers with
citations through ``Memory.ask`` (the configured reader and generator). Streaming sends
``chat.completion.chunk`` events ending in ``data: [DONE]``.

The namespace is, in order: the ``X-Engram-Namespace`` header; the model name ``engram:NS``; the
key's only namespace (a key made for exactly one namespace); ``default`` for a key that reaches
it. With ``remember`` (a body field, e.g. ``extra_body={"remember": true}``, or the header
``X-Engram-Remember: true``) the user's message is stored as a conversation turn after the
answer; that needs a write key. See docs/integrations.md.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from engram.errors import EngramError
from engram.memory import check_namespace
from engram.server.auth import _check_scope, authenticated
from engram.server.errors import ApiError, engram_error_status, error_body
from engram.server.keys import ApiKey
from engram.server.service import MemoryService, check_where, turn_document
from engram.server.streaming import threaded

log = logging.getLogger(__name__)
MODEL = "engram"
_TRUE = ("1", "true", "yes", "on")


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str = Field(max_length=64)
    content: str | list[dict[str, Any]] | None = None

    def text(self) -> str:
        """The message's text (the text parts of a multi-part message, joined)."""
        if isinstance(self.content, str):
            return self.content
        parts = self.content or []
        return "\n".join(str(p.get("text", "")) for p in parts if p.get("type") == "text")


class ChatRequest(BaseModel):
    """An OpenAI chat completion request; OpenAI sampling options are accepted and ignored."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(MODEL, max_length=200, description="'engram' or 'engram:NAMESPACE'")
    messages: list[ChatMessage] = Field(min_length=1, max_length=1000)
    stream: bool = False
    n: int = Field(1, ge=1, le=1, description="Engram returns one choice")
    remember: bool = Field(False, description="store the user's message as a turn (write key)")
    session: str | None = Field(None, max_length=200, description="session of a remembered turn")
    k: int | None = Field(None, ge=1, le=50, description="passages to recall")
    where: dict[str, Any] | str | None = Field(None, description="metadata filter for recall")
    sources: bool = Field(True, description="append a 'Sources:' list to the content")


def _question(messages: list[ChatMessage]) -> str:
    for message in reversed(messages):
        if message.role == "user":
            text = message.text().strip()
            if not text:
                raise ApiError(400, "the last user message has no text", "invalid_request")
            if len(text) > 10_000:
                raise ApiError(400, "the last user message is over 10000 characters")
            return text
    raise ApiError(400, "no user message: send at least one message with role 'user'")


def chat_namespace(key: ApiKey, header: str | None, model: str) -> str:
    """The namespace a chat request addresses (see the module's docstring)."""
    named = header or (model.partition(":")[2] if model.startswith(f"{MODEL}:") else "")
    if model != MODEL and not model.startswith(f"{MODEL}:"):
        raise ApiError(404, f"unknown model {model!r}: use {MODEL!r} or '{MODEL}:NAMESPACE'")
    if header and model.startswith(f"{MODEL}:") and model != f"{MODEL}:{header}":
        raise ApiError(400, f"model {model!r} and X-Engram-Namespace {header!r} disagree")
    named = named or key.default_namespace() or ""
    if not named:
        raise ApiError(
            400,
            "this key reaches several namespaces: name one with the X-Engram-Namespace "
            "header or the model 'engram:NAMESPACE'",
        )
    try:
        check_namespace(named)
    except EngramError as exc:
        raise ApiError(400, str(exc), "invalid_namespace") from None
    if not key.reaches(named):
        raise ApiError(403, f"this key does not reach namespace {named!r}")
    return named


def _content(answer: dict[str, Any], sources: bool) -> tuple[str, str]:
    """The message content and the 'Sources:' footer (empty when off or nothing is cited)."""
    footer = ""
    if sources and answer["citations"]:
        lines = [f"[{c['number']}] {c['title'] or c['doc_id']} ({c['source']})".replace(" ()", "")
                 for c in answer["citations"]]  # fmt: skip
        footer = "\n\nSources:\n" + "\n".join(lines)
    return answer["answer"], footer


def _chunk(cid: str, model: str, created: int, delta: dict[str, Any], **extra: Any) -> bytes:
    body = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": extra.pop("finish", None)}],
        **extra,
    }
    return f"data: {json.dumps(body, ensure_ascii=False)}\n\n".encode()


def _completion(cid: str, model: str, out: dict[str, Any], sources: bool) -> dict[str, Any]:
    content, footer = _content(out, sources)
    return {
        "id": cid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content + footer},
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "engram": out,
    }


async def _stream(
    cid: str, model: str, work: Callable[[Callable[[str], None] | None], Any], sources: bool
) -> AsyncIterator[bytes]:
    created = int(time.time())
    yield _chunk(cid, model, created, {"role": "assistant", "content": ""})
    async for kind, value in threaded(work, name="engram-chat"):
        if kind == "token":
            if value:
                yield _chunk(cid, model, created, {"content": value})
        elif kind == "done":
            _, footer = _content(value, sources)
            if footer:
                yield _chunk(cid, model, created, {"content": footer})
            yield _chunk(cid, model, created, {}, finish="stop", engram=value)
        else:
            if isinstance(value, EngramError):
                _, code = engram_error_status(value)
                error = error_body(code, str(value))
            else:
                log.error("chat completion stream failed", exc_info=value)
                error = error_body("internal_error", "internal server error")
            yield f"data: {json.dumps(error)}\n\n".encode()
    yield b"data: [DONE]\n\n"


def chat_router(service: MemoryService) -> APIRouter:
    """``GET /v1/models`` and ``POST /v1/chat/completions`` over ``service``."""
    router = APIRouter(tags=["openai"])
    started = int(time.time())

    @router.get("/v1/models")
    def models(key: Annotated[ApiKey, Depends(authenticated)]) -> dict[str, Any]:
        """The models a chat request may name: ``engram`` and ``engram:NS`` per namespace."""
        names = [n["name"] for n in service.namespaces() if key.reaches(n["name"])]
        ids = [MODEL, *(f"{MODEL}:{n}" for n in names)]
        data = [{"id": i, "object": "model", "created": started, "owned_by": "engram"} for i in ids]
        return {"object": "list", "data": data}

    @router.post(
        "/v1/chat/completions",
        response_model=None,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def chat_completions(
        body: ChatRequest,
        key: Annotated[ApiKey, Depends(authenticated)],
        x_engram_namespace: Annotated[str | None, Header(max_length=128)] = None,
        x_engram_remember: Annotated[str | None, Header(max_length=16)] = None,
    ) -> Any:
        """Answer the last user message from memory, with citations (OpenAI chat format).

        ``remember`` (or ``X-Engram-Remember: true``) stores the user's message as a turn."""
        _check_scope(key, "read")
        namespace = chat_namespace(key, x_engram_namespace, body.model)
        remember = body.remember or (x_engram_remember or "").strip().lower() in _TRUE
        if remember:
            _check_scope(key, "write")
        question = _question(body.messages)
        check_where(body.where)
        exists = await run_in_threadpool(service.exists, namespace)

        def work(on_token: Callable[[str], None] | None) -> dict[str, Any]:
            answer = service.ask_memory(
                question,
                namespaces=namespace if exists else [],
                k=body.k,
                where=body.where,
                on_token=on_token,
            )
            out = {**answer.to_dict(), "namespace": namespace, "remembered": []}
            if remember:
                turn = turn_document(question, "user", session=body.session)
                out["remembered"] = service.add([turn], namespace)["ids"]
            return out

        cid = f"chatcmpl-{secrets.token_hex(12)}"
        if not body.stream:
            out = await run_in_threadpool(work, None)
            return _completion(cid, body.model, out, body.sources)
        return StreamingResponse(
            _stream(cid, body.model, work, body.sources),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router
