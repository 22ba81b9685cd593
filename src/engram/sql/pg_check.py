"""Check a statement for ``engram sql`` on PostgreSQL with PostgreSQL's own parser (pglast).

A read-only transaction already refuses every write; this check makes the rest of the store
invisible: the statement must be one SELECT whose tables are ``documents``, ``chunks``, the
``similar_N`` / ``keywords_N`` tables and its own WITH queries (by PostgreSQL's scoping
rules), never a schema-qualified name, and whose functions are not among those that run SQL
text, read tables by name or reach the server (``query_to_xml``, ``ts_stat``, ``pg_*``...).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from engram.sql.tokens import SqlError, tokenize

try:
    from pglast import ast, parse_sql
    from pglast.parser import ParseError
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise SqlError("engram sql on PostgreSQL needs pglast: pip install 'engram[postgres]'") from exc

BLOCKED = re.compile(
    r"^(pg_.*|lo_.*|dblink.*|.*_to_xml.*|.*_to_xmlschema|query_to_.*|ts_stat|ts_rewrite|"
    r"set_config|current_setting|nextval|setval|currval|txid_.*|binary_upgrade_.*)$"
)
Locate = Callable[[int], int]  # 0-based offset in the checked text -> 1-based user position


def _children(node: ast.Node) -> list[ast.Node]:
    out: list[ast.Node] = []
    for name in getattr(node, "__slots__", ()):
        value = getattr(node, name, None)
        if isinstance(value, ast.Node):
            out.append(value)
        elif isinstance(value, list | tuple):
            out.extend(v for v in value if isinstance(v, ast.Node))
    return out


def _where(node: ast.Node, locate: Locate) -> int | None:
    loc = getattr(node, "location", None)
    return locate(loc) if isinstance(loc, int) and loc >= 0 else None


def _check_with(node: ast.SelectStmt, scope: frozenset[str], locate: Locate) -> frozenset[str]:
    clause = node.withClause
    assert clause is not None  # called for statements with a WITH clause only
    ctes = list(clause.ctes or ())
    names = [cte.ctename for cte in ctes]
    for i, cte in enumerate(ctes):
        if not isinstance(cte.ctequery, ast.SelectStmt):
            raise SqlError(
                "engram sql is read-only: a WITH query that writes is refused", _where(cte, locate)
            )
        visible = names if clause.recursive else names[:i]
        _walk(cte.ctequery, scope | frozenset(visible), locate)
    return scope | frozenset(names)


def _walk(node: ast.Node, scope: frozenset[str], locate: Locate) -> None:
    if isinstance(node, ast.SelectStmt):
        if node.intoClause is not None:
            raise SqlError("engram sql is read-only: SELECT INTO is refused")
        if node.lockingClause:
            raise SqlError("engram sql is read-only: SELECT ... FOR UPDATE/SHARE is refused")
        if node.withClause is not None:
            scope = _check_with(node, scope, locate)
    elif isinstance(node, ast.RangeVar):
        if node.schemaname or node.catalogname:
            raise SqlError(
                f"schema-qualified table {node.schemaname}.{node.relname} is not visible to "
                "engram sql; query the views documents and chunks",
                _where(node, locate),
            )
        if node.relname not in scope:
            raise SqlError(
                f"table {node.relname} is not visible to engram sql; query the views "
                "documents and chunks, and similar() / keywords()",
                _where(node, locate),
            )
    elif isinstance(node, ast.FuncCall):
        names = [getattr(n, "sval", "") for n in node.funcname or ()]
        if len(names) > 1 or BLOCKED.match(names[-1].lower()):
            raise SqlError(
                f"function {'.'.join(names)}() is not available in engram sql",
                _where(node, locate),
            )
    for child in _children(node):
        if isinstance(node, ast.SelectStmt) and child is node.withClause:
            continue
        _walk(child, scope, locate)


def _without_placeholders(text: str) -> str:
    """``text`` with psycopg's ``%s`` / ``%(name)s`` as ``$1`` (same length), for the parser."""
    out = []
    for tok in tokenize(text, "postgres"):
        if tok.kind == "param" and tok.text.startswith("%"):
            out.append("$1".ljust(len(tok.text)))
        else:
            out.append(tok.text)
    return "".join(out)


def _error_offset(text: str, message: str, offset: Any) -> int | None:
    """The parser's error offset; outside ASCII it drifts, so there the nearest token that
    the message names ("at or near ...") is taken instead."""
    if not isinstance(offset, int):
        return None
    near = re.search(r'at or near "(.*)"', message)
    if near and not text.isascii():
        starts = [t.start for t in tokenize(text, "postgres") if t.text == near.group(1)]
        if starts:
            return min(starts, key=lambda s: abs(s - offset))
    return offset


def check_postgres(text: str, tables: set[str], locate: Locate) -> None:
    """Refuse ``text`` unless it is one SELECT that reads only ``tables`` and its own WITH
    queries (``SqlError`` with the position in the user's statement)."""
    text = _without_placeholders(text)
    try:
        statements = parse_sql(text)
    except ParseError as exc:
        message, offset = (exc.args + (None,))[:2]
        at = _error_offset(text, str(message), offset)
        raise SqlError(f"syntax error: {message}", locate(at) if at is not None else None) from None
    if len(statements) != 1:
        raise SqlError("only one statement at a time")
    stmt = statements[0].stmt
    if not isinstance(stmt, ast.SelectStmt):
        kind = type(stmt).__name__.removesuffix("Stmt").upper()
        raise SqlError(f"engram sql is read-only: {kind} statements are refused")
    try:
        _walk(stmt, frozenset(tables), locate)
    except RecursionError:
        raise SqlError("the statement is nested too deeply") from None
