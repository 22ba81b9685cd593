"""Routes on documents and conversation turns: add, list, get, delete."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from engram.errors import FilterError
from engram.server.auth import Access, read, write
from engram.server.errors import ApiError
from engram.server.models import (
    AddDocumentsRequest,
    AddResponse,
    DeleteRequest,
    TurnsRequest,
    _responses,
)
from engram.server.service import MemoryService, turn_document
from engram.store.filters import to_timestamp
from engram.types import Document


def documents_router(service: MemoryService) -> APIRouter:
    """``/v1/namespaces/{namespace}/documents``, ``.../delete`` and ``.../turns``."""
    router = APIRouter()

    @router.post(
        "/v1/namespaces/{namespace}/documents",
        tags=["documents"],
        response_model=None,
        responses={200: {"model": AddResponse}, **_responses(400, 413)},
    )
    def add_documents(body: AddDocumentsRequest, a: Annotated[Access, Depends(write)]) -> dict:
        """Add or replace documents (same id and text: unchanged). Creates the namespace."""
        return service.add(_documents(body), a.namespace)

    @router.get(
        "/v1/namespaces/{namespace}/documents", tags=["documents"], responses=_responses(404)
    )
    def list_documents(
        a: Annotated[Access, Depends(read)],
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    ) -> dict[str, Any]:
        """Documents in insertion order, ``limit`` at a time from ``offset``."""
        service.require(a.namespace)
        return service.list_documents(a.namespace, limit, offset)

    @router.get(
        "/v1/namespaces/{namespace}/documents/{doc_id:path}",
        tags=["documents"],
        responses=_responses(404),
    )
    def get_document(a: Annotated[Access, Depends(read)], doc_id: str) -> dict[str, Any]:
        """One document with its chunks."""
        service.require(a.namespace)
        return service.get_document(a.namespace, doc_id)

    @router.delete(
        "/v1/namespaces/{namespace}/documents/{doc_id:path}",
        tags=["documents"],
        responses=_responses(404),
    )
    def delete_document(
        a: Annotated[Access, Depends(write)],
        doc_id: str,
        reason: Annotated[str, Query(max_length=1000)] = "",
    ) -> dict[str, Any]:
        """Delete one document by id; audited."""
        service.require(a.namespace)
        return service.delete(a.namespace, ids=[doc_id], reason=reason, missing_ok=False)

    @router.post(
        "/v1/namespaces/{namespace}/delete", tags=["documents"], responses=_responses(400, 404)
    )
    def delete_where(body: DeleteRequest, a: Annotated[Access, Depends(write)]) -> dict[str, Any]:
        """Delete the documents matching ``where`` (and/or with ``ids``); audited."""
        service.require(a.namespace)
        return service.delete(a.namespace, ids=body.ids, where=body.where, reason=body.reason)

    @router.post(
        "/v1/namespaces/{namespace}/turns",
        tags=["documents"],
        response_model=None,
        responses={200: {"model": AddResponse}, **_responses(400, 413)},
    )
    def add_turns(body: TurnsRequest, a: Annotated[Access, Depends(write)]) -> dict:
        """Remember conversation turns: each a document with speaker, session, kind='turn'."""
        return service.add(_turns(body), a.namespace)

    return router


def _documents(body: AddDocumentsRequest) -> list[Document]:
    return [
        Document(
            text=d.text,
            id=_doc_id(d.id),
            source=d.source or "",
            title=d.title or "",
            metadata=d.metadata,
            created_at=_time(d.created_at, "created_at"),
        )
        for d in body.documents
    ]


def _turns(body: TurnsRequest) -> list[Document]:
    """Each turn as ``engram.turns.Turn`` stores it; a bad time names its field."""
    docs = []
    for i, t in enumerate(body.turns):
        _time(t.time, f"turns.{i}.time")
        docs.append(
            turn_document(t.text, t.speaker, time_=t.time, session=t.session, metadata=t.metadata)
        )
    return docs


def _doc_id(value: str | int | None) -> str | None:
    return None if value is None else str(value)


def _time(value: float | str | None, field: str) -> float | None:
    if value is None:
        return None
    try:
        return to_timestamp(value)
    except FilterError as exc:
        raise ApiError(422, f"{field}: {exc}", "invalid_request") from None
