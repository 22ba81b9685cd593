"""``POST /v1/namespaces/{namespace}/sql``: ``engram sql`` over HTTP, read scope.

The statement sees only the namespaces the key reaches: the path's namespace, or with ``*``
every namespace the key reaches (in ``similar()`` / ``keywords()`` and in the views alike).
Recall runs under the server's memory lock; the statement itself runs on its own read-only
connection or transaction, with the time and row limits of docs/sql.md.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI
from fastapi.concurrency import run_in_threadpool
from pydantic import Field

from engram.server.app import Access, _Body, _responses, search_access
from engram.server.service import MemoryService
from engram.sql import DEFAULT_TIMEOUT, execute, prepare

MAX_ROWS = 10_000


class SqlRequest(_Body):
    statement: str = Field(min_length=1, max_length=100_000)
    params: dict[str, Any] | list[Any] | None = Field(
        None, description="values for the statement's placeholders (see docs/sql.md)"
    )
    limit: int = Field(1000, ge=1, le=MAX_ROWS, description="most rows returned")
    explain: bool = Field(False, description="return the rewritten statement, run nothing")


def run_statement(
    service: MemoryService, body: SqlRequest, namespaces: str | list[str]
) -> dict[str, Any]:
    with service.lock:
        memory = service.memory
        prep = prepare(memory, body.statement, body.params, namespaces)
    result = execute(memory, prep, limit=body.limit, timeout=DEFAULT_TIMEOUT, explain=body.explain)
    return result.to_dict()


def add_sql_route(app: FastAPI, service: MemoryService) -> None:
    @app.post("/v1/namespaces/{namespace}/sql", tags=["recall"], responses=_responses(400, 404))
    async def sql(body: SqlRequest, a: Annotated[Access, Depends(search_access)]) -> dict:
        """One read-only SQL statement over the views ``documents`` and ``chunks``, with
        ``similar('text', k, mode)`` and ``keywords('text', k)`` as tables of recall hits;
        returns ``{columns, rows, truncated}`` (with ``explain``: ``{statement}``)."""
        if a.namespace != "*":
            await run_in_threadpool(service.require, a.namespace)
        namespaces = await run_in_threadpool(a.namespaces, service)
        return await run_in_threadpool(run_statement, service, body, namespaces)
