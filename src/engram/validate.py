"""Checks on what callers hand the facade: namespace names and query text."""

from __future__ import annotations

import re
from typing import Any

from engram.errors import NamespaceError, QueryError

_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@\-]{0,127}$")


def check_namespace(name: str) -> str:
    if not isinstance(name, str) or not _NAMESPACE.match(name):
        raise NamespaceError(
            f"invalid namespace {name!r}: 1-128 characters, letters, digits and _ . : @ -, "
            "starting with a letter or digit"
        )
    return name


def has_words(text: Any) -> bool:
    """Whether ``text`` holds a letter or digit: something a query can search for."""
    return isinstance(text, str) and any(ch.isalnum() for ch in text)


def check_query(query: Any) -> str:
    """``query`` itself, or ``QueryError`` when it is empty or only punctuation."""
    if not has_words(query):
        raise QueryError(
            f"empty query {query!r}: a query needs at least one letter or digit"
            if isinstance(query, str)
            else f"a query must be text, got {type(query).__name__}"
        )
    return query
