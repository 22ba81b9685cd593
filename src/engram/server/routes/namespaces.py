"""Routes on namespaces: list, stats, drop, audit."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from engram.server.auth import Access, admin, authenticated, read
from engram.server.keys import ApiKey
from engram.server.models import _responses
from engram.server.service import MemoryService, NotFoundError


def namespaces_router(service: MemoryService) -> APIRouter:
    """``/v1/namespaces`` and ``/v1/namespaces/{namespace}`` (stats, audit, drop)."""
    router = APIRouter()

    @router.get("/v1/namespaces", tags=["namespaces"], responses=_responses())
    def list_namespaces(key: Annotated[ApiKey, Depends(authenticated)]) -> dict[str, Any]:
        """The namespaces this key reaches, with document and chunk counts."""
        rows = [n for n in service.namespaces() if key.reaches(n["name"])]
        return {"namespaces": rows}

    @router.get("/v1/namespaces/{namespace}/stats", tags=["namespaces"], responses=_responses(404))
    def namespace_stats(a: Annotated[Access, Depends(read)]) -> dict[str, Any]:
        """Documents, chunks and the embedding model of one namespace."""
        service.require(a.namespace)
        return service.namespace_stats(a.namespace)

    @router.delete("/v1/namespaces/{namespace}", tags=["namespaces"], responses=_responses(404))
    def drop_namespace(
        a: Annotated[Access, Depends(admin)],
        reason: Annotated[str, Query(max_length=1000)] = "",
    ) -> dict[str, Any]:
        """Delete a namespace and everything in it (admin scope); audited."""
        service.require(a.namespace)
        n = service.drop_namespace(a.namespace, reason=reason)
        return {"namespace": a.namespace, "deleted_chunks": n}

    @router.get("/v1/namespaces/{namespace}/audit", tags=["namespaces"], responses=_responses(404))
    def audit(
        a: Annotated[Access, Depends(read)],
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """Deletions in this namespace, newest first (kept after the namespace is dropped)."""
        rows = service.audit(a.namespace, limit)
        if not rows and not service.exists(a.namespace):
            raise NotFoundError(f"unknown namespace {a.namespace!r}")
        return {"namespace": a.namespace, "audit": rows}

    return router
