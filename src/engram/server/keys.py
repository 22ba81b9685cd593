"""API keys for the HTTP server: random secrets, stored only as salted SHA-256 hashes.

A key looks like ``egk_<id>_<secret>``. ``id`` is public (it names the key in ``engram keys
list`` and ``revoke``); ``secret`` is 32 random bytes. The table keeps ``sha256(salt + secret)``
with a per-key random salt, never the plaintext. Keys hold a scope (``read`` < ``write`` <
``admin``) and the namespaces they reach: exact names, ``*`` for all, or a prefix ending in
``*`` (``agent:*``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engram.errors import EngramError
from engram.store import open_store

SCOPES = ("read", "write", "admin")
PREFIX = "egk_"
_KEY = re.compile(r"^egk_([0-9a-f]{12})_([A-Za-z0-9_\-]{20,100})$")
_PATTERN = re.compile(r"^(\*|[A-Za-z0-9][A-Za-z0-9_.:@\-]{0,127}\*?)$")
_TOUCH_EVERY = 60.0  # seconds between last_used_at writes for one key


def _hash(salt: str, secret: str) -> str:
    return hashlib.sha256(bytes.fromhex(salt) + secret.encode("ascii")).hexdigest()


def check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise EngramError(f"unknown scope {scope!r}; use one of {', '.join(SCOPES)}")
    return scope


def check_pattern(pattern: str) -> str:
    if not isinstance(pattern, str) or not _PATTERN.match(pattern):
        raise EngramError(
            f"invalid key namespace {pattern!r}: a namespace name, '*' for all, "
            "or a prefix ending in '*' (agent:*)"
        )
    return pattern


@dataclass
class ApiKey:
    """A stored key (without its secret): what it may do and where."""

    id: str
    scope: str
    namespaces: list[str]
    name: str = ""
    created_at: float = 0.0
    last_used_at: float | None = None
    revoked_at: float | None = None
    _touched: float = field(default=0.0, repr=False, compare=False)

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def allows(self, scope: str) -> bool:
        """Whether this key's scope covers ``scope`` (read < write < admin)."""
        return SCOPES.index(self.scope) >= SCOPES.index(scope)

    def reaches(self, namespace: str) -> bool:
        """Whether ``namespace`` is among this key's namespaces (``*`` and prefixes match)."""
        for pattern in self.namespaces:
            if pattern == "*" or pattern == namespace:
                return True
            if pattern.endswith("*") and namespace.startswith(pattern[:-1]):
                return True
        return False

    @property
    def everywhere(self) -> bool:
        return "*" in self.namespaces

    def default_namespace(self) -> str | None:
        """The namespace a request that names none acts on: the key's only namespace (a key
        made for one exact name), else ``default`` if the key reaches it, else None."""
        if len(self.namespaces) == 1 and not self.namespaces[0].endswith("*"):
            return self.namespaces[0]
        return "default" if self.reaches("default") else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "scope": self.scope,
            "namespaces": self.namespaces,
            "created_at": self.created_at,
            "last_used_at": self.last_used_at,
            "revoked_at": self.revoked_at,
        }


class KeyStore:
    """API keys in the store (table ``api_keys``), hashed with a per-key salt.

    ``store`` is a location (a SQLite path or a ``postgresql://`` URL, opened as an Engram
    store) or an open store (``SQLiteStore`` or ``PostgresStore``). Thread-safe.
    """

    def __init__(self, store: Any):
        self._owned = isinstance(store, str | Path)
        self.store = open_store(store) if self._owned else store
        self._lock = threading.RLock()  # the api_keys table comes from migration 0002
        self._last_touch: dict[str, float] = {}

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple]:
        """Run a read (``?`` placeholders, in either store); its rows. (PostgreSQL reads need
        no lock: each has a pooled connection.)"""
        if self.store.kind != "sqlite":
            return self.store.read(sql, params)
        with self._lock:
            return self.store.read(sql, params)

    def _write(self, sql: str, params: tuple[Any, ...]) -> int:
        """Run a write in a transaction; the number of rows it changed."""
        with self._lock:
            return self.store.write(sql, params)

    def close(self) -> None:
        if self._owned:
            self.store.close()

    def __enter__(self) -> KeyStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- management -----------------------------------------------------------------------
    def create(self, namespaces: list[str], scope: str, name: str = "") -> tuple[str, str]:
        """Create a key; returns ``(key_id, plaintext)``. The plaintext is not kept anywhere."""
        check_scope(scope)
        patterns = list(dict.fromkeys(check_pattern(p) for p in namespaces or []))
        if not patterns:
            raise EngramError("a key needs at least one namespace (or '*' for all)")
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_hex(16)
        self._write(
            "INSERT INTO api_keys(id, name, salt, hash, scope, namespaces, created_at) "
            "VALUES (?,?,?,?,?,?,?)",
            (key_id, name, salt, _hash(salt, secret), scope, json.dumps(patterns), time.time()),
        )
        return key_id, f"{PREFIX}{key_id}_{secret}"

    def list(self, include_revoked: bool = True) -> list[ApiKey]:
        sql = (
            "SELECT id, name, scope, namespaces, created_at, last_used_at, revoked_at FROM api_keys"
        )
        if not include_revoked:
            sql += " WHERE revoked_at IS NULL"
        rows = self._rows(sql + " ORDER BY created_at, id")
        return [
            ApiKey(
                id=r[0],
                name=r[1],
                scope=r[2],
                namespaces=json.loads(r[3]),
                created_at=r[4],
                last_used_at=r[5],
                revoked_at=r[6],
            )
            for r in rows
        ]

    def revoke(self, key_id: str) -> bool:
        """Revoke a key by id (or by its plaintext); False when no active key has that id."""
        m = _KEY.match(key_id)
        key_id = m.group(1) if m else key_id
        changed = self._write(
            "UPDATE api_keys SET revoked_at=? WHERE id=? AND revoked_at IS NULL",
            (time.time(), key_id),
        )
        return changed > 0

    def count(self) -> int:
        """Active (unrevoked) keys."""
        return int(self._rows("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL")[0][0])

    # -- verification ---------------------------------------------------------------------
    def verify(self, plaintext: str) -> ApiKey | None:
        """The active key whose plaintext this is, else None (constant-time hash compare)."""
        m = _KEY.match(plaintext or "")
        if not m:
            return None
        key_id, secret = m.groups()
        rows = self._rows(
            "SELECT id, name, salt, hash, scope, namespaces, created_at, last_used_at, "
            "revoked_at FROM api_keys WHERE id=?",
            (key_id,),
        )
        row = rows[0] if rows else None
        if row is None or row[8] is not None:
            return None
        if not hmac.compare_digest(_hash(row[2], secret), row[3]):
            return None
        key = ApiKey(
            id=row[0],
            name=row[1],
            scope=row[4],
            namespaces=json.loads(row[5]),
            created_at=row[6],
            last_used_at=row[7],
        )
        self._touch(key_id)
        return key

    def _touch(self, key_id: str) -> None:
        now = time.time()
        if now - self._last_touch.get(key_id, 0.0) < _TOUCH_EVERY:
            return
        self._last_touch[key_id] = now
        self._write("UPDATE api_keys SET last_used_at=? WHERE id=?", (now, key_id))
