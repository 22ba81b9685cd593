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
"""

from __future__ import annotations

import json
import re
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


def compile_where(where: dict[str, Any] | None, placeholder: str = "?") -> tuple[str, list[Any]]:
    """Compile a filter to ``(sql, params)`` over ``documents d``; ``("1=1", [])`` for none."""
    if not where:
        return "1=1", []
    if not isinstance(where, dict):
        raise FilterError(
            f"a filter must be an object of field conditions, got {type(where).__name__}"
        )
    params: list[Any] = []
    sql = _compile_obj(where, params, placeholder)
    return sql, params


def _compile_obj(obj: dict[str, Any], params: list[Any], ph: str) -> str:
    if not obj:
        return "1=1"
    parts = []
    for key, cond in obj.items():
        if key in ("$and", "$or"):
            if not isinstance(cond, list) or not cond or not all(isinstance(c, dict) for c in cond):
                raise FilterError(f"{key} takes a non-empty list of filter objects")
            joiner = " AND " if key == "$and" else " OR "
            parts.append("(" + joiner.join(_compile_obj(c, params, ph) for c in cond) + ")")
        elif key == "$not":
            if not isinstance(cond, dict):
                raise FilterError("$not takes a filter object")
            parts.append(f"NOT ({_compile_obj(cond, params, ph)})")
        elif key.startswith("$"):
            raise FilterError(f"unknown operator {key!r} at the top of a filter")
        else:
            parts.append(_compile_field(key, cond, params, ph))
    return "(" + " AND ".join(parts) + ")"


def _field_sql(key: str, params: list[Any], ph: str) -> str:
    if key in COLUMNS:
        return COLUMNS[key]
    if not _KEY.match(key) or len(key) > 200:
        raise FilterError(
            f"invalid metadata key {key!r}: use letters, digits, '_' and '-', dots for nesting"
        )
    params.append(_json_path(key))
    return f"json_extract(d.metadata, {ph})"


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


def _compile_field(key: str, cond: Any, params: list[Any], ph: str) -> str:
    if not isinstance(cond, dict):
        cond = {"$eq": cond}
    if not cond:
        raise FilterError(f"empty condition for {key!r}")
    parts = []
    for op, value in cond.items():
        if op in _COMPARE:
            if value is None and op in ("$eq", "$ne"):
                col = _field_sql(key, params, ph)
                parts.append(f"{col} IS {'NOT ' if op == '$ne' else ''}NULL")
                continue
            col = _field_sql(key, params, ph)
            params.append(_value(key, value))
            parts.append(f"{col} {_COMPARE[op]} {ph}")
        elif op in ("$in", "$nin"):
            if not isinstance(value, list | tuple) or not value:
                raise FilterError(f"{op} for {key!r} takes a non-empty list")
            col = _field_sql(key, params, ph)
            params.extend(_value(key, v) for v in value)
            marks = ", ".join([ph] * len(value))
            parts.append(f"{col} {'NOT ' if op == '$nin' else ''}IN ({marks})")
        elif op == "$contains":
            parts.append(_contains(key, value, params, ph))
        elif op == "$exists":
            col = _field_sql(key, params, ph)
            parts.append(f"{col} IS {'NOT ' if value else ''}NULL")
        else:
            raise FilterError(f"unknown operator {op!r} for {key!r}")
    return "(" + " AND ".join(parts) + ")"


def _contains(key: str, value: Any, params: list[Any], ph: str) -> str:
    value = _value(key, value)
    if key in COLUMNS:
        params.append(str(value))
        return f"instr({COLUMNS[key]}, {ph}) > 0"
    if not _KEY.match(key):
        raise FilterError(f"invalid metadata key {key!r}")
    path = _json_path(key)
    params.extend([path, path, value, path, str(value)])
    return (
        f"(CASE json_type(d.metadata, {ph}) WHEN 'array' THEN "
        f"EXISTS (SELECT 1 FROM json_each(d.metadata, {ph}) WHERE json_each.value = {ph}) "
        f"ELSE instr(json_extract(d.metadata, {ph}), {ph}) > 0 END)"
    )


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
        if op == "$eq" and "|" in raw:
            clauses.append({key: {"$in": [_literal(v) for v in raw.split("|")]}})
        else:
            clauses.append({key: {op: _literal(raw)}})
    return clauses[0] if len(clauses) == 1 else {"$and": clauses}
