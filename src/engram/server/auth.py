"""Who may do what: the body-size and API-key middlewares and the access dependencies
(``read``, ``write``, ``admin``, ``search_access``) the routes declare."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

import anyio.to_thread
from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engram.server.errors import ApiError, _error
from engram.server.keys import ApiKey, KeyStore
from engram.server.models import NAMESPACE_PATTERN
from engram.server.service import MemoryService

ANONYMOUS = ApiKey(id="anonymous", scope="admin", namespaces=["*"], name="no keys configured")


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


# Module level: FastAPI resolves these string annotations in the module's namespace.
read, write, admin = access("read"), access("write"), access("admin")
search_access = access("read", allow_all=True)
