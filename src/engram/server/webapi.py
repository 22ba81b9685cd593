"""Small JSON routes the web UI needs beyond the HTTP API (same keys, scopes and errors).

``GET /v1/me`` (the key), ``GET /v1/overview`` (reachable namespaces with size and last
change), ``POST /v1/namespaces/{ns}/documents/query`` (documents filtered by metadata, source
and time), ``POST /v1/namespaces/{ns}/prompt`` (the exact prompt and evidence of a question),
``GET /v1/namespaces/{ns}/agent`` (an agent's memories with importance and recency, pinned
items, reflections with what they cite, the audit trail) and ``POST /v1/namespaces/{ns}/forget``
(agent forgetting, which also forgets reflections citing what goes). See docs/ui.md.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import Field

from engram.server.app import (
    MAX_ITEMS,
    Access,
    ApiError,
    Where,
    _Body,
    _responses,
    _time,
    authenticated,
    read,
    search_access,
    write,
)
from engram.server.keys import ApiKey
from engram.server.service import MemoryService, check_where

MAX_PAGE = 200
MAX_AGENT_MEMORIES = 2000


class DocumentQuery(_Body):
    where: Where = None
    source: str | None = Field(None, max_length=2000, description="source contains this text")
    since: float | str | None = Field(None, description="created at or after (epoch or ISO)")
    until: float | str | None = Field(None, description="created before (epoch or ISO)")
    limit: int = Field(50, ge=1, le=MAX_PAGE)
    offset: int = Field(0, ge=0, le=2**31)
    order: Literal["newest", "oldest"] = "newest"


class PromptRequest(_Body):
    question: str = Field(min_length=1, max_length=10_000)
    k: int | None = Field(None, ge=1, le=50)
    where: Where = None


class ForgetRequest(_Body):
    ids: list[Annotated[str, Field(min_length=1, max_length=512)]] = Field(
        min_length=1, max_length=MAX_ITEMS
    )
    reason: str = Field("", max_length=1000)


def document_filter(body: DocumentQuery) -> dict[str, Any] | None:
    """One ``where`` filter from the query's parts (each checked: bad input is a 400/422)."""
    parts: list[dict[str, Any]] = []
    user = check_where(body.where)
    if user:
        parts.append(user)
    if body.source:
        parts.append({"source": {"$contains": body.source}})
    if body.since is not None:
        parts.append({"created_at": {"$gte": _time(body.since, "since")}})
    if body.until is not None:
        parts.append({"created_at": {"$lt": _time(body.until, "until")}})
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else {"$and": parts}


def text_sizes(service: MemoryService) -> dict[str, int]:
    """Characters of chunk text per namespace (SQLite and PostgreSQL alike)."""
    with service.lock:
        return service.memory.store.text_sizes()


def overview(service: MemoryService, key: ApiKey) -> dict[str, Any]:
    sizes = text_sizes(service)
    rows = []
    with service.lock:
        store = service.memory.store
        for n in service.memory.namespaces():
            if not key.reaches(n["name"]):
                continue
            stats = store.namespace_stats(n["name"]) or {}
            rows.append(
                {
                    **n,
                    "text_chars": sizes.get(n["name"], 0),
                    "updated_at": stats.get("updated_at"),
                }
            )
        info: dict[str, Any] = {
            "embedding_model": store.get_setting("embedding_model"),
            "embedding_dim": int(store.get_setting("embedding_dim") or 0) or None,
        }
        if key.scope == "admin" and key.everywhere:
            info.update(service.memory.stats())
    return {"namespaces": rows, "store": info}


def query_documents(service: MemoryService, namespace: str, body: DocumentQuery) -> dict:
    where = document_filter(body)
    service.require(namespace)
    with service.lock:
        store = service.memory.store
        total = store.count_documents(namespace, where=where)
        rows = store.select_documents(
            namespace, where, newest_first=body.order == "newest", limit=body.offset + body.limit
        )[body.offset :]
    docs = [
        {
            "id": r["id"],
            "source": r["source"],
            "title": r["title"],
            "metadata": r["metadata"],
            "created_at": r["created_at"],
            "updated_at": r["updated_at"],
            "chunks": len(r["chunks"]),
            "text_chars": sum(len(c[2]) for c in r["chunks"]),
        }
        for r in rows
    ]
    nxt = body.offset + len(docs)
    return {
        "documents": docs,
        "total": total,
        "offset": body.offset,
        "next_offset": nxt if nxt < total else None,
        "where": where,
    }


def prompt_for(service: MemoryService, namespaces: Any, body: PromptRequest) -> dict:
    answer = service.ask(
        body.question, namespaces=namespaces, k=body.k, where=body.where, prompt_only=True
    )
    prompt = getattr(answer, "prompt", None)
    sources = []
    for s in getattr(prompt, "sources", None) or []:
        hit = s.hit
        sources.append(
            {
                "number": s.number,
                "id": hit.id,
                "doc_id": hit.doc_id,
                "title": hit.title,
                "source": hit.source,
                "namespace": hit.namespace,
                "text": hit.text,
                "scores": dict(hit.scores),
            }
        )
    return {
        "question": body.question,
        "prompt": prompt.text if prompt is not None else None,
        "messages": prompt.messages if prompt is not None else [],
        "tokens": prompt.tokens if prompt is not None else 0,
        "sources": sources,
    }


def _service(request: Request) -> MemoryService:
    return request.app.state.service


Service = Annotated[MemoryService, Depends(_service)]


def router() -> APIRouter:
    """The UI's JSON routes; ``app.state.service`` is the app's ``MemoryService``."""
    from engram.server.webagent import agent_view, forget_memories

    r = APIRouter(prefix="/v1", tags=["ui"])

    @r.get("/me", responses=_responses())
    def me(key: Annotated[ApiKey, Depends(authenticated)]) -> dict[str, Any]:
        """The key this request carries (never its secret): id, name, scope, namespaces."""
        out = key.to_dict()
        out["open"] = key.id == "anonymous"
        return out

    @r.get("/overview", responses=_responses())
    def overview_route(
        key: Annotated[ApiKey, Depends(authenticated)], service: Service
    ) -> dict[str, Any]:
        """The namespaces this key reaches with documents, chunks, text size, last change."""
        return overview(service, key)

    @r.post("/namespaces/{namespace}/documents/query", responses=_responses(400, 404))
    def documents_query(
        body: DocumentQuery, a: Annotated[Access, Depends(read)], service: Service
    ) -> dict[str, Any]:
        """Documents filtered by ``where``, ``source`` (contains), ``since``/``until``."""
        return query_documents(service, a.namespace, body)

    @r.post("/namespaces/{namespace}/prompt", responses=_responses(400, 404))
    async def prompt(
        body: PromptRequest, a: Annotated[Access, Depends(search_access)], service: Service
    ) -> dict[str, Any]:
        """The exact prompt ``ask`` would give the model, and the numbered evidence in it."""
        if a.namespace != "*":
            await run_in_threadpool(service.require, a.namespace)
        check_where(body.where)
        namespaces = await run_in_threadpool(a.namespaces, service)
        return await run_in_threadpool(prompt_for, service, namespaces, body)

    @r.get("/namespaces/{namespace}/agent", responses=_responses(404))
    def agent(
        a: Annotated[Access, Depends(read)],
        service: Service,
        reference: Annotated[Literal["now", "latest"], Query()] = "now",
        half_life: Annotated[float, Query(gt=0, le=1e10)] = 7 * 86400.0,
        limit: Annotated[int, Query(ge=1, le=MAX_AGENT_MEMORIES)] = 500,
    ) -> dict[str, Any]:
        """An agent's memories (newest first) with importance and recency, pinned items,
        reflections with the memories they cite, and the audit trail."""
        service.require(a.namespace)
        return agent_view(service, a.namespace, reference, half_life, limit, now=time.time())

    @r.post("/namespaces/{namespace}/forget", responses=_responses(400, 404))
    def forget(
        body: ForgetRequest, a: Annotated[Access, Depends(write)], service: Service
    ) -> dict[str, Any]:
        """Forget memories by id (reflections citing them go too); audited, indexes purged."""
        service.require(a.namespace)
        if not body.reason.strip():
            raise ApiError(422, "reason: give a reason for forgetting (it goes in the audit)")
        return forget_memories(service, a.namespace, body.ids, body.reason)

    return r
