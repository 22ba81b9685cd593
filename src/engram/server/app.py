"""The HTTP API: ``create_app(Memory or factory, keys=KeyStore)`` returns a FastAPI app.

Every route under ``/v1`` needs ``Authorization: Bearer KEY``; ``/health``, ``/openapi.json``
and ``/docs`` do not. Errors are JSON: ``{"error": {"code": ..., "message": ...}}``.
See docs/server.md for the contract.

The app is assembled here from parts named for what they hold: ``errors`` (error bodies and
handlers), ``models`` (request and response bodies), ``auth`` (middlewares and access
dependencies), ``routes/`` (one router per resource), ``streaming`` (the thread -> SSE bridge),
``openai_compat``, ``mcp_http``, ``sql`` and ``web``.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

import engram
from engram.memory import Memory
from engram.server.auth import (
    ANONYMOUS,
    Access,
    AuthMiddleware,
    BodyLimitMiddleware,
    _check_scope,
    access,
    admin,
    authenticated,
    read,
    search_access,
    write,
)
from engram.server.errors import (
    ApiError,
    engram_error_status,
    error_body,
    install_error_handlers,
)
from engram.server.keys import KeyStore
from engram.server.models import (
    MAX_ITEMS,
    MAX_K,
    NAMESPACE_PATTERN,
    AskRequest,
    SearchRequest,
    Where,
    _Body,
    _responses,
)
from engram.server.routes.documents import _time, documents_router
from engram.server.routes.namespaces import namespaces_router
from engram.server.routes.recall import recall_router
from engram.server.service import MemoryFactory, MemoryService

log = logging.getLogger(__name__)
DEFAULT_MAX_BODY = 4 * 2**20

__all__ = [  # kept importable from here for the modules that import them (webapi, sql, ...)
    "ANONYMOUS",
    "DEFAULT_MAX_BODY",
    "MAX_ITEMS",
    "MAX_K",
    "NAMESPACE_PATTERN",
    "Access",
    "ApiError",
    "AskRequest",
    "SearchRequest",
    "Where",
    "_Body",
    "_check_scope",
    "_responses",
    "_time",
    "access",
    "admin",
    "authenticated",
    "create_app",
    "engram_error_status",
    "error_body",
    "openapi_document",
    "read",
    "search_access",
    "write",
]


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
    install_error_handlers(app)

    @app.get("/health", tags=["meta"])
    def health() -> dict[str, Any]:
        """Liveness: no key needed."""
        return {"status": "ok", "version": engram.__version__}

    app.include_router(namespaces_router(service))
    app.include_router(recall_router(service))
    app.include_router(documents_router(service))

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
