"""Run a rewritten statement on a PostgreSQL store, read-only.

The statement runs in a transaction that is ``READ ONLY`` from its first command, with a
``statement_timeout``, and is rolled back afterwards. The views ``documents`` and ``chunks``
are WITH queries over the store's tables, limited to the caller's namespaces, put in front of
the user's statement; ``engram.sql.pg_check`` has made sure the statement reads nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors

from engram.sql.rewrite import literal
from engram.sql.tokens import SqlError

VIEWS = {
    "documents": (
        "documents(id, namespace, source, title, metadata, created_at, updated_at) AS "
        "NOT MATERIALIZED (SELECT d.doc_key, d.namespace, d.source, d.title, d.metadata, "
        "d.created_at, d.updated_at FROM {s}.documents d WHERE {cond})"
    ),
    "chunks": (
        "chunks(id, doc_id, namespace, position, text, start_char, end_char) AS "
        "NOT MATERIALIZED (SELECT c.id, d.doc_key, d.namespace, c.position, c.text, "
        "c.start_char, c.end_char FROM {s}.chunks c JOIN {s}.documents d "
        "ON d.id = c.document_id WHERE {cond})"
    ),
}


def _scope_condition(namespaces: Sequence[str] | None) -> str:
    if namespaces is None:
        return "true"
    if not namespaces:
        return "false"
    return f"d.namespace IN ({', '.join(literal(n) for n in namespaces)})"


def store_schema(conn: psycopg.Connection) -> str:
    """The quoted schema holding the store's ``documents`` table (as the search path finds)."""
    row = conn.execute(
        "SELECT quote_ident(n.nspname) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass('documents')"
    ).fetchone()
    if row is None:
        raise SqlError("this database holds no Engram store (no documents table)")
    return row[0]


def view_ctes(schema: str, namespaces: Sequence[str] | None) -> list[str]:
    cond = _scope_condition(namespaces)
    return [body.format(s=schema, cond=cond) for body in VIEWS.values()]


def begin_read_only(conn: psycopg.Connection, timeout: float) -> None:
    conn.execute("SET TRANSACTION READ ONLY")
    conn.execute("SELECT set_config('statement_timeout', %s, true)", (f"{int(timeout * 1000)}ms",))
    conn.execute("SELECT set_config('standard_conforming_strings', 'on', true)")


def execute(
    conn: psycopg.Connection, statement: str, params: Any, limit: int
) -> tuple[list[str], list[tuple[Any, ...]], bool]:
    """``(columns, rows, truncated)``; ``conn`` is in a read-only transaction."""
    cur = conn.execute(statement, params)
    columns = [d.name for d in cur.description or ()]
    rows = cur.fetchmany(limit + 1)
    return columns, rows[:limit], len(rows) > limit


def explain_error(exc: psycopg.Error, timeout: float) -> tuple[str, int | None]:
    """A one-line message for a database error, and its 0-based offset in the statement."""
    if isinstance(exc, pg_errors.QueryCanceled):
        return f"the statement ran longer than the time limit ({timeout:g} s)", None
    diag = exc.diag
    message = diag.message_primary or str(exc).splitlines()[0]
    if isinstance(exc, pg_errors.ReadOnlySqlTransaction):
        message = f"engram sql is read-only: {message}"
    else:
        message = f"PostgreSQL: {message}"
    at = int(diag.statement_position) - 1 if diag.statement_position else None
    return message, at
