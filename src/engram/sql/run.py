"""``engram sql``: one read-only SQL statement over the store, with ``similar()`` and
``keywords()`` as tables filled from Engram's recall. See docs/sql.md.

Two phases, so that a server holds its memory lock only for the recall: ``prepare`` parses the
statement and runs each table function through ``Memory.search``; ``execute`` runs the
rewritten statement on its own read-only connection (SQLite) or read-only transaction
(PostgreSQL).
"""

from __future__ import annotations

import base64
import datetime
import decimal
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engram.sql.rewrite import Statement, call_cte, parse
from engram.sql.tokens import SqlError, significant, tokenize

if TYPE_CHECKING:
    from engram.memory import Memory

DEFAULT_LIMIT = 1000
MAX_LIMIT = 100_000
DEFAULT_TIMEOUT = 10.0
VIEW_NAMES = ("documents", "chunks")


@dataclass
class SqlResult:
    """Columns and rows of a statement; ``truncated`` when the row limit cut it short;
    ``statement`` is the rewritten text that ran (or, with ``explain``, would run)."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool
    statement: str
    executed: bool = True

    def to_dict(self, *, with_statement: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.executed:
            out["columns"] = list(self.columns)
            out["rows"] = [[json_value(v) for v in row] for row in self.rows]
            out["truncated"] = self.truncated
        if with_statement or not self.executed:
            out["statement"] = self.statement
        return out


def json_value(value: Any) -> Any:
    """A database value as JSON can hold it."""
    if value is None or isinstance(value, bool | int | float | str | dict | list):
        return value
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, datetime.date | datetime.datetime | datetime.time):
        return value.isoformat()
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


@dataclass
class Prepared:
    statement: Statement
    namespaces: list[str] | None  # None: every namespace
    params: Any


def dialect_of(memory: Memory) -> str:
    return "postgres" if memory.store.kind == "postgresql" else "sqlite"


def prepare(memory: Memory, statement: str, params: Any = None, namespace: Any = None) -> Prepared:
    """Parse ``statement`` and fill its ``similar()`` / ``keywords()`` tables from recall
    over ``namespace`` (as in ``Memory.search``: None the default one, ``"*"`` all)."""
    if params is not None and not isinstance(params, dict | list | tuple):
        raise SqlError("params must be a list (positional) or an object (named)")
    stmt = parse(statement, dialect_of(memory), params)
    if isinstance(namespace, list | tuple) and not namespace:
        namespaces: list[str] | None = []
    else:
        namespaces = memory._resolve_namespaces(namespace)
    for call in stmt.calls:
        if namespaces == []:
            continue
        hits = memory.search(
            call.text,
            k=call.k,
            mode=call.mode or None,
            namespace="*" if namespaces is None else namespaces,
        )
        call.rows = [(h.id, h.doc_id, h.score, r, h.namespace) for r, h in enumerate(hits, 1)]
    return Prepared(stmt, namespaces, params)


def _locate(stmt: Statement, message: str) -> int | None:
    """Where in the user's statement an error message points (SQLite names a token)."""
    m = re.search(r'near "(.+?)"|no such \w+: (\S+)|table (\w+) is not visible', message)
    if not m:
        return None
    word = next(g for g in m.groups() if g).split(".")[-1].lower()
    for tok in significant(tokenize(stmt.original, stmt.dialect)):
        if tok.text.lower() == word or tok.text.lower().endswith("." + word):
            return tok.start + 1
    return None


def _execute_sqlite(
    memory: Memory, prep: Prepared, limit: int, timeout: float, explain: bool
) -> SqlResult:
    from engram.sql.sqlite_run import run_sqlite

    stmt = prep.statement
    text, _ = stmt.render([call_cte(c) for c in stmt.calls])
    if explain:
        return SqlResult([], [], False, text, executed=False)
    try:
        columns, rows, truncated = run_sqlite(
            memory.store.path, text, prep.params, prep.namespaces, limit=limit, timeout=timeout
        )
    except SqlError as exc:
        if exc.position is None and (at := _locate(stmt, str(exc))):
            raise SqlError(str(exc), at) from None
        raise
    return SqlResult(columns, rows, truncated, text)


def _execute_postgres(
    memory: Memory, prep: Prepared, limit: int, timeout: float, explain: bool
) -> SqlResult:
    import psycopg

    from engram.sql import pg_run
    from engram.sql.pg_check import check_postgres

    stmt = prep.statement
    tables = {*VIEW_NAMES, *(c.name for c in stmt.calls)}
    check_postgres(stmt.body(), tables, lambda at: stmt.position(stmt.pieces, at))
    pieces = stmt.pieces
    with memory.store.connection() as conn:
        try:
            pg_run.begin_read_only(conn, timeout)
            ctes = pg_run.view_ctes(pg_run.store_schema(conn), prep.namespaces)
            ctes += [call_cte(c) for c in stmt.calls]
            if prep.params is not None:  # psycopg reads % as a placeholder then
                ctes = [c.replace("%", "%%") for c in ctes]
            text, pieces = stmt.render(ctes)
            if explain:
                return SqlResult([], [], False, text, executed=False)
            columns, rows, truncated = pg_run.execute(conn, text, prep.params, limit)
        except psycopg.Error as exc:
            message, at = pg_run.explain_error(exc, timeout)
            raise SqlError(message, stmt.position(pieces, at) if at is not None else None) from None
        finally:
            conn.rollback()
    return SqlResult(columns, rows, truncated, text)


def execute(
    memory: Memory,
    prep: Prepared,
    *,
    limit: int = DEFAULT_LIMIT,
    timeout: float = DEFAULT_TIMEOUT,
    explain: bool = False,
) -> SqlResult:
    """Run a prepared statement read-only, at most ``limit`` rows within ``timeout`` seconds."""
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise SqlError(f"limit must be an integer from 1 to {MAX_LIMIT}")
    if not isinstance(timeout, int | float) or not 0 < timeout <= 3600:
        raise SqlError("timeout must be a number of seconds, more than 0 and at most 3600")
    run = _execute_postgres if dialect_of(memory) == "postgres" else _execute_sqlite
    return run(memory, prep, limit, float(timeout), explain)


def run_sql(
    memory: Memory,
    statement: str,
    params: Any = None,
    *,
    namespace: str | Sequence[str] | None = None,
    limit: int = DEFAULT_LIMIT,
    timeout: float = DEFAULT_TIMEOUT,
    explain: bool = False,
) -> SqlResult:
    prep = prepare(memory, statement, params, namespace)
    return execute(memory, prep, limit=limit, timeout=timeout, explain=explain)
