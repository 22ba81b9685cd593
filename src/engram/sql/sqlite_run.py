"""Run a rewritten statement on a SQLite store, read-only.

Each statement gets its own connection, opened read-only (``mode=ro``). On it Engram makes the
temporary views ``documents`` and ``chunks`` (only the namespaces the caller may see), then
turns on ``query_only`` and an authorizer that allows reading those views and nothing else:
no table of the store read directly, no write, ``ATTACH``, ``PRAGMA`` or transaction. A
progress handler stops the statement at its time limit.
"""

from __future__ import annotations

import secrets
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from engram.sql.rewrite import literal
from engram.sql.tokens import SqlError

VIEWS = {
    "documents": (
        "SELECT d.doc_key AS id, d.namespace, d.source, d.title, d.metadata, d.created_at, "
        "d.updated_at FROM main.documents d WHERE {cond}"
    ),
    "chunks": (
        "SELECT c.id, d.doc_key AS doc_id, d.namespace, c.position, c.text, c.start_char, "
        "c.end_char FROM main.chunks c JOIN main.documents d ON d.id = c.document_id "
        "WHERE {cond}"
    ),
}
TABLE_FUNCTIONS = {"json_each", "json_tree"}  # SQLite's own, reading only their argument
BLOCKED_FUNCTIONS = {"load_extension", "readfile", "writefile", "edit", "fts3_tokenizer"}
_ACTION_NAMES = """INSERT UPDATE DELETE ATTACH DETACH PRAGMA TRANSACTION SAVEPOINT ANALYZE
REINDEX ALTER_TABLE CREATE_TABLE CREATE_TEMP_TABLE CREATE_VIEW CREATE_TEMP_VIEW CREATE_INDEX
CREATE_TEMP_INDEX CREATE_TRIGGER CREATE_TEMP_TRIGGER CREATE_VTABLE DROP_TABLE DROP_TEMP_TABLE
DROP_VIEW DROP_TEMP_VIEW DROP_INDEX DROP_TEMP_INDEX DROP_TRIGGER DROP_TEMP_TRIGGER DROP_VTABLE"""
_ACTIONS = {
    getattr(sqlite3, "SQLITE_" + name): name.replace("_", " ")
    for name in _ACTION_NAMES.split()
    if hasattr(sqlite3, "SQLITE_" + name)
}


class Guard:
    """The authorizer: reads through Engram's views, plain SELECT work, nothing else."""

    def __init__(self, inner: set[str]):
        self.inner = inner  # the hidden views that alone may read the store's tables
        self.temp = inner | set(VIEWS)
        self.refused: str | None = None

    def __call__(self, action: int, arg1: Any, arg2: Any, db: Any, source: Any) -> int:
        if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_RECURSIVE):
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_READ:
            if db is None:  # a WITH query or subquery, not a table
                return sqlite3.SQLITE_OK
            if db == "main" and (source in self.inner or arg1 in TABLE_FUNCTIONS):
                return sqlite3.SQLITE_OK
            if db == "temp" and arg1 in self.temp:
                return sqlite3.SQLITE_OK
            self.refused = (
                f"table {arg1} is not visible to engram sql; query the views documents and "
                "chunks, and similar() / keywords()"
            )
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_FUNCTION:
            if str(arg2).lower() not in BLOCKED_FUNCTIONS:
                return sqlite3.SQLITE_OK
            self.refused = f"function {arg2}() is not available in engram sql"
            return sqlite3.SQLITE_DENY
        if action == sqlite3.SQLITE_UPDATE and arg1 in ("sqlite_master", "sqlite_temp_master"):
            return sqlite3.SQLITE_OK  # SQLite's own schema loading (writes stay impossible)
        what = _ACTIONS.get(action, f"action {action}")
        self.refused = f"engram sql is read-only: {what} is refused"
        return sqlite3.SQLITE_DENY


def _scope_condition(namespaces: Sequence[str] | None) -> str:
    # Never a constant: SQLite would flatten a view with a constant condition into its table
    # and then authorize a count(*) as a read of the table itself, not through the view.
    if namespaces is None:
        return "d.namespace <> ''"
    if not namespaces:
        return "d.namespace = ''"  # no namespace is named ''
    return f"d.namespace IN ({', '.join(literal(n) for n in namespaces)})"


def _open(path: str, namespaces: Sequence[str] | None) -> tuple[sqlite3.Connection, Guard]:
    uri = f"file:{Path(path).resolve()}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    token = secrets.token_hex(12)
    cond = _scope_condition(namespaces)
    inner = set()
    for name, body in VIEWS.items():
        hidden = f"engram_{name}_{token}"
        conn.execute(f"CREATE TEMP VIEW {hidden} AS {body.format(cond=cond)}")
        conn.execute(f"CREATE TEMP VIEW {name} AS SELECT * FROM {hidden}")
        inner.add(hidden)
    # Made now, so that their first use later needs no look at the schema.
    conn.execute("SELECT 1 FROM json_each('[]'), json_tree('[]')")
    conn.execute("PRAGMA query_only=ON")
    guard = Guard(inner)
    conn.set_authorizer(guard)
    return conn, guard


def run_sqlite(
    path: str,
    statement: str,
    params: Any,
    namespaces: Sequence[str] | None,
    *,
    limit: int,
    timeout: float,
) -> tuple[list[str], list[tuple[Any, ...]], bool]:
    """``(columns, rows, truncated)`` of ``statement`` over the scoped views."""
    try:
        conn, guard = _open(path, namespaces)
    except sqlite3.Error as exc:
        raise SqlError(f"{path}: cannot open the store for reading ({exc})") from exc
    deadline = time.monotonic() + timeout
    conn.set_progress_handler(lambda: time.monotonic() > deadline, 2000)
    try:
        cur = conn.execute(statement, params if params is not None else ())
        columns = [d[0] for d in cur.description or ()]
        rows = cur.fetchmany(limit + 1)
    except sqlite3.Error as exc:
        if guard.refused:
            raise SqlError(guard.refused) from None
        if time.monotonic() > deadline or "interrupted" in str(exc):
            limit_hit = f"the statement ran longer than the time limit ({timeout:g} s)"
            raise SqlError(limit_hit) from None
        if str(exc).startswith("cannot modify"):  # a write to one of the views
            raise SqlError(f"engram sql is read-only: {exc}") from None
        raise SqlError(f"SQLite: {exc}") from None
    except (ValueError, OverflowError) as exc:  # bad parameters
        raise SqlError(f"bad parameters: {exc}") from None
    finally:
        conn.close()
    return columns, rows[:limit], len(rows) > limit
