"""Helpers for tests that run against PostgreSQL (``ENGRAM_TEST_PG_URL``) as well as SQLite.

``bash scripts/pg`` installs PostgreSQL + pgvector and prints the URL to export. Without it the
PostgreSQL tests skip, except under CI (``CI`` set and not false), where they fail: CI must
never pass by skipping the server backend.
"""

from __future__ import annotations

import hashlib
import os
import re
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from urllib.parse import quote

import numpy as np
import pytest

BACKENDS = ("sqlite", "postgres")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def pg_url() -> str:
    """The test server's URL; skips the test (fails it under CI) when there is none."""
    url = os.environ.get("ENGRAM_TEST_PG_URL", "").strip()
    if not url:
        message = (
            'ENGRAM_TEST_PG_URL is not set: run `eval "$(bash scripts/pg)"` to install and '
            "start PostgreSQL + pgvector"
        )
        if in_ci():
            pytest.fail("CI is set, so PostgreSQL tests must run: " + message)
        pytest.skip(message)
    return url


def with_search_path(url: str, schema: str) -> str:
    """``url`` whose connections use ``schema`` first (pgvector stays reachable in public)."""
    option = quote(f"-csearch_path={schema},public", safe="")
    return f"{url}{'&' if '?' in url else '?'}options={option}"


@contextmanager
def fresh_schema(label: str = "t") -> Iterator[str]:
    """A URL on a new, empty schema of the test database; the schema is dropped afterwards."""
    import psycopg
    from psycopg import sql

    url = pg_url()
    name = f"engram_{re.sub(r'[^a-z0-9_]', '_', label.lower())[:20]}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
    try:
        yield with_search_path(url, name)
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


# Where the "milvus" setup's stores search: store location -> retrieval URL (a collection).
RETRIEVAL: dict[str, str] = {}


@contextmanager
def store_location(backend: str, tmp_path, label: str = "t") -> Iterator[str]:
    """Where to open a fresh store: a SQLite file in ``tmp_path`` or a fresh PG schema; for
    ``milvus``, a SQLite file searched through a fresh Milvus collection (``retrieval_options``)."""
    if backend == "sqlite":
        yield str(tmp_path / f"{label}-{uuid.uuid4().hex[:6]}.db")
    elif backend == "postgres":
        with fresh_schema(label) as url:
            yield url
    elif backend == "milvus":
        from milvus import fresh_collection

        path = str(tmp_path / f"{label}-{uuid.uuid4().hex[:6]}.db")
        with fresh_collection(label) as url:
            RETRIEVAL[path] = url
            try:
                yield path
            finally:
                RETRIEVAL.pop(path, None)
    else:  # pragma: no cover
        raise ValueError(backend)


def retrieval_options(location: str) -> dict:
    """``Memory`` options for a store made by ``store_location``: the Milvus collection of the
    ``milvus`` setup, with every filter compiled to a Milvus expression (``exact_filter_max``
    0: no primary-key lists), so the suite checks the compiled filters."""
    if location in RETRIEVAL:
        return {"retrieval": RETRIEVAL[location], "exact_filter_max": 0}
    return {}


class CachingEmbedder:
    """Wraps a real embedder and remembers its vectors, so fresh stores of the same corpus
    cost no model time. Same ``model_id``, same vectors."""

    def __init__(self, inner):
        self.inner = inner
        self.model_id, self.dim, self.max_tokens = inner.model_id, inner.dim, inner.max_tokens
        self.cache: dict[str, np.ndarray] = {}

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        todo = [t for t in dict.fromkeys(texts) if t not in self.cache]
        if todo:
            self.cache.update(zip(todo, self.inner.embed(todo), strict=True))
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.vstack([self.cache[t] for t in texts]).astype(np.float32)


class HashEmbedder:
    """A fast deterministic bag-of-words embedder (hashed words, L2-normalised), for tests
    where many processes write and the model's quality does not matter."""

    model_id = "test-hash-64"
    dim = 64
    max_tokens = 256

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                h = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "big")
                out[row, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)
