"""The ``where`` filter language, compiled to parameterised SQL.

A filter is structured data, never SQL text::

    {"topic": "plants"}                              equality
    {"year": {"$gte": 2019, "$lt": 2023}}           range
    {"topic": {"$in": ["plants", "food"]}}          membership
    {"tags": {"$contains": "urgent"}}               array membership or substring
    {"source": {"$contains": "handbook"}}           built-in fields: source, title, doc_id,
    {"created_at": {"$gte": "2024-01-01"}}          namespace, created_at, updated_at
    {"$or": [{...}, {...}]}, {"$and": [...]}, {"$not": {...}}

Keys are validated against a strict pattern and values always travel as parameters, so
no user string ever becomes SQL text. ``parse_where`` also accepts a short text form used
by the CLI: ``year>=2019 and topic=plants`` (operators ``= != > >= < <= ~``; ``~`` means
contains; ``a=x|y`` means ``$in``).

Ranges (``$gt $gte $lt $lte``) on metadata are typed: a number compares with stored numbers
only, an ISO date (``2024-05-01``) with stored date strings only, other text with stored text
only; a value of another type does not match (``year>=2020`` skips ``"2018"`` and
``"unknown"``). In the short text form a range on an unquoted word that is not a number or a
date is an error (``year>=abc``); quote it to compare text (``name>='m'``).

``compile_where(where, dialect=...)`` targets SQLite (``json_extract``) or PostgreSQL (``jsonb``
operators); both select the same rows for the same filter.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engram.errors import FilterError

COLUMNS = {
    "source": "d.source",
    "title": "d.title",
    "doc_id": "d.doc_key",
    "namespace": "d.namespace",
    "created_at": "d.created_at",
    "updated_at": "d.updated_at",
}
TIME_COLUMNS = {"created_at", "updated_at"}
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*(\.[A-Za-z_][A-Za-z0-9_\-]*)*$")
_COMPARE = {"$eq": "=", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_SCALAR = (str, int, float, bool, type(None))


def to_timestamp(value: Any) -> float:
    """Seconds since the epoch from a number or an ISO-8601 date/time string (UTC if naive)."""
    if isinstance(value, bool):
        raise FilterError(f"not a time: {value!r}")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise FilterError(f"not an ISO-8601 time: {value!r}") from exc
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return dt.timestamp()
    raise FilterError(f"not a time: {value!r}")


DIALECTS = ("sqlite", "postgres")


@dataclass(frozen=True)
class _Target:
    """Where a filter is compiled to: the SQL dialect and its parameter placeholder."""

    dialect: str
    ph: str

    @property
    def pg(self) -> bool:
        return self.dialect == "postgres"


def compile_where(
    where: dict[str, Any] | None, placeholder: str | None = None, dialect: str = "sqlite"
) -> tuple[str, list[Any]]:
    """Compile a filter to ``(sql, params)`` over ``documents d``; ``("1=1", [])`` for none.

    ``dialect`` is ``"sqlite"`` (``json_extract``, ``?`` placeholders) or ``"postgres"``
    (``jsonb`` operators with a ``text[]`` path parameter, ``%s`` placeholders). Both accept the
    same filters, raise the same errors and select the same rows: the PostgreSQL SQL follows
    SQLite's comparison rules (NULL for a missing key, numbers sort before text, booleans
    compare as 1/0, binary text order).
    """
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r}; use one of {DIALECTS}")
    if not where:
        return "1=1", []
    if not isinstance(where, dict):
        raise FilterError(
            f"a filter must be an object of field conditions, got {type(where).__name__}"
        )
    target = _Target(dialect, placeholder or ("%s" if dialect == "postgres" else "?"))
    params: list[Any] = []
    sql = _compile_obj(where, params, target)
    return sql, params


def _compile_obj(obj: dict[str, Any], params: list[Any], t: _Target) -> str:
    if not obj:
        return "1=1"
    parts = []
    for key, cond in obj.items():
        if key in ("$and", "$or"):
            if not isinstance(cond, list) or not cond or not all(isinstance(c, dict) for c in cond):
                raise FilterError(f"{key} takes a non-empty list of filter objects")
            joiner = " AND " if key == "$and" else " OR "
            parts.append("(" + joiner.join(_compile_obj(c, params, t) for c in cond) + ")")
        elif key == "$not":
            if not isinstance(cond, dict):
                raise FilterError("$not takes a filter object")
            parts.append(f"NOT ({_compile_obj(cond, params, t)})")
        elif key.startswith("$"):
            raise FilterError(f"unknown operator {key!r} at the top of a filter")
        else:
            parts.append(_compile_field(key, cond, params, t))
    return "(" + " AND ".join(parts) + ")"


def _check_key(key: str) -> None:
    if key not in COLUMNS and (not _KEY.match(key) or len(key) > 200):
        raise FilterError(
            f"invalid metadata key {key!r}: use letters, digits, '_' and '-', dots for nesting"
        )


def _field_sql(key: str, params: list[Any], t: _Target) -> str:
    _check_key(key)
    if key in COLUMNS:
        return COLUMNS[key]
    if t.pg:
        params.append(key.split("."))
        return f"(d.metadata #> {t.ph}::text[])"
    # A literal path (the key is checked: no quotes) lets SQLite use an expression index made
    # by ``SQLiteStore.index_metadata``; a bound path would not match it.
    return f"json_extract(d.metadata, {json_path_literal(key)})"


def metadata_path(key: str, dialect: str = "sqlite") -> str | list[str]:
    """The checked path of metadata ``key``: a JSON path for SQLite, a ``text[]`` for
    PostgreSQL's ``#>``. Raises FilterError for a key that is not a plain dotted name."""
    if not _KEY.match(key) or len(key) > 200:
        raise FilterError(
            f"invalid metadata key {key!r}: use letters, digits, '_' and '-', dots for nesting"
        )
    return key.split(".") if dialect == "postgres" else _json_path(key)


def metadata_index_name(key: str) -> str:
    """The name of the SQL index ``index_metadata`` makes for checked metadata ``key``."""
    metadata_path(key)
    name = "meta_" + "".join(c if c.isalnum() or c == "_" else "_" for c in key)
    if not key.replace("_", "").isalnum():  # "a.b" and "a_b" must not share a name
        name += "_" + hashlib.sha1(key.encode()).hexdigest()[:8]
    return name


def pg_text_path(key: str) -> str:
    """``d.metadata #>> '{a,b}'``: the text at checked metadata ``key`` with a literal path,
    the expression ``PostgresStore.index_metadata`` indexes (a bound path would not match)."""
    parts = metadata_path(key, "postgres")
    return "(d.metadata #>> '{" + ",".join(f'"{p}"' for p in parts) + "}')"


def json_path_literal(key: str) -> str:
    """The SQL string literal of the JSON path of checked metadata ``key`` (SQLite)."""
    metadata_path(key)
    return "'" + _json_path(key).replace("'", "''") + "'"


def _json_path(key: str) -> str:
    return "$" + "".join(f'."{part}"' for part in key.split("."))


def _value(key: str, value: Any) -> Any:
    if not isinstance(value, _SCALAR):
        raise FilterError(f"value for {key!r} must be a string, number, boolean or null")
    if key in TIME_COLUMNS and value is not None:
        return to_timestamp(value)
    if isinstance(value, bool):
        return int(value)  # JSON true/false come back from json_extract as 1/0
    return value


def _compile_field(key: str, cond: Any, params: list[Any], t: _Target) -> str:
    if not isinstance(cond, dict):
        cond = {"$eq": cond}
    if not cond:
        raise FilterError(f"empty condition for {key!r}")
    parts = []
    for op, value in cond.items():
        if op in _COMPARE:
            if value is None and op in ("$eq", "$ne"):
                parts.append(_is_null(key, op == "$ne", params, t))
                continue
            if op in _RANGE and key not in COLUMNS and value is not None:
                parts.append(_typed_range(key, _COMPARE[op], value, params, t))
                continue
            if t.pg:
                _check_key(key)
                parts.append(_pg_compare(key, _COMPARE[op], _value(key, value), params, t.ph))
                continue
            col = _field_sql(key, params, t)
            params.append(_value(key, value))
            parts.append(f"{col} {_COMPARE[op]} {t.ph}")
        elif op in ("$in", "$nin"):
            if not isinstance(value, list | tuple) or not value:
                raise FilterError(f"{op} for {key!r} takes a non-empty list")
            if t.pg:
                _check_key(key)
                values = [_value(key, v) for v in value]
                parts.append(_pg_in(key, values, op == "$nin", params, t.ph))
                continue
            col = _field_sql(key, params, t)
            params.extend(_value(key, v) for v in value)
            marks = ", ".join([t.ph] * len(value))
            parts.append(f"{col} {'NOT ' if op == '$nin' else ''}IN ({marks})")
        elif op == "$contains":
            parts.append(_contains(key, value, params, t))
        elif op == "$exists":
            if t.pg and key not in COLUMNS:
                _check_key(key)
                parts.append(_pg_is_null(key, not value, params, t.ph))
                continue
            col = _field_sql(key, params, t)
            parts.append(f"{col} IS {'NOT ' if value else ''}NULL")
        else:
            raise FilterError(f"unknown operator {op!r} for {key!r}")
    return "(" + " AND ".join(parts) + ")"


# -- typed ranges: numbers with numbers, ISO dates with dates, text with text ------------------
_RANGE = ("$gt", "$gte", "$lt", "$lte")
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:[T ][0-9:.]+)?(?:Z|[+-]\d{2}:?\d{2})?$")
_DATE_GLOB = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]*"  # SQLite: a date-shaped string
_DATE_RE = "^[0-9]{4}-[0-9]{2}-[0-9]{2}"  # PostgreSQL: the same shape


def is_iso_date(text: str) -> bool:
    """An ISO-8601 date or date-time (``2024-05-01``, ``2024-05-01T10:00Z``)."""
    if not _ISO_DATE.match(text):
        return False
    try:
        datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def range_kind(key: str, value: Any) -> str:
    """``number``, ``date`` or ``text``: what a range on ``key`` compares; stored values of
    another type never match it."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise FilterError(f"{key}: > >= < <= compare numbers, ISO dates or text, not {value!r}")
    if isinstance(value, str):
        return "date" if is_iso_date(value) else "text"
    return "number"


def _typed_range(key: str, sqlop: str, value: Any, params: list[Any], t: _Target) -> str:
    """``key sqlop value`` only where the stored value has the operand's type: NULL when the
    key is missing, FALSE for any other type (the same on both backends)."""
    _check_key(key)
    kind = range_kind(key, value)
    if t.pg:
        return _pg_typed_range(key, sqlop, value, kind, params, t.ph)
    path = json_path_literal(key)
    x, jt = f"json_extract(d.metadata, {path})", f"json_type(d.metadata, {path})"
    params.append(value)
    if kind == "number":
        return f"({x} {sqlop} {t.ph} AND {jt} IN ('integer', 'real'))"
    shape = f" AND {x} GLOB '{_DATE_GLOB}'" if kind == "date" else ""
    return f"({x} {sqlop} {t.ph} AND {jt} = 'text'{shape})"


def _pg_typed_range(key: str, sqlop: str, value: Any, kind: str, params: list[Any], ph: str) -> str:
    sql = f"(CASE coalesce(jsonb_typeof({_pg_x(key, params, ph)}), 'missing') "
    sql += "WHEN 'missing' THEN NULL "
    if kind == "number":
        sql += f"WHEN 'number' THEN ({_pg_x(key, params, ph)})::numeric {sqlop} {ph}::numeric "
        params.append(repr(value) if isinstance(value, float) else str(value))
    else:
        sql += f"WHEN 'string' THEN (({_pg_x(key, params, ph)} #>> '{{}}') COLLATE \"C\" "
        sql += f"{sqlop} {ph}"
        params.append(value)
        if kind == "date":
            sql += f" AND ({_pg_x(key, params, ph)} #>> '{{}}') ~ '{_DATE_RE}'"
        sql += ") "
    return sql + "ELSE FALSE END)"


def _is_null(key: str, negate: bool, params: list[Any], t: _Target) -> str:
    """``key`` is missing or null (``negate``: present and not null)."""
    if t.pg and key not in COLUMNS:
        _check_key(key)
        return _pg_is_null(key, not negate, params, t.ph)
    col = _field_sql(key, params, t)
    return f"{col} IS {'NOT ' if negate else ''}NULL"


def _contains(key: str, value: Any, params: list[Any], t: _Target) -> str:
    value = _value(key, value)
    if key in COLUMNS:
        params.append(str(value))
        if t.pg:
            return f"strpos({COLUMNS[key]}::text, {t.ph}) > 0"
        return f"instr({COLUMNS[key]}, {t.ph}) > 0"
    if not _KEY.match(key):
        raise FilterError(f"invalid metadata key {key!r}")
    if t.pg:
        return _pg_contains(key, value, params, t.ph)
    ph = t.ph
    path = _json_path(key)
    params.extend([path, path, value, path, str(value)])
    return (
        f"(CASE json_type(d.metadata, {ph}) WHEN 'array' THEN "
        f"EXISTS (SELECT 1 FROM json_each(d.metadata, {ph}) WHERE json_each.value = {ph}) "
        f"ELSE instr(json_extract(d.metadata, {ph}), {ph}) > 0 END)"
    )


# -- PostgreSQL: jsonb with SQLite's comparison rules ------------------------------------------
# SQLite's json_extract gives NULL for a missing key or a JSON null, a number for a number,
# 1/0 for true/false and text for a string (JSON text for an array or object); a comparison
# with NULL is NULL, numbers sort before text, and text compares byte-wise. The CASE
# expressions below give the same value (TRUE, FALSE or NULL) for every stored type, so
# ``$not``, ``$nin`` and ``$ne`` select the same rows on both backends.
_PG_TEXT_SIDE = ("string", "array", "object")  # json_extract returns text for these


def _pg_x(key: str, params: list[Any], ph: str) -> str:
    """The jsonb value at ``key`` (SQL NULL when missing), its path as a parameter."""
    params.append(key.split("."))
    return f"(d.metadata #> {ph}::text[])"


def _pg_compare(key: str, sqlop: str, value: Any, params: list[Any], ph: str) -> str:
    if key in TIME_COLUMNS:
        params.append(value)
        return f"{COLUMNS[key]} {sqlop} {ph}"
    if key in COLUMNS:  # TEXT columns: SQLite gives a compared number the column's affinity
        params.append(None if value is None else str(value))
        return f'{COLUMNS[key]} COLLATE "C" {sqlop} {ph}'
    if sqlop == "=" and isinstance(value, str):
        # Whenever the exact form holds, the text at the path equals the value: said with a
        # literal path, a B-tree on that expression (index_metadata) finds the rows.
        params.append(value)
        exact = _pg_json_compare(lambda: _pg_x(key, params, ph), sqlop, value, params, ph)
        return f"({pg_text_path(key)} = {ph} AND {exact})"
    return _pg_json_compare(lambda: _pg_x(key, params, ph), sqlop, value, params, ph)


def _pg_json_compare(x: Any, sqlop: str, value: Any, params: list[Any], ph: str) -> str:
    """``x() sqlop value`` where ``x()`` yields a jsonb expression (appending its params)."""
    if value is None:
        return "(NULL::boolean)"  # SQLite: a comparison with NULL is NULL
    if isinstance(value, int | float):
        # A number: numbers and booleans compare numerically; text sorts after any number.
        # The value travels as its decimal text, so numeric comparison is exact.
        number = repr(value) if isinstance(value, float) else str(value)
        text_side = "TRUE" if sqlop in ("!=", ">", ">=") else "FALSE"
        sql = f"(CASE jsonb_typeof({x()}) "
        sql += f"WHEN 'number' THEN ({x()})::numeric {sqlop} {ph}::numeric "
        params.append(number)
        sql += f"WHEN 'boolean' THEN (CASE WHEN ({x()})::boolean THEN 1 ELSE 0 END) "
        sql += f"{sqlop} {ph}::numeric "
        params.append(number)
        sql += " ".join(f"WHEN '{kind}' THEN {text_side}" for kind in _PG_TEXT_SIDE)
        return sql + " END)"
    # A string: any number sorts before it; text compares byte-wise (COLLATE "C").
    number_side = "TRUE" if sqlop in ("!=", "<", "<=") else "FALSE"
    sql = (
        f"(CASE jsonb_typeof({x()}) WHEN 'number' THEN {number_side} "
        f"WHEN 'boolean' THEN {number_side} WHEN 'null' THEN NULL "
        f"ELSE ({x()} #>> '{{}}') COLLATE \"C\" {sqlop} {ph} END)"
    )
    params.append(value)
    return sql


def _pg_in(key: str, values: list[Any], negate: bool, params: list[Any], ph: str) -> str:
    neg = "NOT " if negate else ""
    if key in TIME_COLUMNS:
        params.extend(values)
        return f"{COLUMNS[key]} {neg}IN ({', '.join([ph] * len(values))})"
    if key in COLUMNS:
        params.extend(None if v is None else str(v) for v in values)
        return f'{COLUMNS[key]} COLLATE "C" {neg}IN ({", ".join([ph] * len(values))})'
    # x IN (a, b) is (x = a OR x = b) in three-valued logic, and NOT IN its negation.
    terms = [_pg_compare(key, "=", v, params, ph) for v in values]
    return f"{neg}({' OR '.join(terms)})"


def _pg_is_null(key: str, null: bool, params: list[Any], ph: str) -> str:
    """Missing or JSON null (``null``), or present and not null."""
    x = _pg_x(key, params, ph)
    return f"(coalesce(jsonb_typeof({x}), 'null') {'=' if null else '<>'} 'null')"


def _pg_contains(key: str, value: Any, params: list[Any], ph: str) -> str:
    """An array holding ``value``, or a scalar whose text holds ``str(value)``."""
    x = _pg_x(key, params, ph)
    sql = f"(CASE jsonb_typeof({x}) WHEN 'array' THEN "
    if value is None:
        sql += "FALSE"
    elif isinstance(value, str):
        sql += f"{_pg_x(key, params, ph)} @> {ph}::jsonb"
        params.append(json.dumps([value], ensure_ascii=False))
    else:  # a number equals a number or a boolean (as 1/0) element
        sql += (
            f"EXISTS (SELECT 1 FROM jsonb_array_elements({_pg_x(key, params, ph)}) AS e(v) "
            f"WHERE {_pg_json_compare(lambda: 'e.v', '=', value, params, ph)})"
        )
    bool_text = f"CASE WHEN ({_pg_x(key, params, ph)})::boolean THEN '1' ELSE '0' END"
    sql += f" WHEN 'boolean' THEN strpos({bool_text}, {ph}) > 0"
    params.append(str(value))
    sql += f" ELSE strpos({_pg_x(key, params, ph)} #>> '{{}}', {ph}) > 0 END)"
    params.append(str(value))
    return sql


_TEXT_OPS = [
    (">=", "$gte"),
    ("<=", "$lte"),
    ("!=", "$ne"),
    ("=", "$eq"),
    (">", "$gt"),
    ("<", "$lt"),
    ("~", "$contains"),
]
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_CLAUSE = re.compile(r"^\s*([A-Za-z_][\w.\-]*)\s*(>=|<=|!=|=|>|<|~)\s*(.+?)\s*$")


def _literal(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if isinstance(value, _SCALAR) else text


def _check_bare_range(key: str, sym: str, op: str, raw: str) -> None:
    """``year>=abc``: a range on an unquoted word that is neither a number nor an ISO date."""
    if op not in _RANGE or key in COLUMNS or raw[:1] in "'\"":
        return
    value = _literal(raw)
    if isinstance(value, str) and not is_iso_date(value):
        raise FilterError(
            f"{key}{sym}{raw}: {sym} compares numbers (or ISO dates) and {raw!r} is not a "
            f"number; quote it ({key}{sym}'{raw}') to compare text"
        )


def parse_where(text: str | dict | None) -> dict[str, Any] | None:
    """A filter from JSON (``{...}``), the short text form, or an already structured dict."""
    if text is None or isinstance(text, dict):
        return text
    text = text.strip()
    if not text:
        return None
    if text.startswith("{"):
        try:
            where = json.loads(text)
        except ValueError as exc:
            raise FilterError(f"filter is not valid JSON: {exc}") from exc
        if not isinstance(where, dict):
            raise FilterError("a JSON filter must be an object")
        return where
    clauses = []
    for clause in _AND.split(text):
        m = _CLAUSE.match(clause)
        if not m or m.group(3)[:1] in "<>=!~":
            raise FilterError(
                f"cannot read filter clause {clause!r}: write key=value, key>=n, key~text, "
                "key=a|b, joined by 'and', or a JSON object"
            )
        key, sym, raw = m.groups()
        op = dict(_TEXT_OPS)[sym]
        _check_bare_range(key, sym, op, raw)
        if op == "$eq" and "|" in raw:
            clauses.append({key: {"$in": [_literal(v) for v in raw.split("|")]}})
        else:
            clauses.append({key: {op: _literal(raw)}})
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}
