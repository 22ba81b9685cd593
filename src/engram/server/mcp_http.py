"""The MCP memory tools over streamable HTTP at ``/mcp``, on the ``engram serve`` app.

The same tools as ``engram mcp`` (stdio), behind the same API keys as ``/v1``: the client sends
``Authorization: Bearer KEY`` on every request (the app's ``AuthMiddleware`` checks it). Each
tool call then needs the key to reach the namespace it acts on, with scope ``read`` for
``recall``/``ask`` and ``write`` for ``remember``/``forget``. A call that names no namespace uses
the ``X-Engram-Namespace`` header, else the key's only namespace, else ``default``.

The transport runs stateless (each POST stands alone), so every call is checked against the key
that sent it. While the server is open without keys (loopback, no key created), the SDK's DNS
rebinding protection admits only loopback ``Host`` and ``Origin`` headers.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.transport_security import TransportSecuritySettings

from engram.server.keys import ApiKey
from engram.server.mcp import build_server
from engram.server.service import MemoryService

PATH = "/mcp"
_LOOPBACK = TransportSecuritySettings(
    enable_dns_rebinding_protection=True,
    allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
    allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
)


def _key(ctx: Context | None) -> ApiKey:
    request: Any = None
    if ctx is not None:
        try:
            request = ctx.request_context.request
        except ValueError:  # no request in flight (not over HTTP)
            request = None
    key = request.scope.get("state", {}).get("api_key") if request is not None else None
    if key is None:
        raise ToolError("missing API key: send 'Authorization: Bearer KEY'")
    return key


def key_access(ctx: Context | None, named: str | None, scope: str) -> str:
    """The namespace a tool call acts on, checked against the calling key."""
    key = _key(ctx)
    if not key.allows(scope):
        raise ToolError(f"this key has scope {key.scope!r}; this tool needs {scope!r}")
    header = ctx.headers.get("x-engram-namespace") if ctx is not None and ctx.headers else None
    namespace = named or header or key.default_namespace()
    if not namespace:
        raise ToolError(
            "this key reaches several namespaces: pass `namespace` or send X-Engram-Namespace"
        )
    if not key.reaches(namespace):
        raise ToolError(f"this key does not reach namespace {namespace!r}")
    return namespace


def mount_mcp(app: FastAPI, service: MemoryService, *, open_without_keys: bool) -> MCPServer:
    """Add the ``/mcp`` route to ``app``; run ``server.session_manager.run()`` in its lifespan."""
    server, _ = build_server(service, access=key_access)
    security = _LOOPBACK if open_without_keys else TransportSecuritySettings(
        enable_dns_rebinding_protection=False
    )  # fmt: skip
    sub = server.streamable_http_app(
        streamable_http_path=PATH, stateless_http=True, transport_security=security
    )
    app.router.routes.extend(sub.routes)
    return server
