"""Retrieval backends behind one protocol, chosen by a URL.

``open_retrieval(store, config, url)`` returns the ``Retrieval`` a ``Memory`` searches
through. ``url`` is ``None`` for the store's own default (``local`` for SQLite, ``postgres``
for PostgreSQL), or a backend URL whose scheme names the backend:

- ``local`` (or ``local:DIR``): derived keyword and vector index files, by default in
  ``<store>.index/`` beside a SQLite store (engram.retrieval.local);
- ``postgres``: full text and pgvector inside the PostgreSQL store's own database
  (engram.retrieval.postgres);
- ``milvus://HOST:PORT/NAME`` / ``milvus-lite:PATH``: BM25 and HNSW in a Milvus collection
  (a server or cluster, or embedded Milvus Lite), fed from the store's changelog
  (engram.retrieval.milvus).

A third backend plugs in as one module implementing ``Retrieval`` (engram.retrieval.base)
and one entry in ``BACKENDS``: ``scheme -> opener(store, config, url)``, imported lazily so
its client library is needed only when it is used.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from engram.config import Config
from engram.errors import EngramError
from engram.retrieval.base import EVERYTHING, NOTHING, Candidates, Retrieval, Scope
from engram.store.base import Store

__all__ = [
    "BACKENDS",
    "EVERYTHING",
    "NOTHING",
    "Candidates",
    "Retrieval",
    "Scope",
    "chosen_url",
    "default_retrieval",
    "open_retrieval",
    "scheme_of",
]

Opener = Callable[[Store, Config, str], Retrieval]


def _open_local(store: Store, config: Config, url: str) -> Retrieval:
    from engram.retrieval.local import LocalRetrieval

    return LocalRetrieval(store, config, directory=url.partition(":")[2] or None)


def _open_postgres(store: Store, config: Config, url: str) -> Retrieval:
    from engram.retrieval.postgres import PostgresRetrieval

    return PostgresRetrieval(store, config)


def _open_milvus(store: Store, config: Config, url: str) -> Retrieval:
    from engram.retrieval.milvus import MilvusRetrieval

    return MilvusRetrieval(store, config, url)


BACKENDS: dict[str, Opener] = {
    "local": _open_local,
    "postgres": _open_postgres,
    "milvus": _open_milvus,  # milvus://HOST:PORT/NAME, a server or cluster
    "milvus+https": _open_milvus,  # the same over TLS
    "milvus-lite": _open_milvus,  # milvus-lite:PATH, embedded
}


def scheme_of(url: str) -> str:
    """The backend a retrieval URL names: ``milvus://h:19530/x`` -> ``milvus``,
    ``milvus-lite:kb.milvus`` -> ``milvus-lite``, ``local`` -> ``local``."""
    return url.split(":", 1)[0].strip().lower()


def default_retrieval(store: Store) -> str:
    """The store's own backend: in the database for PostgreSQL, index files for SQLite."""
    return "postgres" if store.kind == "postgresql" else "local"


def chosen_url(url: str | None) -> str | None:
    """``url``, else ``$ENGRAM_RETRIEVAL``; ``local`` (or nothing) means the store's own default
    (index files beside a SQLite store, search inside the database for PostgreSQL): None."""
    url = url or os.environ.get("ENGRAM_RETRIEVAL") or None
    return None if url and url.strip().lower() == "local" else url


def open_retrieval(store: Store, config: Config, url: str | None = None) -> Retrieval:
    """The retrieval backend ``url`` names for ``store`` (None: the store's default)."""
    url = url or default_retrieval(store)
    opener = BACKENDS.get(scheme_of(url))
    if opener is None:
        raise EngramError(
            f"unknown retrieval {url!r}; use one of: {', '.join(sorted(BACKENDS))} "
            "(a URL whose scheme names the backend)"
        )
    return opener(store, config, url)
