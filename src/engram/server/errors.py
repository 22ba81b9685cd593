"""HTTP errors: ``{"error": {"code", "message"}}`` bodies, status codes for Engram errors, and
the app's exception handlers."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from engram.errors import (
    EmbeddingMismatchError,
    EngramError,
    FilterError,
    GenerationError,
    IngestError,
    NamespaceError,
    QueryError,
)
from engram.server.service import NotFoundError
from engram.sql.tokens import SqlError

log = logging.getLogger("engram.server.app")

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


def install_error_handlers(app: FastAPI) -> None:
    """JSON error bodies for HTTP errors, invalid requests, Engram errors and the rest."""

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
