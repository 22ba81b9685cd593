"""An MCP server with memory tools: ``remember``, ``recall``, ``ask``, ``forget``.

Built on the official ``mcp`` SDK (2.x, where FastMCP is ``MCPServer``). ``engram mcp`` runs it
over stdio on the store given by ``--store``; an MCP client (Claude Desktop, an agent framework)
starts that command and talks JSON-RPC over its stdin/stdout. That server acts for the local user,
so it has no API keys; every tool may name a namespace (default: ``--namespace``).

``engram serve`` also serves the same tools over streamable HTTP at ``/mcp``, behind the API keys
(see :mod:`engram.server.mcp_http`): there an ``access`` hook checks each call's key.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from engram.errors import EngramError
from engram.memory import Memory, check_namespace
from engram.server.service import MemoryFactory, MemoryService, turn_document
from engram.types import Document

T = TypeVar("T")
Target = Callable[[Context | None, str | None, str], str]  # (ctx, named, scope) -> namespace
Access = Callable[[Context | None, str | None, str], str]
"""``access(ctx, namespace, scope)``: the namespace a tool call acts on, or ``ToolError``."""
INSTRUCTIONS = (
    "Engram is a long-term memory. Use `remember` to store facts worth keeping, `recall` to "
    "search them (hybrid keyword + meaning), `ask` for a cited answer from memory, and "
    "`forget` to delete memories by id or filter."
)


def _call(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except EngramError as exc:
        raise ToolError(str(exc)) from None


def build_server(
    memory: Memory | MemoryFactory | MemoryService,
    *,
    namespace: str = "default",
    access: Access | None = None,
) -> tuple[MCPServer, MemoryService]:
    """The MCP server over one ``Memory`` (or a factory called on first use, or a service
    shared with the HTTP API). ``access`` resolves and checks each call's namespace; without
    it a call acts on the namespace it names, else ``namespace``."""
    check_namespace(namespace)
    service = memory if isinstance(memory, MemoryService) else MemoryService(memory)
    server = MCPServer(name="engram", instructions=INSTRUCTIONS)

    def target(ctx: Context | None, named: str | None, scope: str) -> str:
        if access is not None:
            return check_namespace(access(ctx, named, scope))
        return check_namespace(named or namespace)

    _add_remember_and_recall(server, service, target)
    _add_ask_and_forget(server, service, target)
    return server, service


def _add_remember_and_recall(
    server: MCPServer,
    service: MemoryService,
    target: Callable[[Context | None, str | None, str], str],
) -> None:
    """The ``remember`` and ``recall`` tools (``target`` resolves a call's namespace)."""

    @server.tool()
    def remember(
        text: str,
        namespace: str | None = None,
        metadata: dict[str, Any] | None = None,
        id: str | None = None,
        speaker: str | None = None,
        session: str | None = None,
        ctx: Context | None = None,
    ) -> dict[str, Any]:
        """Store a memory. ``id`` replaces an earlier memory with the same id; with
        ``speaker`` the text is stored as a conversation turn (with ``session``)."""

        def run() -> dict[str, Any]:
            ns = target(ctx, namespace, "write")
            if speaker:
                doc = turn_document(text, speaker, session=session, metadata=metadata)
                if id:
                    doc.id = id
            else:
                doc = Document(text=text, id=id, source="mcp", metadata=dict(metadata or {}))
            return service.add([doc], ns)

        return _call(run)

    @server.tool()
    def recall(
        query: str,
        k: int = 5,
        namespace: str | None = None,
        where: dict[str, Any] | str | None = None,
        mode: str = "hybrid",
        ctx: Context | None = None,
    ) -> dict[str, Any]:
        """Search memory: the ``k`` best passages for ``query`` (``mode`` hybrid, keyword or
        vector), optionally filtered by ``where`` ({"topic": "plants"}, "year>=2020")."""

        def run() -> dict[str, Any]:
            ns = target(ctx, namespace, "read")
            if not service.exists(ns):
                return {"results": []}  # nothing remembered here yet
            hits = service.search(query, namespaces=ns, k=k, mode=mode, where=where)
            return {"results": [h.to_dict(with_scores=False) for h in hits]}

        return _call(run)


def _add_ask_and_forget(
    server: MCPServer,
    service: MemoryService,
    target: Callable[[Context | None, str | None, str], str],
) -> None:
    """The ``ask`` and ``forget`` tools."""

    @server.tool()
    def ask(
        question: str,
        namespace: str | None = None,
        k: int | None = None,
        ctx: Context | None = None,
    ) -> dict[str, Any]:
        """Answer ``question`` from memory with numbered citations of the passages used."""

        def run() -> dict[str, Any]:
            ns = target(ctx, namespace, "read")
            names: list[str] | str = ns if service.exists(ns) else []
            answer = service.ask(question, namespaces=names, k=k)
            out = answer.to_dict()
            return {key: out[key] for key in ("answer", "no_answer", "citations")}

        return _call(run)

    @server.tool()
    def forget(
        ids: list[str] | None = None,
        where: dict[str, Any] | str | None = None,
        namespace: str | None = None,
        reason: str = "",
        ctx: Context | None = None,
    ) -> dict[str, Any]:
        """Delete memories by document ``ids`` and/or a ``where`` filter; ``reason`` is kept
        in the audit log."""

        def run() -> dict[str, Any]:
            ns = target(ctx, namespace, "write")
            if not service.exists(ns):
                return {"deleted_documents": 0, "deleted_chunks": 0}
            return service.delete(ns, ids=ids, where=where, reason=reason)

        return _call(run)


def run_stdio(store: str, *, namespace: str = "default", **options: Any) -> None:
    """Serve the tools over stdin/stdout until the client closes them."""
    logging.basicConfig(level=logging.WARNING)  # logs go to stderr; stdout is the protocol
    server, service = build_server(lambda: Memory(store, **options), namespace=namespace)
    try:
        server.run("stdio")
    finally:
        service.close()


if __name__ == "__main__":  # python -m engram.server.mcp [--store PATH] [--namespace NS]
    import argparse
    import os

    parser = argparse.ArgumentParser(prog="python -m engram.server.mcp")
    parser.add_argument("--store", default=os.environ.get("ENGRAM_STORE") or "engram.db")
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--threads", type=int)
    cli = parser.parse_args()
    run_stdio(
        cli.store,
        namespace=cli.namespace,
        **({"threads": cli.threads} if cli.threads else {}),
    )
