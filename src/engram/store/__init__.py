"""Stores: the one source of truth (SQLite embedded; server databases behind the same protocol)."""

from __future__ import annotations

from pathlib import Path

from engram.store.base import Store

SERVER_SCHEMES = ("postgresql://", "postgres://")


def open_store(location: str | Path, *, create: bool = True) -> Store:
    """A store for a file path (SQLite) or a ``postgresql://`` URL. With ``create=False`` a
    location holding no store raises ``StoreNotFoundError`` instead of creating one."""
    if str(location).startswith(SERVER_SCHEMES):
        from engram.store.postgres import PostgresStore

        return PostgresStore(str(location), create=create)
    from engram.store.sqlite import SQLiteStore

    return SQLiteStore(location, create=create)
