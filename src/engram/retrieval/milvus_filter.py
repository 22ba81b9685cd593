"""Engram's ``where`` filters as Milvus boolean expressions, selecting the rows SQL selects.

SQL (``engram.store.filters``) gives a filter three values per row: TRUE, FALSE or NULL (a
missing key), and ``$not`` / ``$ne`` / ``$nin`` keep NULL out. Milvus expressions are two-valued,
so every condition compiles to a pair ``(T, F)``: the rows where SQL says TRUE and the rows where
it says FALSE. ``$not`` swaps the pair; ``$and`` is ``(all T, any F)``; ``$or`` is
``(any T, all F)``. The search uses ``T``.

SQLite compares JSON values by their SQL types (numbers before text, booleans as 1/0, arrays
as their JSON text), which a Milvus JSON comparison does not. So each chunk's metadata is
written to Milvus in typed views (``typed_metadata``), one JSON field each, keyed by the
filter's dotted path:

- ``mt``: the value's type: ``number``, ``bool``, ``text``, ``date`` (text shaped like an ISO
  date), ``array``, ``object`` or ``null`` (a JSON null: NULL in SQL, but a typed range on
  it is FALSE where a missing key gives NULL); a missing key is absent;
- ``mv``: the value SQLite compares: numbers, booleans as 1/0, text, arrays and objects as JSON;
- ``mx``: the text SQLite searches with ``$contains`` (numbers written as SQLite writes them);
- ``ma_n`` / ``ma_s``: an array's number (and boolean) / text elements, for ``$contains``.

A condition this module cannot express exactly raises ``Unsupported``; the caller then
restricts the search to the chunk ids SQL selects (still inside both retrievers).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from typing import Any

from engram.store.filters import COLUMNS, TIME_COLUMNS, _value, compile_where, range_kind

TRUE, FALSE = "true", "false"  # folded away by the helpers below; never joined into text
_OPS = {"$eq": "==", "$ne": "!=", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_RANGE = ("$gt", "$gte", "$lt", "$lte")
_SEGMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
_DATE_SHAPE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}")  # SQLite: GLOB '[0-9]x4-..-..*'
_TEXT_FIELDS = {"doc_id": "doc_key", "source": "source", "title": "title", "namespace": "namespace"}
Pair = tuple[str, str]


class Unsupported(Exception):
    """A filter condition with no exact Milvus expression."""


# -- write side: typed views of one document's metadata --------------------------------------
def sqlite_text(value: int | float) -> str:
    """A number as SQLite turns it into text (``instr``, TEXT affinity): ``2.5``, ``1.0``."""
    if isinstance(value, bool | int):
        return str(int(value))
    text = f"{value:.15g}"
    if "e" in text and "." not in text.split("e")[0]:
        head, _, tail = text.partition("e")
        return f"{head}.0e{tail}"
    return text if ("." in text or "e" in text or "n" in text) else text + ".0"


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _paths(obj: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted path, value)`` for every key a filter can name (nested objects too)."""
    for key, value in obj.items():
        if not isinstance(key, str) or not _SEGMENT.match(key):
            continue  # a filter key cannot name it: leave it out
        path = prefix + key
        yield path, value
        if isinstance(value, dict):
            yield from _paths(value, path + ".")


def typed_metadata(metadata: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``mt mv mx ma_n ma_s`` views of one document's metadata (see the module doc)."""
    out: dict[str, dict[str, Any]] = {k: {} for k in ("mt", "mv", "mx", "ma_n", "ma_s")}
    for path, value in _paths(metadata if isinstance(metadata, dict) else {}):
        if value is None:
            out["mt"][path] = "null"
            continue
        compared: int | float | str
        if isinstance(value, bool):
            kind, compared, text = "bool", int(value), str(int(value))
        elif isinstance(value, int | float):
            if isinstance(value, float) and not math.isfinite(value):
                continue
            kind, compared, text = "number", value, sqlite_text(value)
        elif isinstance(value, str):
            kind = "date" if _DATE_SHAPE.match(value) else "text"
            compared = text = value
        else:
            kind = "array" if isinstance(value, list) else "object"
            compared = text = _json_text(value)
        out["mt"][path], out["mv"][path], out["mx"][path] = kind, compared, text
        if isinstance(value, list):
            out["ma_n"][path] = [int(v) if isinstance(v, bool) else v for v in value if _num(v)]
            out["ma_s"][path] = [
                v if isinstance(v, str) else _json_text(v) for v in value if _textual(v)
            ]
    return out


def _num(v: Any) -> bool:
    return isinstance(v, bool | int) or (isinstance(v, float) and math.isfinite(v))


def _textual(v: Any) -> bool:
    return isinstance(v, str | list | dict)


# -- expression text with constant folding ---------------------------------------------------
def and_(*parts: str) -> str:
    parts = tuple(p for p in parts if p != TRUE)
    if FALSE in parts:
        return FALSE
    if not parts:
        return TRUE
    return parts[0] if len(parts) == 1 else "(" + " and ".join(parts) + ")"


def or_(*parts: str) -> str:
    parts = tuple(p for p in parts if p != FALSE)
    if TRUE in parts:
        return TRUE
    if not parts:
        return FALSE
    return parts[0] if len(parts) == 1 else "(" + " or ".join(parts) + ")"


def not_(part: str) -> str:
    return {TRUE: FALSE, FALSE: TRUE}.get(part, f"not ({part})")


def literal(value: Any) -> str:
    """A Milvus literal: a double-quoted string or a plain number."""
    if isinstance(value, str):
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        escaped = escaped.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
        return f'"{escaped}"'
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unsupported(f"literal {value!r}")
    text = repr(value)
    if not math.isfinite(value) or "e" in text.lower() or abs(value) >= 2**63:
        raise Unsupported(f"number {value!r}")
    return text


def _like(field: str, needle: str) -> str:
    if any(ch in needle for ch in "%_\\"):
        raise Unsupported("LIKE has no escape for % _ \\")
    return f"{field} like {literal('%' + needle + '%')}"


# -- read side: a filter as a (T, F) pair -----------------------------------------------------
def compile_filter(where: dict[str, Any] | None) -> str:
    """The Milvus expression of the rows ``where`` selects; ``TRUE`` / ``FALSE`` when constant.
    Raises ``FilterError`` for a bad filter (as SQL does) and ``Unsupported`` for one that has
    no exact expression."""
    compile_where(where)  # the same checks and errors as the SQL backends
    if not where:
        return TRUE
    return _obj(where)[0]


def _obj(obj: dict[str, Any]) -> Pair:
    pairs: list[Pair] = []
    for key, cond in obj.items():
        if key in ("$and", "$or"):
            subs = [_obj(c) for c in cond]
            if key == "$and":
                pairs.append((and_(*(t for t, _ in subs)), or_(*(f for _, f in subs))))
            else:
                pairs.append((or_(*(t for t, _ in subs)), and_(*(f for _, f in subs))))
        elif key == "$not":
            t, f = _obj(cond)
            pairs.append((f, t))
        else:
            pairs.append(_field(key, cond))
    return and_(*(t for t, _ in pairs)), or_(*(f for _, f in pairs))


def _field(key: str, cond: Any) -> Pair:
    if not isinstance(cond, dict):
        cond = {"$eq": cond}
    if key == "updated_at":
        raise Unsupported("updated_at is not held in Milvus")
    leaf = _column if key in COLUMNS else _metadata
    pairs = [leaf(key, op, value) for op, value in cond.items()]
    return and_(*(t for t, _ in pairs)), or_(*(f for _, f in pairs))


def _any_of(values: list[Any], equal: Callable[[Any], Pair], present: str) -> Pair:
    """``x IN (values)``: TRUE where one is equal; FALSE where present, none equal, no NULL."""
    t = or_(*(equal(v)[0] for v in values if v is not None))
    f = and_(present, not_(t)) if None not in values else FALSE
    return t, f


def _column(key: str, op: str, value: Any) -> Pair:
    """A built-in column (never NULL): TEXT compared as text, times as numbers."""
    if op == "$exists":
        return (TRUE, FALSE) if value else (FALSE, TRUE)
    if key in TIME_COLUMNS:
        field = key

        def form(v: Any) -> str:
            return literal(float(v))
    else:
        field = _TEXT_FIELDS[key]

        def form(v: Any) -> str:
            return literal(v if isinstance(v, str) else sqlite_text(v))

    if op == "$contains":
        if key in TIME_COLUMNS:
            raise Unsupported("$contains on a time")
        t = _like(field, str(_value(key, value)))
        return t, not_(t)
    if op in ("$in", "$nin"):
        values = [_value(key, v) for v in value]
        t, f = _any_of(values, lambda v: (f"{field} == {form(v)}", ""), TRUE)
        return (t, f) if op == "$in" else (f, t)
    v = _value(key, value)
    if v is None:  # IS NULL on a NOT NULL column; a range against NULL is NULL
        if op in ("$eq", "$ne"):
            return (FALSE, TRUE) if op == "$eq" else (TRUE, FALSE)
        return FALSE, FALSE
    t = f"{field} {_OPS[op]} {form(v)}"
    return t, not_(t)


def _mt(path: str, *kinds: str) -> str:
    return or_(*(f"mt[{literal(path)}] == {literal(k)}" for k in kinds))


def _present(path: str) -> str:
    """The key holds a value other than JSON null (SQL: IS NOT NULL)."""
    return f'(exists mt[{literal(path)}] and mt[{literal(path)}] != "null")'


def _equal(path: str, v: Any) -> Pair:
    """``json_extract(...) = v`` (v not None): numbers with numbers and booleans, text with
    text and JSON text."""
    kinds = ("number", "bool") if not isinstance(v, str) else ("text", "date", "array", "object")
    t = and_(_mt(path, *kinds), f"mv[{literal(path)}] == {literal(v)}")
    return t, and_(_present(path), not_(t))


def _metadata(key: str, op: str, value: Any) -> Pair:
    p, present = key, _present(key)
    if op == "$exists":
        return (present, not_(present)) if value else (not_(present), present)
    if op == "$contains":
        return _contains(p, _value(key, value))
    if op in ("$in", "$nin"):
        t, f = _any_of([_value(key, v) for v in value], lambda v: _equal(p, v), present)
        return (t, f) if op == "$in" else (f, t)
    if value is None:
        if op in ("$eq", "$ne"):
            return (not_(present), present) if op == "$eq" else (present, not_(present))
        return FALSE, FALSE
    if op in _RANGE:
        kind = range_kind(key, value)
        kinds = {"number": ("number",), "date": ("date",), "text": ("text", "date")}[kind]
        t = and_(_mt(p, *kinds), f"mv[{literal(p)}] {_OPS[op]} {literal(value)}")
        return t, and_(f"exists mt[{literal(p)}]", not_(t))  # JSON null too: FALSE
    t, f = _equal(p, _value(key, value))
    return (t, f) if op == "$eq" else (f, t)


def _contains(path: str, v: Any) -> Pair:
    """An array holding ``v``, or a scalar whose SQLite text holds ``str(v)``."""
    if v is None:
        in_array = FALSE
    elif isinstance(v, str):
        in_array = f"json_contains(ma_s[{literal(path)}], {literal(v)})"
    else:
        in_array = f"json_contains(ma_n[{literal(path)}], {literal(v)})"
    is_array = _mt(path, "array")
    scalar = and_(_present(path), not_(is_array), _like(f"mx[{literal(path)}]", str(v)))
    t = or_(and_(is_array, in_array), scalar)
    return t, and_(_present(path), not_(t))
