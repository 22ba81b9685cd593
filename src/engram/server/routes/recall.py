"""Routes that recall: search (with clusters) and ask (JSON or server-sent events)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from engram.errors import EngramError
from engram.server.auth import Access, search_access
from engram.server.errors import engram_error_status, error_body
from engram.server.models import AskRequest, SearchRequest, SearchResponse, _responses
from engram.server.service import MemoryService, check_where
from engram.server.streaming import sse, threaded

log = logging.getLogger("engram.server.app")


def recall_router(service: MemoryService) -> APIRouter:
    """``/v1/namespaces/{namespace}/search`` and ``/v1/namespaces/{namespace}/ask``."""
    router = APIRouter()

    @router.post(
        "/v1/namespaces/{namespace}/search",
        tags=["recall"],
        response_model=None,
        responses={200: {"model": SearchResponse}, **_responses(400, 404)},
    )
    def search(body: SearchRequest, a: Annotated[Access, Depends(search_access)]) -> dict:
        """Hybrid, keyword or vector search; ``clusters`` groups the hits by similarity."""
        if a.namespace != "*":
            service.require(a.namespace)
        hits = service.search(
            body.query,
            namespaces=a.namespaces(service),
            k=body.k,
            mode=body.mode,
            where=body.where,
            alpha=body.alpha,
            fusion=body.fusion,
            with_vectors=body.clusters,
        )
        out: dict[str, Any] = {"results": [h.to_dict() for h in hits]}
        if body.clusters:
            from engram.cluster import cluster_hits

            out["clusters"] = [
                {"label": c.label, "keywords": c.keywords, "score": c.score, "ids": c.ids}
                for c in cluster_hits(hits, threshold=service.memory.config.cluster_threshold)
            ]
        return out

    @router.post(
        "/v1/namespaces/{namespace}/ask",
        tags=["recall"],
        response_model=None,
        responses={
            200: {
                "description": "The answer as JSON, or server-sent events when streaming",
                "content": {"text/event-stream": {}},
            },
            **_responses(400, 404, 502),
        },
    )
    async def ask(body: AskRequest, request: Request, a: Annotated[Access, Depends(search_access)]):
        """Answer from memory with citations; ``stream`` (or ``Accept: text/event-stream``)
        sends ``token`` events, then ``answer`` (the JSON answer), then ``done``."""
        if a.namespace != "*":
            await run_in_threadpool(service.require, a.namespace)
        check_where(body.where)
        namespaces = await run_in_threadpool(a.namespaces, service)
        stream = body.stream or "text/event-stream" in request.headers.get("accept", "")
        if not stream:
            answer = await run_in_threadpool(
                lambda: service.ask(
                    body.question, namespaces=namespaces, k=body.k, where=body.where
                )
            )
            return answer.to_dict()
        return StreamingResponse(
            _answer_events(service, body, namespaces),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    return router


async def _answer_events(
    service: MemoryService, body: AskRequest, namespaces: str | list[str]
) -> AsyncIterator[bytes]:
    """``token`` events, then ``answer`` and ``done``; or one ``error`` event."""

    def work(on_token: Callable[[str], None]) -> dict[str, Any]:
        answer = service.ask(
            body.question, namespaces=namespaces, k=body.k, where=body.where, on_token=on_token
        )
        return answer.to_dict()

    async for kind, value in threaded(work, name="engram-ask"):
        if kind == "token":
            yield sse("token", {"text": value})
        elif kind == "done":
            yield sse("answer", value)
            yield sse("done", {})
        elif isinstance(value, EngramError):
            _, code = engram_error_status(value)
            yield sse("error", error_body(code, str(value)))
        else:
            log.error("answer stream failed", exc_info=value)
            yield sse("error", error_body("internal_error", "internal server error"))
