"""The HTTP API: ``create_app(Memory or factory, keys=KeyStore)`` returns a FastAPI app.

Every route under ``/v1`` needs ``Authorization: Bearer KEY``; ``/health``, ``/openapi.json``
and ``/docs`` do not. Errors are JSON: ``{"error": {"code": ..., "message": ...}}``.
See docs/server.md for the contract.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import engram
from engram.errors import (
    EmbeddingMismatchError,
    EngramError,
    FilterError,
    GenerationError,
    IngestError,
    NamespaceError,
    QueryError,
)
from engram.memory import Memory
from engram.server.keys import ApiKey, KeyStore
from engram.server.service import (
    MemoryFactory,
    MemoryService,
    NotFoundError,
    check_where,
    turn_document,
)
from engram.sql.tokens import SqlError
from engram.types import Document

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY = 4 * 2**20
MAX_K = 200
MAX_ITEMS = 1000
MAX_METADATA_DEPTH = 16
NAMESPACE_PATTERN = r"^(\*|[A-Za-z0-9][A-Za-z0-9_.:@\-]{0,127})$"
ANONYMOUS = ApiKey(id="anonymous", scope="admin", namespaces=["*"], name="no keys configured")

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    500: "internal_error",
    502: "generation_failed",
}


class ApiError(HTTPException):
    """An HTTP error with a machine-readable ``code``."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(status_code=status, detail=message)
        self.code = code or _CODES.get(status, "error")


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def _error(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(error_body(code, message, **extra), status_code=status, headers=headers)


def engram_error_status(exc: EngramError) -> tuple[int, str]:
    """HTTP status and error code for an Engram error."""
    if isinstance(exc, NotFoundError):
        return 404, "not_found"
    if isinstance(exc, FilterError):
        return 400, "invalid_filter"
    if isinstance(exc, QueryError):
        return 422, "invalid_request"  # as for an empty query string
    if isinstance(exc, NamespaceError):
        if str(exc).startswith("unknown namespace"):
            return 404, "not_found"
        return 400, "invalid_namespace"
    if isinstance(exc, IngestError):
        return 422, "invalid_document"
    if isinstance(exc, EmbeddingMismatchError):
        return 409, "embedding_mismatch"
    if isinstance(exc, GenerationError):
        return 502, "generation_failed"
    if isinstance(exc, SqlError):
        return 400, "invalid_sql"
    return 400, "bad_request"


# -- request bodies ---------------------------------------------------------------------------
def _check_json_values(data: Any) -> None:
    """Refuse what SQLite cannot store or compare: lone surrogates, NaN and infinities,
    integers beyond 64 bits, and nesting deeper than ``MAX_METADATA_DEPTH``."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_METADATA_DEPTH:
            raise ValueError(f"nested more than {MAX_METADATA_DEPTH} levels deep")
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError("text contains invalid Unicode (a lone surrogate)") from None
        elif isinstance(value, float) and not math.isfinite(value):
            raise ValueError("numbers must be finite (no NaN or Infinity)")
        elif isinstance(value, int) and not -(2**63) <= value < 2**63:
            raise ValueError("integers must fit in 64 bits")
        elif isinstance(value, dict):
            for k, v in value.items():
                stack.append((k, depth + 1))
                stack.append((v, depth + 1))
        elif isinstance(value, list | tuple):
            stack.extend((v, depth + 1) for v in value)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _values(cls, data: Any) -> Any:
        _check_json_values(data)
        return data


Where = dict[str, Any] | str | None
_WHERE_DOC = (
    'Filter: an object such as {"year": {"$gte": 2020}} or the short text form '
    "'year>=2020 and topic=plants' (see docs/server.md)"
)


class SearchRequest(_Body):
    query: str = Field(min_length=1, max_length=10_000)
    k: int = Field(10, ge=1, le=MAX_K)
    mode: Literal["hybrid", "keyword", "vector"] | None = None
    where: Where = Field(None, description=_WHERE_DOC)
    alpha: float | None = Field(None, ge=0.0, le=1.0, allow_inf_nan=False)
    fusion: Literal["blend", "rrf"] | None = None
    clusters: bool = False


class DocumentIn(_Body):
    text: str
    id: Annotated[str, Field(min_length=1, max_length=512)] | int | None = Field(
        None, description="the document's id (default: sha256 of the text)"
    )
    title: str | None = Field(None, max_length=2000)
    source: str | None = Field(None, max_length=2000)
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: float | str | None = Field(None, description="seconds since the epoch or ISO-8601")


class AddDocumentsRequest(_Body):
    documents: list[DocumentIn] = Field(min_length=1, max_length=MAX_ITEMS)


class TurnIn(_Body):
    speaker: str = Field(min_length=1, max_length=200)
    text: str
    time: float | str | None = Field(
        None, description="seconds since the epoch or ISO-8601 (default: now)"
    )
    session: str | None = Field(None, max_length=200)
    metadata: dict[str, Any] = Field(default_factory=dict)


class TurnsRequest(_Body):
    turns: list[TurnIn] = Field(min_length=1, max_length=MAX_ITEMS)


class DeleteRequest(_Body):
    where: Where = Field(None, description=_WHERE_DOC)
    ids: list[Annotated[str, Field(min_length=1, max_length=512)]] | None = Field(
        None, max_length=MAX_ITEMS
    )
    reason: str = Field("", max_length=1000)


class AskRequest(_Body):
    question: str = Field(min_length=1, max_length=10_000)
    k: int | None = Field(None, ge=1, le=50)
    where: Where = Field(None, description=_WHERE_DOC)
    stream: bool = False


# -- response documentation (the handlers return plain dicts) ---------------------------------
class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorDetail


class HitOut(BaseModel):
    id: int
    score: float
    text: str
    doc_id: str
    source: str
    title: str
    namespace: str
    metadata: dict[str, Any]
    created_at: float
    scores: dict[str, float]


class ClusterOut(BaseModel):
    label: str
    keywords: list[str]
    score: float
    ids: list[int]


class SearchResponse(BaseModel):
    results: list[HitOut]
    clusters: list[ClusterOut] | None = None


class AddResponse(BaseModel):
    added: int
    updated: int
    unchanged: int
    empty: int
    chunks: int
    embedded: int
    errors: list[str]
    ids: list[str]


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {c: {"model": ErrorResponse} for c in (401, 403, 422, *codes)}


# -- middleware -------------------------------------------------------------------------------
class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``: by Content-Length up front, else while reading."""

    def __init__(self, app: ASGIApp, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        message = f"request body larger than {limit} bytes"
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    size = int(value)
                except ValueError:
                    size = -1
                if size < 0:
                    await _error(400, "bad_request", "invalid Content-Length")(scope, receive, send)
                    return
                if size > limit:
                    await _error(413, "payload_too_large", message)(scope, receive, send)
                    return
        seen = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise ApiError(413, message, "payload_too_large")
            return msg

        async def tracking_send(msg: Message) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except ApiError as exc:  # raised by limited_receive outside a route's error handling
            if started or exc.status_code != 413:
                raise
            await _error(413, "payload_too_large", message)(scope, receive, send)


PROTECTED = ("/v1", "/mcp")
"""Path prefixes that need an API key."""


class AuthMiddleware:
    """Checks ``Authorization: Bearer KEY`` on ``/v1`` and ``/mcp``; puts the key in ``scope``."""

    def __init__(self, app: ASGIApp, keys: KeyStore, open_when_no_keys: bool):
        self.app = app
        self.keys = keys
        self.open_when_no_keys = open_when_no_keys

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(PROTECTED):
            await self.app(scope, receive, send)
            return
        header = ""
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                header = value.decode("latin-1")
        key = await anyio.to_thread.run_sync(self._authenticate, header)
        if isinstance(key, str):
            await _error(401, "unauthorized", key)(scope, receive, send)
            return
        scope.setdefault("state", {})["api_key"] = key
        await self.app(scope, receive, send)

    def _authenticate(self, header: str) -> ApiKey | str:
        scheme, _, token = header.strip().partition(" ")
        if not header:
            if self.open_when_no_keys and self.keys.count() == 0:
                return ANONYMOUS
            return (
                "missing API key: send 'Authorization: Bearer KEY' "
                "(create one with engram keys create)"
            )
        if scheme.lower() != "bearer" or not token.strip():
            return "malformed Authorization header: use 'Authorization: Bearer KEY'"
        key = self.keys.verify(token.strip())
        return key if key is not None else "invalid or revoked API key"


# -- access checks ----------------------------------------------------------------------------
_bearer = HTTPBearer(auto_error=False, description="An API key from `engram keys create`")


class Access:
    """The authenticated key and the namespace a request addresses."""

    def __init__(self, key: ApiKey, namespace: str):
        self.key = key
        self.namespace = namespace

    def namespaces(self, service: MemoryService) -> str | list[str]:
        """``namespace``, or for ``*`` every namespace the key reaches (``"*"`` if all)."""
        if self.namespace != "*":
            return self.namespace
        if self.key.everywhere:
            return "*"
        return [n["name"] for n in service.namespaces() if self.key.reaches(n["name"])]


def _key(request: Request) -> ApiKey:
    key = request.scope.get("state", {}).get("api_key")
    if key is None:  # not behind AuthMiddleware
        raise ApiError(401, "missing API key")
    return key


def _check_scope(key: ApiKey, scope: str) -> None:
    if not key.allows(scope):
        raise ApiError(403, f"this key has scope {key.scope!r}; this request needs {scope!r}")


NamespaceParam = Annotated[
    str,
    Path(
        max_length=128,
        pattern=NAMESPACE_PATTERN,
        description="namespace: letters, digits, _ . : @ - (1-128 characters); "
        "for search and ask, '*' means every namespace the key reaches",
    ),
]


def access(scope: str, *, allow_all: bool = False) -> Callable[..., Access]:
    """A dependency: the key reaches the path's namespace with at least ``scope``."""

    def dependency(
        request: Request,
        namespace: NamespaceParam,
        _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
    ) -> Access:
        key = _key(request)
        _check_scope(key, scope)
        if namespace == "*":
            if not allow_all:
                raise ApiError(400, "'*' (every namespace) is only for search and ask (and sql)")
        elif not key.reaches(namespace):
            raise ApiError(403, f"this key does not reach namespace {namespace!r}")
        return Access(key, namespace)

    return dependency


def authenticated(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None,
) -> ApiKey:
    return _key(request)


# -- the app ----------------------------------------------------------------------------------
# Module level: FastAPI resolves these string annotations in the module's namespace.
read, write, admin = access("read"), access("write"), access("admin")
search_access = access("read", allow_all=True)


def _sse(event: str, data: Any) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


class _Cancelled(Exception):
    pass


def create_app(
    memory: Memory | MemoryFactory = Memory,
    *,
    keys: KeyStore,
    max_body_bytes: int = DEFAULT_MAX_BODY,
    open_when_no_keys: bool = False,
) -> FastAPI:
    """The Engram HTTP API over one ``Memory`` (an instance, or a factory called on first use).

    ``keys`` checks API keys. ``open_when_no_keys`` lets requests without a key through while
    no key exists (``engram serve`` sets it only for a loopback address).
    """
    service = MemoryService(memory)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with app.state.mcp.session_manager.run():
            yield
        await run_in_threadpool(service.close)

    app = FastAPI(
        title="Engram",
        version=engram.__version__,
        description="An open memory store for foundation models: add, search, ask, delete.",
        lifespan=lifespan,
        docs_url=None,  # served offline by engram.server.web
        redoc_url=None,
    )
    app.state.service = service
    app.state.keys = keys
    app.add_middleware(AuthMiddleware, keys=keys, open_when_no_keys=open_when_no_keys)
    app.add_middleware(BodyLimitMiddleware, max_bytes=max_body_bytes)

    # -- errors ---------------------------------------------------------------------------
    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        code = getattr(exc, "code", None) or _CODES.get(exc.status_code, "error")
        if exc.status_code == 404 and not isinstance(exc, ApiError):
            return _error(404, "not_found", f"no route {request.method} {request.url.path}")
        return _error(exc.status_code, code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        for e in errors:
            if e.get("type") == "json_invalid":
                detail = (e.get("ctx") or {}).get("error", "")
                pos = e.get("loc", (None, None))[-1]
                return _error(
                    400,
                    "invalid_json",
                    f"request body is not valid JSON: {detail} (at character {pos})",
                )
        details = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ())),
                "message": str(e.get("msg", "")),
                "type": str(e.get("type", "")),
            }
            for e in errors[:20]
        ]
        message = "; ".join(f"{d['field']}: {d['message']}" for d in details) or "invalid request"
        return _error(422, "invalid_request", message, details=details)

    @app.exception_handler(EngramError)
    async def engram_error(request: Request, exc: EngramError) -> JSONResponse:
        status, code = engram_error_status(exc)
        return _error(status, code, str(exc))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error in %s %s", request.method, request.url.path)
        return _error(500, "internal_error", "internal server error; see the server log")

    # -- routes ---------------------------------------------------------------------------
    @app.get("/health", tags=["meta"])
    def health() -> dict[str, Any]:
        """Liveness: no key needed."""
        return {"status": "ok", "version": engram.__version__}

    @app.get("/v1/namespaces", tags=["namespaces"], responses=_responses())
    def list_namespaces(key: Annotated[ApiKey, Depends(authenticated)]) -> dict[str, Any]:
        """The namespaces this key reaches, with document and chunk counts."""
        rows = [n for n in service.namespaces() if key.reaches(n["name"])]
        return {"namespaces": rows}

    @app.get("/v1/namespaces/{namespace}/stats", tags=["namespaces"], responses=_responses(404))
    def namespace_stats(a: Annotated[Access, Depends(read)]) -> dict[str, Any]:
        """Documents, chunks and the embedding model of one namespace."""
        service.require(a.namespace)
        return service.namespace_stats(a.namespace)

    @app.delete("/v1/namespaces/{namespace}", tags=["namespaces"], responses=_responses(404))
    def drop_namespace(
        a: Annotated[Access, Depends(admin)],
        reason: Annotated[str, Query(max_length=1000)] = "",
    ) -> dict[str, Any]:
        """Delete a namespace and everything in it (admin scope); audited."""
        service.require(a.namespace)
        n = service.drop_namespace(a.namespace, reason=reason)
        return {"namespace": a.namespace, "deleted_chunks": n}

    @app.get("/v1/namespaces/{namespace}/audit", tags=["namespaces"], responses=_responses(404))
    def audit(
        a: Annotated[Access, Depends(read)],
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> dict[str, Any]:
        """Deletions in this namespace, newest first (kept after the namespace is dropped)."""
        rows = service.audit(a.namespace, limit)
        if not rows and not service.exists(a.namespace):
            raise NotFoundError(f"unknown namespace {a.namespace!r}")
        return {"namespace": a.namespace, "audit": rows}

    @app.post(
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
                for c in cluster_hits(hits)
            ]
        return out

    @app.post(
        "/v1/namespaces/{namespace}/documents",
        tags=["documents"],
        response_model=None,
        responses={200: {"model": AddResponse}, **_responses(400, 413)},
    )
    def add_documents(body: AddDocumentsRequest, a: Annotated[Access, Depends(write)]) -> dict:
        """Add or replace documents (same id and text: unchanged). Creates the namespace."""
        docs = []
        for d in body.documents:
            docs.append(
                Document(
                    text=d.text,
                    id=_doc_id(d.id),
                    source=d.source or "",
                    title=d.title or "",
                    metadata=d.metadata,
                    created_at=_time(d.created_at, "created_at"),
                )
            )
        return service.add(docs, a.namespace)

    @app.get("/v1/namespaces/{namespace}/documents", tags=["documents"], responses=_responses(404))
    def list_documents(
        a: Annotated[Access, Depends(read)],
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
    ) -> dict[str, Any]:
        """Documents in insertion order, ``limit`` at a time from ``offset``."""
        service.require(a.namespace)
        return service.list_documents(a.namespace, limit, offset)

    @app.get(
        "/v1/namespaces/{namespace}/documents/{doc_id:path}",
        tags=["documents"],
        responses=_responses(404),
    )
    def get_document(a: Annotated[Access, Depends(read)], doc_id: str) -> dict[str, Any]:
        """One document with its chunks."""
        service.require(a.namespace)
        return service.get_document(a.namespace, doc_id)

    @app.delete(
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

    @app.post(
        "/v1/namespaces/{namespace}/delete", tags=["documents"], responses=_responses(400, 404)
    )
    def delete_where(body: DeleteRequest, a: Annotated[Access, Depends(write)]) -> dict[str, Any]:
        """Delete the documents matching ``where`` (and/or with ``ids``); audited."""
        service.require(a.namespace)
        return service.delete(a.namespace, ids=body.ids, where=body.where, reason=body.reason)

    @app.post(
        "/v1/namespaces/{namespace}/turns",
        tags=["documents"],
        response_model=None,
        responses={200: {"model": AddResponse}, **_responses(400, 413)},
    )
    def add_turns(body: TurnsRequest, a: Annotated[Access, Depends(write)]) -> dict:
        """Remember conversation turns: each a document with speaker, session, kind='turn'."""
        docs = []
        for i, t in enumerate(body.turns):
            _time(t.time, f"turns.{i}.time")
            docs.append(
                turn_document(
                    t.text, t.speaker, time_=t.time, session=t.session, metadata=t.metadata
                )
            )
        return service.add(docs, a.namespace)

    @app.post(
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
            _stream_answer(service, body, namespaces),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    from engram.server.web import install_web

    install_web(app)  # the web UI, its JSON routes and the offline /docs (docs/ui.md)

    from engram.server.mcp_http import mount_mcp
    from engram.server.openai_compat import chat_router

    app.include_router(chat_router(service))
    app.state.mcp = mount_mcp(app, service, open_without_keys=open_when_no_keys)

    from engram.server.sql import add_sql_route

    add_sql_route(app, service)
    return app


class _NoKeys:
    """A key store with no keys, for building the app only to read its OpenAPI document."""

    def count(self) -> int:
        return 0

    def verify(self, plaintext: str) -> None:
        return None


def openapi_document() -> dict[str, Any]:
    """The API's OpenAPI document, without opening a store."""
    return create_app(Memory, keys=_NoKeys()).openapi()  # type: ignore[arg-type]


def _doc_id(value: str | int | None) -> str | None:
    return None if value is None else str(value)


def _time(value: float | str | None, field: str) -> float | None:
    from engram.store.filters import to_timestamp

    if value is None:
        return None
    try:
        return to_timestamp(value)
    except FilterError as exc:
        raise ApiError(422, f"{field}: {exc}", "invalid_request") from None


async def _stream_answer(
    service: MemoryService, body: AskRequest, namespaces: str | list[str]
) -> AsyncIterator[bytes]:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    cancelled = threading.Event()

    def put(item: tuple[str, Any]) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop is gone: the client left
            cancelled.set()

    def on_token(piece: str) -> None:
        if cancelled.is_set():
            raise _Cancelled
        put(("token", piece))

    def work() -> None:
        try:
            answer = service.ask(
                body.question, namespaces=namespaces, k=body.k, where=body.where, on_token=on_token
            )
            put(("answer", answer.to_dict()))
        except _Cancelled:
            pass
        except Exception as exc:  # reported as an error event
            put(("error", exc))

    threading.Thread(target=work, name="engram-ask", daemon=True).start()
    try:
        while True:
            kind, value = await queue.get()
            if kind == "token":
                yield _sse("token", {"text": value})
            elif kind == "answer":
                yield _sse("answer", value)
                yield _sse("done", {})
                return
            else:
                if isinstance(value, EngramError):
                    _, code = engram_error_status(value)
                    yield _sse("error", error_body(code, str(value)))
                else:
                    log.error("answer stream failed", exc_info=value)
                    yield _sse("error", error_body("internal_error", "internal server error"))
                return
    finally:
        cancelled.set()
