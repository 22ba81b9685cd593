"""PostgreSQL store: the same protocol as the SQLite store, with keyword and vector search
inside the database (``tsvector`` + GIN, pgvector HNSW), for many processes and machines.

``PostgresStore(url)`` opens a ``postgresql://`` URL with a connection pool and applies the
numbered migrations in ``store/migrations_pg`` (tracked in ``schema_migrations``). Every
document is written in one transaction, like SQLite. ``retrieval(config)`` returns the object
``Memory`` searches through (see ``engram.index.local.LocalIndexes`` for the embedded one):
the database's indexes are always current, so there is nothing to sync, save or catch up.
Needs ``psycopg[binary]``, ``psycopg-pool`` and ``pgvector`` (Python), and the ``vector``
extension in the database (``CREATE EXTENSION vector``; Engram creates it when allowed).
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import Any, TypeVar

import numpy as np

from engram.errors import (
    EmbeddingMismatchError,
    EngramError,
    IngestError,
    StoreNotFoundError,
)
from engram.store.base import ChunkRecord, WriteResult
from engram.store.filters import compile_where, metadata_path
from engram.types import DEFAULT_NAMESPACE, Document

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg.types import TypeInfo
    from psycopg_pool import ConnectionPool, PoolTimeout
except ImportError as exc:  # pragma: no cover - depends on the installation
    raise EngramError(
        "the PostgreSQL store needs psycopg: pip install 'engram-store[postgres]'"
    ) from exc

log = logging.getLogger(__name__)
T = TypeVar("T")

_MIGRATION_LOCK = "engram:migrate"  # advisory lock key (hashed by the database)
_HNSW_MAX_DIM = 2000  # pgvector indexes `vector` columns up to 2,000 dimensions
_TERM = re.compile(r"[^\W_]+")  # letters and digits: never tsquery syntax
_EXACT_SCOPE_MAX = 2000  # filtered vector searches over at most this many chunks are exact
_MAX_TERMS = 256
_MAX_TERM_CHARS = 256
# ts_rank normalisation 1: divide by 1 + log(document length), a mild length penalty like
# BM25's b. ts_rank has no IDF, so keyword scores differ from the embedded BM25 index.
_RANK_NORMALIZATION = 1
_RETRY = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)


def migrations() -> list[tuple[int, str, str]]:
    """``(version, name, sql)`` for every file in ``store/migrations_pg``, in order."""
    out = []
    for entry in resources.files("engram.store").joinpath("migrations_pg").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            out.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(out)


def redact(url: str) -> str:
    """The URL without its password (for messages and ``stats``)."""
    url = re.sub(r"^([a-z]+://[^:/@]*):[^@/]*@", r"\1:***@", url)
    return re.sub(r"(?i)([?&]password=)[^&]*", r"\1***", url)


def query_terms(query: str) -> list[str]:
    """Distinct lowercase letter/digit runs of ``query``, safe to join into a tsquery."""
    seen: dict[str, None] = {}
    for term in _TERM.findall(query.lower()):
        if len(term) <= _MAX_TERM_CHARS:
            seen.setdefault(term, None)
        if len(seen) >= _MAX_TERMS:
            break
    return list(seen)


def _configure(conn: psycopg.Connection) -> None:
    """Per pooled connection: load pgvector's ``vector`` type as numpy arrays."""
    from pgvector.psycopg.vector import register_vector_info

    register_vector_info(conn, TypeInfo.fetch(conn, "vector"))
    conn.commit()


class PostgresStore:
    """The server store. Safe for many writers and readers across processes and machines."""

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 8,
        timeout: float = 60.0,
        migrate: bool = True,
        create: bool = True,
    ):
        self.url = url
        self.path = redact(url)
        self.lock = threading.RLock()  # parity with SQLiteStore; the pool is thread-safe
        self._dim: int | None = None
        self.pgvector_version: tuple[int, ...] = (0,)
        try:
            if not create:
                self._require_schema()
            if migrate:
                self.migrate()
            self.pool = ConnectionPool(
                url,
                min_size=min_size,
                max_size=max_size,
                timeout=timeout,
                configure=_configure,
                name="engram",
                open=True,
            )
            self.pool.wait(timeout=timeout)
        except psycopg.Error as exc:
            raise EngramError(f"{self.path}: cannot open the PostgreSQL store ({exc})") from exc
        except PoolTimeout as exc:
            self.close()
            raise EngramError(f"{self.path}: cannot connect to PostgreSQL ({exc})") from exc
        with self._conn() as conn:
            row = conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            ).fetchone()
        if row:
            self.pgvector_version = tuple(int(p) for p in re.findall(r"\d+", row[0])[:3])

    # -- plumbing -------------------------------------------------------------------------
    def close(self) -> None:
        pool = getattr(self, "pool", None)
        if pool is not None:
            pool.close()

    @contextmanager
    def _conn(self) -> Iterator[psycopg.Connection]:
        """A pooled connection; what it did is committed when the block ends."""
        with self.pool.connection() as conn:
            yield conn

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection]:
        """A transaction on a pooled connection, rolled back on any error."""
        with self.pool.connection() as conn, conn.transaction():
            yield conn

    def _retrying(self, work: Callable[[psycopg.Connection], T]) -> T:
        """Run ``work`` in a transaction, again after a deadlock or serialization failure."""
        for attempt in range(6):
            try:
                with self.transaction() as conn:
                    return work(conn)
            except _RETRY:
                if attempt == 5:
                    raise
                time.sleep(random.uniform(0.01, 0.05) * 2**attempt)
        raise AssertionError("unreachable")

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        with self._conn() as conn:
            return conn.execute(sql, params).fetchall()

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self._all(sql, params)
        return rows[0][0] if rows else None

    def schema_version(self) -> int:
        return int(self._one("SELECT coalesce(max(version), 0) FROM schema_migrations"))

    def _require_schema(self) -> None:
        """Raise ``StoreNotFoundError`` unless the database already holds an Engram schema."""
        with psycopg.connect(self.url, connect_timeout=10) as conn:
            row = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
        if row is None or row[0] is None:
            raise StoreNotFoundError(
                f"{self.path}: this database holds no Engram store "
                "(`engram add` or `engram init` creates one)"
            )

    def migrate(self) -> int:
        """Create the ``vector`` extension if needed and apply migrations forward."""
        with psycopg.connect(self.url, connect_timeout=10) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (_MIGRATION_LOCK,))
            if not conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
                try:
                    with conn.transaction():
                        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
                except (pg_errors.InsufficientPrivilege, pg_errors.FeatureNotSupported) as exc:
                    raise EngramError(
                        f"{self.path}: the pgvector extension is not enabled in this database "
                        f"and this role cannot enable it ({exc}); as a superuser run "
                        "CREATE EXTENSION vector"
                    ) from exc
                except pg_errors.UndefinedFile as exc:
                    raise EngramError(
                        f"{self.path}: pgvector is not installed on the server ({exc}); "
                        "see docs/postgres.md"
                    ) from exc
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                "name text NOT NULL, applied_at double precision NOT NULL)"
            )
            current = conn.execute(
                "SELECT coalesce(max(version), 0) FROM schema_migrations"
            ).fetchone()[0]
            known = migrations()
            if known and current > known[-1][0]:
                raise EngramError(
                    f"{self.path} has schema version {current}, newer than this Engram "
                    f"({known[-1][0]}): upgrade Engram"
                )
            for version, name, sql in known:
                if version > current:
                    conn.execute(sql)  # several statements, no parameters
                    conn.execute(
                        "INSERT INTO schema_migrations(version, name, applied_at) "
                        "VALUES (%s, %s, %s)",
                        (version, name, time.time()),
                    )
                    current = version
        return current

    def get_setting(self, key: str) -> str | None:
        return self._one("SELECT value FROM settings WHERE key = %s", (key,))

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO settings(key, value) VALUES (%s, %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- vector dimension -----------------------------------------------------------------
    def vector_dim(self) -> int | None:
        """The dimension of the ``vectors.embedding`` column (None until the first set_dim)."""
        if self._dim is None:
            with self._conn() as conn:
                self._dim = self._column_dim(conn)
        return self._dim

    @staticmethod
    def _column_dim(conn: psycopg.Connection) -> int | None:
        mod = conn.execute(
            "SELECT atttypmod FROM pg_attribute "
            "WHERE attrelid = 'vectors'::regclass AND attname = 'embedding'"
        ).fetchone()[0]
        return mod if mod and mod > 0 else None

    def set_dim(self, dim: int, *, m: int = 16, ef_construction: int = 64) -> None:
        """Fix the vector column to ``dim`` dimensions and build its HNSW index (once)."""
        dim = int(dim)
        if self._dim == dim:
            return
        with self.transaction() as conn:
            conn.execute(
                "SELECT pg_advisory_xact_lock(hashtext('engram:dim:' || current_schema()))"
            )
            current = self._column_dim(conn)
            if current is not None and current != dim:
                raise EmbeddingMismatchError(f"store holds {current}-dim vectors, not {dim}")
            if current is None:
                try:
                    with conn.transaction():
                        conn.execute(
                            f"ALTER TABLE vectors ALTER COLUMN embedding TYPE vector({dim})"
                        )
                except psycopg.DataError as exc:
                    raise EmbeddingMismatchError(
                        f"store holds vectors of another dimension than {dim} ({exc})"
                    ) from exc
                self.create_vector_index(conn, dim, m=m, ef_construction=ef_construction)
        self._dim = dim

    @staticmethod
    def create_vector_index(
        conn: psycopg.Connection, dim: int, *, m: int = 16, ef_construction: int = 64
    ) -> bool:
        """Create the HNSW index (inner product) unless it exists; False above 2,000 dims."""
        if dim > _HNSW_MAX_DIM:
            log.warning("%d-dim vectors: no HNSW index (limit %d)", dim, _HNSW_MAX_DIM)
            return False
        # A graph built in memory is several times faster than one spilling to disk; the
        # setting lasts for this transaction only (the server's own limit still applies).
        conn.execute("SET LOCAL maintenance_work_mem = '1GB'")
        conn.execute(
            "CREATE INDEX IF NOT EXISTS vectors_hnsw ON vectors USING hnsw "
            f"(embedding vector_ip_ops) WITH (m = {int(m)}, "
            f"ef_construction = {int(ef_construction)})"
        )
        return True

    def has_vector_index(self) -> bool:
        return bool(self._one("SELECT to_regclass('vectors_hnsw') IS NOT NULL"))

    # -- namespaces -----------------------------------------------------------------------
    def namespaces(self) -> list[dict[str, Any]]:
        rows = self._all(
            "SELECT n.name, n.created_at, "
            "(SELECT count(*) FROM documents d WHERE d.namespace = n.name), "
            "(SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id "
            ' WHERE d.namespace = n.name) FROM namespaces n ORDER BY n.name COLLATE "C"'
        )
        return [{"name": r[0], "created_at": r[1], "documents": r[2], "chunks": r[3]} for r in rows]

    def namespace_count(self) -> int:
        return int(self._one("SELECT count(*) FROM namespaces"))

    def namespace_exists(self, name: str) -> bool:
        return bool(self._all("SELECT 1 FROM namespaces WHERE name = %s", (name,)))

    # -- writes ---------------------------------------------------------------------------
    def document_hash(self, namespace: str, doc_key: str) -> str | None:
        return self._one(
            "SELECT content_hash FROM documents WHERE namespace = %s AND doc_key = %s",
            (namespace, doc_key),
        )

    def vectors_for_hashes(self, hashes: Sequence[str], model: str) -> dict[str, np.ndarray]:
        """Stored vectors of chunks with these content hashes (an embedding cache)."""
        rows = self._all(
            "SELECT DISTINCT ON (c.content_hash) c.content_hash, v.embedding FROM chunks c "
            "JOIN vectors v ON v.chunk_id = c.id "
            "WHERE v.model = %s AND c.content_hash = ANY(%s::text[])",
            (model, list(set(hashes))),
        )
        return {h: vec.to_numpy() for h, vec in rows}

    def _ensure_dim(self, chunks: Sequence[ChunkRecord]) -> None:
        if chunks and self.vector_dim() is None:
            self.set_dim(int(np.shape(chunks[0].vector)[0]))

    def write_document(
        self,
        namespace: str,
        doc: Document,
        doc_key: str,
        content_hash: str,
        chunks: Sequence[ChunkRecord],
        model: str,
        created_at: float | None = None,
    ) -> WriteResult:
        """Insert or replace one document with its chunks and vectors, atomically."""
        self._ensure_dim(chunks)
        now = time.time()
        try:
            return self._retrying(
                lambda conn: self._write(
                    conn, namespace, doc, doc_key, content_hash, chunks, model, created_at, now
                )
            )
        except psycopg.DataError as exc:
            raise IngestError(f"cannot store document {doc_key!r}: {exc}") from exc

    def write_documents(
        self,
        namespace: str,
        rows: Sequence[tuple[Document, str, str, Sequence[ChunkRecord]]],
        model: str,
    ) -> int:
        """Write many documents in one transaction (bulk loads); returns those changed."""
        for row in rows:
            self._ensure_dim(row[3])
            break
        now = time.time()

        def work(conn: psycopg.Connection) -> list[WriteResult]:
            if len({key for _, key, _, _ in rows}) < len(rows):  # a key twice: in order
                return [
                    self._write(
                        conn, namespace, doc, key, digest, chunks, model, doc.created_at, now
                    )
                    for doc, key, digest, chunks in rows
                ]
            return self._write_many(conn, namespace, rows, model, now)

        try:
            results = self._retrying(work)
        except psycopg.DataError as exc:
            raise IngestError(f"cannot store documents: {exc}") from exc
        return sum(r.status != "unchanged" for r in results)

    def _write(
        self,
        conn: psycopg.Connection,
        namespace: str,
        doc: Document,
        doc_key: str,
        content_hash: str,
        chunks: Sequence[ChunkRecord],
        model: str,
        created_at: float | None,
        now: float,
    ) -> WriteResult:
        meta = json.dumps(doc.metadata, ensure_ascii=False, sort_keys=True, default=str)
        conn.execute(
            "INSERT INTO namespaces(name, created_at) VALUES (%s, %s) "
            "ON CONFLICT (name) DO NOTHING",
            (namespace, now),
        )
        select = (
            "SELECT id, content_hash FROM documents WHERE namespace = %s AND doc_key = %s "
            "FOR UPDATE"
        )
        row = conn.execute(select, (namespace, doc_key)).fetchone()
        deleted: list[int] = []
        if row is None:
            inserted = conn.execute(
                "INSERT INTO documents(namespace, doc_key, source, title, content_hash, "
                "metadata, created_at, updated_at) VALUES (%s,%s,%s,%s,%s,%s::jsonb,%s,%s) "
                "ON CONFLICT (namespace, doc_key) DO NOTHING RETURNING id",
                (
                    namespace,
                    doc_key,
                    doc.source,
                    doc.title,
                    content_hash,
                    meta,
                    created_at if created_at is not None else now,
                    now,
                ),
            ).fetchone()
            if inserted is None:  # another writer added the same key since the select
                row = conn.execute(select, (namespace, doc_key)).fetchone()
            else:
                doc_id, status = inserted[0], "added"
        if row is not None:
            doc_id = row[0]
            if row[1] == content_hash:
                return WriteResult(doc_id, "unchanged")
            deleted = sorted(
                r[0]
                for r in conn.execute(
                    "DELETE FROM chunks WHERE document_id = %s RETURNING id", (doc_id,)
                ).fetchall()
            )
            self._log_changes(conn, "delete", deleted, now)
            conn.execute(
                "UPDATE documents SET source = %s, title = %s, content_hash = %s, "
                "metadata = %s::jsonb, updated_at = %s WHERE id = %s",
                (doc.source, doc.title, content_hash, meta, now, doc_id),
            )
            status = "updated"
        added = self._insert_chunks(conn, doc_id, chunks, model, now)
        return WriteResult(doc_id, status, added, deleted)

    def _insert_chunks(
        self,
        conn: psycopg.Connection,
        doc_id: int,
        chunks: Sequence[ChunkRecord],
        model: str,
        now: float,
    ) -> list[int]:
        """Insert chunks and vectors of document ``doc_id`` and log them; their new ids."""
        added: list[int] = []
        if chunks:
            added = [
                r[0]
                for r in conn.execute(
                    "SELECT nextval(pg_get_serial_sequence('chunks', 'id')) "
                    "FROM generate_series(1, %s)",
                    (len(chunks),),
                ).fetchall()
            ]
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO chunks(id, document_id, position, text, start_char, end_char, "
                    "content_hash) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    [
                        (
                            cid,
                            doc_id,
                            rec.chunk.position,
                            rec.chunk.text,
                            rec.chunk.start,
                            rec.chunk.end,
                            rec.content_hash,
                        )
                        for cid, rec in zip(added, chunks, strict=True)
                    ],
                )
                vectors = [np.ascontiguousarray(rec.vector, dtype=np.float32) for rec in chunks]
                cur.executemany(
                    "INSERT INTO vectors(chunk_id, model, dim, embedding) VALUES (%s, %s, %s, %s)",
                    [
                        (cid, model, int(vec.shape[0]), vec)
                        for cid, vec in zip(added, vectors, strict=True)
                    ],
                )
            self._log_changes(conn, "add", added, now)
        return added

    def document_state(self, namespace: str, doc_key: str) -> tuple[int, str] | None:
        """``(id, content_hash)`` of a document, or None."""
        rows = self._all(
            "SELECT id, content_hash FROM documents WHERE namespace = %s AND doc_key = %s",
            (namespace, doc_key),
        )
        return (int(rows[0][0]), rows[0][1]) if rows else None

    def chunk_positions(self, doc_id: int) -> set[int]:
        rows = self._all("SELECT position FROM chunks WHERE document_id = %s", (doc_id,))
        return {int(r[0]) for r in rows}

    def append_chunks(self, doc_id: int, chunks: Sequence[ChunkRecord], model: str) -> list[int]:
        """Add chunks to a stored document in one transaction (large documents are written in
        bounded batches); returns the new chunk ids."""
        self._ensure_dim(chunks)
        now = time.time()
        return self._retrying(lambda conn: self._insert_chunks(conn, doc_id, chunks, model, now))

    def set_content_hash(self, doc_id: int, content_hash: str) -> None:
        self._retrying(
            lambda conn: conn.execute(
                "UPDATE documents SET content_hash = %s WHERE id = %s", (content_hash, doc_id)
            )
        )

    def _write_many(
        self,
        conn: psycopg.Connection,
        namespace: str,
        rows: Sequence[tuple[Document, str, str, Sequence[ChunkRecord]]],
        model: str,
        now: float,
    ) -> list[WriteResult]:
        """``_write`` for many documents with distinct keys, in a few statements and COPYs."""
        conn.execute(
            "INSERT INTO namespaces(name, created_at) VALUES (%s, %s) "
            "ON CONFLICT (name) DO NOTHING",
            (namespace, now),
        )
        keys = [key for _, key, _, _ in rows]
        found = {
            key: (doc_id, digest)
            for doc_id, key, digest in conn.execute(
                "SELECT id, doc_key, content_hash FROM documents WHERE namespace = %s "
                "AND doc_key = ANY(%s::text[]) ORDER BY id FOR UPDATE",
                (namespace, keys),
            ).fetchall()
        }
        results: list[WriteResult | None] = [None] * len(rows)
        metas = [
            json.dumps(doc.metadata, ensure_ascii=False, sort_keys=True, default=str)
            for doc, _, _, _ in rows
        ]
        changed = [
            j for j, (_, key, digest, _) in enumerate(rows) if found.get(key, (0, ""))[1] != digest
        ]
        for j, (_, key, digest, _) in enumerate(rows):
            if key in found and found[key][1] == digest:
                results[j] = WriteResult(found[key][0], "unchanged")
        updates = [j for j in changed if keys[j] in found]
        deleted: dict[int, list[int]] = {}
        if updates:
            ids = [found[keys[j]][0] for j in updates]
            for doc_id, cid in conn.execute(
                "DELETE FROM chunks WHERE document_id = ANY(%s::bigint[]) "
                "RETURNING document_id, id",
                (ids,),
            ).fetchall():
                deleted.setdefault(doc_id, []).append(cid)
            self._log_changes(conn, "delete", sorted(c for v in deleted.values() for c in v), now)
            conn.execute(
                "UPDATE documents d SET source = u.s, title = u.t, content_hash = u.h, "
                "metadata = u.m::jsonb, updated_at = %s FROM unnest(%s::bigint[], %s::text[], "
                "%s::text[], %s::text[], %s::text[]) AS u(i, s, t, h, m) WHERE d.id = u.i",
                (
                    now,
                    ids,
                    [rows[j][0].source for j in updates],
                    [rows[j][0].title for j in updates],
                    [rows[j][2] for j in updates],
                    [metas[j] for j in updates],
                ),
            )
            for j, doc_id in zip(updates, ids, strict=True):
                results[j] = WriteResult(doc_id, "updated", [], sorted(deleted.get(doc_id, [])))
        inserts = [j for j in changed if keys[j] not in found]
        if inserts:
            created = [rows[j][0].created_at for j in inserts]
            new_ids = dict(
                (key, doc_id)
                for doc_id, key in conn.execute(
                    "INSERT INTO documents(namespace, doc_key, source, title, content_hash, "
                    "metadata, created_at, updated_at) SELECT %s, k, s, t, h, m::jsonb, "
                    "coalesce(c, %s), %s FROM unnest(%s::text[], %s::text[], %s::text[], "
                    "%s::text[], %s::text[], %s::float8[]) "
                    "WITH ORDINALITY AS u(k, s, t, h, m, c, o) ORDER BY o "
                    "ON CONFLICT (namespace, doc_key) DO NOTHING RETURNING id, doc_key",
                    (
                        namespace,
                        now,
                        now,
                        [keys[j] for j in inserts],
                        [rows[j][0].source for j in inserts],
                        [rows[j][0].title for j in inserts],
                        [rows[j][2] for j in inserts],
                        [metas[j] for j in inserts],
                        created,
                    ),
                ).fetchall()
            )
            for j in inserts:
                if keys[j] in new_ids:
                    results[j] = WriteResult(new_ids[keys[j]], "added")
        # Chunks and vectors of every added or updated document, by COPY.
        pending = [(j, results[j]) for j in changed if results[j] is not None]
        n_chunks = sum(len(rows[j][3]) for j, _ in pending)
        if n_chunks:
            chunk_ids = [
                r[0]
                for r in conn.execute(
                    "SELECT nextval(pg_get_serial_sequence('chunks', 'id')) "
                    "FROM generate_series(1, %s)",
                    (n_chunks,),
                ).fetchall()
            ]
            it = iter(chunk_ids)
            with conn.cursor() as cur:
                with cur.copy(
                    "COPY chunks(id, document_id, position, text, start_char, end_char, "
                    "content_hash) FROM STDIN"
                ) as copy:
                    for j, result in pending:
                        for rec in rows[j][3]:
                            cid = next(it)
                            result.added.append(cid)
                            copy.write_row(
                                (
                                    cid,
                                    result.document_id,
                                    rec.chunk.position,
                                    rec.chunk.text,
                                    rec.chunk.start,
                                    rec.chunk.end,
                                    rec.content_hash,
                                )
                            )
                with cur.copy("COPY vectors(chunk_id, model, dim, embedding) FROM STDIN") as copy:
                    for j, result in pending:
                        for cid, rec in zip(result.added, rows[j][3], strict=True):
                            vec = np.ascontiguousarray(rec.vector, dtype=np.float32)
                            copy.write_row((cid, model, int(vec.shape[0]), vec))
            self._log_changes(conn, "add", chunk_ids, now)
        # A key another writer inserted since the select: write it the one-by-one way.
        for j in inserts:
            if results[j] is None:
                doc, key, digest, chunks = rows[j]
                results[j] = self._write(
                    conn, namespace, doc, key, digest, chunks, model, doc.created_at, now
                )
        return [r for r in results if r is not None]

    @staticmethod
    def _log_changes(conn: psycopg.Connection, op: str, ids: Sequence[int], now: float) -> None:
        if ids:
            conn.execute(
                "INSERT INTO changes(op, chunk_id, at) SELECT %s, i, %s "
                "FROM unnest(%s::bigint[]) WITH ORDINALITY AS t(i, o) ORDER BY o",
                (op, now, list(ids)),
            )

    def delete(
        self,
        namespace: str | None = None,
        doc_keys: Sequence[str] | None = None,
        where: dict | None = None,
        chunk_ids: Sequence[int] | None = None,
        reason: str = "",
        action: str = "delete",
    ) -> int:
        """Delete documents (by key and/or filter) or single chunks; returns chunks removed."""
        now = time.time()
        cond, params = compile_where(where, dialect="postgres")
        sql = "SELECT d.id, d.namespace, d.doc_key FROM documents d WHERE " + cond
        if namespace is not None:
            sql += " AND d.namespace = %s"
            params.append(namespace)
        if chunk_ids is None and doc_keys is None and not where and namespace is None:
            raise EngramError("delete needs document ids, a filter or a namespace")

        def work(conn: psycopg.Connection) -> int:
            if chunk_ids is not None:
                ids = [
                    r[0]
                    for r in conn.execute(
                        "SELECT id FROM chunks WHERE id = ANY(%s::bigint[]) ORDER BY id",
                        ([int(i) for i in chunk_ids],),
                    ).fetchall()
                ]
                targets = [(None, namespace or "", f"chunk:{i}") for i in ids]
            else:
                if doc_keys is not None:
                    docs = conn.execute(
                        sql + " AND d.doc_key = ANY(%s::text[]) ORDER BY d.id FOR UPDATE",
                        (*params, list(doc_keys)),
                    ).fetchall()
                else:
                    docs = conn.execute(sql + " ORDER BY d.id FOR UPDATE", params).fetchall()
                doc_ids = [d[0] for d in docs]
                ids = [
                    r[0]
                    for r in conn.execute(
                        "SELECT id FROM chunks WHERE document_id = ANY(%s::bigint[]) ORDER BY id",
                        (doc_ids,),
                    ).fetchall()
                ]
                targets = [(d[0], d[1], d[2]) for d in docs]
            conn.execute("DELETE FROM chunks WHERE id = ANY(%s::bigint[])", (ids,))
            if chunk_ids is None:
                conn.execute(
                    "DELETE FROM documents WHERE id = ANY(%s::bigint[])", ([t[0] for t in targets],)
                )
            self._log_changes(conn, "delete", ids, now)
            if targets:
                with conn.cursor() as cur:
                    cur.executemany(
                        "INSERT INTO audit(at, action, namespace, target, reason) "
                        "VALUES (%s, %s, %s, %s, %s)",
                        [(now, action, ns, key, reason) for _, ns, key in targets],
                    )
            return len(ids)

        return self._retrying(work)

    def drop_namespace(self, namespace: str, reason: str = "") -> int:
        n = self.delete(namespace=namespace, reason=reason)
        with self.transaction() as conn:
            conn.execute("DELETE FROM namespaces WHERE name = %s", (namespace,))
        return n

    # -- changelog ------------------------------------------------------------------------
    def max_seq(self) -> int:
        return int(self._one("SELECT coalesce(max(seq), 0) FROM changes"))

    def changes_since(self, seq: int, limit: int = 10000) -> list[tuple[int, str, int]]:
        return self._all(
            "SELECT seq, op, chunk_id FROM changes WHERE seq > %s ORDER BY seq LIMIT %s",
            (seq, limit),
        )

    # -- reads ----------------------------------------------------------------------------
    @staticmethod
    def _ids(ids: Sequence[int]) -> list[int]:
        return [int(i) for i in ids]

    def chunk_texts(self, ids: Sequence[int]) -> dict[int, str]:
        return dict(
            self._all("SELECT id, text FROM chunks WHERE id = ANY(%s::bigint[])", (self._ids(ids),))
        )

    def chunk_vectors(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, matrix)`` of the chunks among ``ids`` that still exist, in id order."""
        rows = self._all(
            "SELECT chunk_id, embedding FROM vectors WHERE chunk_id = ANY(%s::bigint[]) "
            "ORDER BY chunk_id",
            (self._ids(ids),),
        )
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        mat = np.vstack([r[1].to_numpy() for r in rows]).astype(np.float32, copy=False)
        return np.array([r[0] for r in rows], dtype=np.int64), mat

    def iter_chunks(self, batch: int = 5000) -> Iterator[list[tuple[int, str, np.ndarray]]]:
        """Every chunk with its text and vector, in id order, in batches."""
        last = 0
        while True:
            rows = self._all(
                "SELECT c.id, c.text, v.embedding FROM chunks c JOIN vectors v "
                "ON v.chunk_id = c.id WHERE c.id > %s ORDER BY c.id LIMIT %s",
                (last, batch),
            )
            if not rows:
                return
            yield [(r[0], r[1], r[2].to_numpy()) for r in rows]
            last = rows[-1][0]

    def existing(self, ids: Sequence[int]) -> set[int]:
        return {
            r[0]
            for r in self._all(
                "SELECT id FROM chunks WHERE id = ANY(%s::bigint[])", (self._ids(ids),)
            )
        }

    def hit_rows(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        for r in self._all(
            "SELECT c.id, c.text, d.doc_key, d.source, d.title, d.namespace, d.metadata, "
            "d.created_at FROM chunks c JOIN documents d ON d.id = c.document_id "
            "WHERE c.id = ANY(%s::bigint[])",
            (self._ids(ids),),
        ):
            out[r[0]] = {
                "text": r[1],
                "doc_id": r[2],
                "source": r[3],
                "title": r[4],
                "namespace": r[5],
                "metadata": r[6],
                "created_at": r[7],
            }
        return out

    def allowed_ids(self, namespaces: Sequence[str] | None, where: dict | None) -> np.ndarray:
        """Sorted ids of the chunks that pass a namespace restriction and a filter."""
        cond, params = compile_where(where, dialect="postgres")
        sql = "SELECT c.id FROM chunks c JOIN documents d ON d.id = c.document_id WHERE " + cond
        if namespaces is not None:
            sql += " AND d.namespace = ANY(%s::text[])"
            params.append(list(namespaces))
        rows = self._all(sql + " ORDER BY c.id", params)
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def count_chunks(self) -> int:
        return int(self._one("SELECT count(*) FROM chunks"))

    def stats(self) -> dict[str, Any]:
        with self._conn() as conn:

            def q(sql: str) -> Any:
                return conn.execute(sql).fetchone()[0]

            return {
                "path": self.path,
                "schema_version": int(q("SELECT coalesce(max(version), 0) FROM schema_migrations")),
                "namespaces": q("SELECT count(*) FROM namespaces"),
                "documents": q("SELECT count(*) FROM documents"),
                "chunks": q("SELECT count(*) FROM chunks"),
                "changes": int(q("SELECT coalesce(max(seq), 0) FROM changes")),
                "embedding_model": q("SELECT max(value) FROM settings WHERE key='embedding_model'"),
                "embedding_dim": int(
                    q("SELECT max(value) FROM settings WHERE key='embedding_dim'") or 0
                )
                or None,
                "size_bytes": int(
                    q(
                        "SELECT coalesce(sum(pg_total_relation_size(to_regclass(t))), 0) FROM "
                        "unnest(ARRAY['namespaces','documents','chunks','vectors','changes',"
                        "'audit','settings','schema_migrations']) AS t"
                    )
                ),
            }

    def integrity_check(self) -> str:
        """``"ok"``, or what is inconsistent (chunks without vectors, orphaned rows)."""
        problems = []
        with self._conn() as conn:
            n = conn.execute(
                "SELECT count(*) FROM chunks c LEFT JOIN vectors v ON v.chunk_id = c.id "
                "WHERE v.chunk_id IS NULL"
            ).fetchone()[0]
            if n:
                problems.append(f"{n} chunks without a vector")
            n = conn.execute(
                "SELECT count(*) FROM documents d LEFT JOIN namespaces n "
                "ON n.name = d.namespace WHERE n.name IS NULL"
            ).fetchone()[0]
            if n:
                problems.append(f"{n} documents in unknown namespaces")
        return "; ".join(problems) or "ok"

    def audit(self, namespace: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        sql = "SELECT at, action, namespace, target, reason FROM audit"
        params: list[Any] = []
        if namespace is not None:
            sql += " WHERE namespace = %s"
            params.append(namespace)
        rows = self._all(sql + " ORDER BY id DESC LIMIT %s", (*params, limit))
        keys = ("at", "action", "namespace", "target", "reason")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    # -- documents for the server ---------------------------------------------------------
    def namespace_stats(self, namespace: str) -> dict[str, Any] | None:
        """Creation time, document and chunk counts, last update of a namespace (or None)."""
        rows = self._all(
            "SELECT n.created_at, "
            "(SELECT count(*) FROM documents d WHERE d.namespace = n.name), "
            "(SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id "
            " WHERE d.namespace = n.name), "
            "(SELECT max(d.updated_at) FROM documents d WHERE d.namespace = n.name) "
            "FROM namespaces n WHERE n.name = %s",
            (namespace,),
        )
        if not rows:
            return None
        row = rows[0]
        return {
            "created_at": row[0],
            "documents": int(row[1]),
            "chunks": int(row[2]),
            "updated_at": row[3],
        }

    def count_documents(
        self,
        namespace: str,
        doc_keys: Sequence[str] | None = None,
        where: dict | None = None,
    ) -> int:
        """Documents in ``namespace`` that match ``where`` (and have one of ``doc_keys``)."""
        cond, params = compile_where(where, dialect="postgres")
        sql = "SELECT count(*) FROM documents d WHERE " + cond + " AND d.namespace = %s"
        params.append(namespace)
        if doc_keys is not None:
            sql += " AND d.doc_key = ANY(%s::text[])"
            params.append(list(dict.fromkeys(doc_keys)))
        return int(self._one(sql, params))

    def list_documents(
        self, namespace: str, limit: int = 100, offset: int = 0
    ) -> tuple[int, list[dict[str, Any]]]:
        """``(total, documents)``: documents of ``namespace`` in insertion order, a page."""
        with self.transaction() as conn:
            total = conn.execute(
                "SELECT count(*) FROM documents WHERE namespace = %s", (namespace,)
            ).fetchone()[0]
            rows = conn.execute(
                "SELECT d.doc_key, d.source, d.title, d.metadata, d.created_at, d.updated_at, "
                "(SELECT count(*) FROM chunks c WHERE c.document_id = d.id) "
                "FROM documents d WHERE d.namespace = %s ORDER BY d.id LIMIT %s OFFSET %s",
                (namespace, limit, offset),
            ).fetchall()
        return int(total), [
            {
                "id": r[0],
                "source": r[1],
                "title": r[2],
                "metadata": r[3],
                "created_at": r[4],
                "updated_at": r[5],
                "chunks": int(r[6]),
            }
            for r in rows
        ]

    def select_documents(
        self,
        namespace: str,
        where: dict | None = None,
        *,
        newest_first: bool = False,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Documents of ``namespace`` matching ``where`` by ``created_at`` (then insertion),
        each with ``content_hash`` and its chunk rows ``(id, position, text, start_char,
        end_char, content_hash)`` in position order."""
        cond, params = compile_where(where, dialect="postgres")
        order = "DESC" if newest_first else "ASC"
        sql = (
            "SELECT d.id, d.doc_key, d.source, d.title, d.metadata, d.created_at, d.updated_at, "
            f"d.content_hash FROM documents d WHERE d.namespace = %s AND {cond} "
            f"ORDER BY d.created_at {order}, d.id {order}"
        )
        args: list[Any] = [namespace, *params]
        if limit is not None:
            sql += " LIMIT %s"
            args.append(int(limit))
        with self.transaction() as conn:
            rows = conn.execute(sql, args).fetchall()
            chunks: dict[int, list[tuple]] = {}
            for doc_id, *rest in conn.execute(
                "SELECT document_id, id, position, text, start_char, end_char, content_hash "
                "FROM chunks WHERE document_id = ANY(%s::bigint[]) ORDER BY document_id, position",
                ([r[0] for r in rows],),
            ).fetchall():
                chunks.setdefault(doc_id, []).append(tuple(rest))
        return [
            {
                "id": key,
                "source": source,
                "title": title,
                "metadata": meta,
                "created_at": created,
                "updated_at": updated,
                "content_hash": digest,
                "chunks": chunks.get(pk, []),
            }
            for pk, key, source, title, meta, created, updated, digest in rows
        ]

    def metadata_max(self, namespace: str, key: str, where: dict | None = None) -> float | None:
        """The largest numeric ``metadata[key]`` among the documents of ``namespace`` that
        match ``where`` (None when none has a number there)."""
        cond, params = compile_where(where, dialect="postgres")
        path = metadata_path(key, "postgres")
        value = self._one(
            "SELECT max(CASE WHEN jsonb_typeof(d.metadata #> %s::text[]) = 'number' "
            "THEN (d.metadata #>> %s::text[])::double precision END) FROM documents d "
            f"WHERE d.namespace = %s AND {cond}",
            [path, path, namespace, *params],
        )
        if value is None:
            return None
        return int(value) if float(value).is_integer() else float(value)

    def index_metadata(self, key: str) -> None:
        """Nothing to create: PostgreSQL filters compile to ``jsonb`` expressions that a
        B-tree on one key would not serve (checks ``key`` so both stores reject the same)."""
        metadata_path(key, "postgres")

    def metadata_indexes(self) -> list[str]:
        return []

    def purge(self) -> None:
        """Leave as little deleted text on disk as PostgreSQL allows without locking the
        tables: ``VACUUM`` the tables deletes touch, so dead rows are pruned from their pages
        and index entries removed (``VACUUM FULL`` rewrites files, run it in maintenance)."""
        with self.pool.connection() as conn:
            conn.autocommit = True  # VACUUM cannot run inside a transaction
            try:
                conn.execute("VACUUM documents, chunks, vectors")
            finally:
                conn.autocommit = False

    def get_document(self, namespace: str, doc_key: str) -> dict[str, Any] | None:
        """One document with its chunks (``id``, ``position``, ``text``), or None."""
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT id, doc_key, source, title, metadata, created_at, updated_at "
                "FROM documents WHERE namespace = %s AND doc_key = %s",
                (namespace, doc_key),
            ).fetchone()
            if row is None:
                return None
            chunks = conn.execute(
                "SELECT id, position, text FROM chunks WHERE document_id = %s ORDER BY position",
                (row[0],),
            ).fetchall()
        return {
            "id": row[1],
            "source": row[2],
            "title": row[3],
            "metadata": row[4],
            "created_at": row[5],
            "updated_at": row[6],
            "chunks": [{"id": c[0], "position": c[1], "text": c[2]} for c in chunks],
        }

    # -- retrieval ------------------------------------------------------------------------
    def retrieval(self, config: Any) -> PostgresRetrieval:
        """The retrieval object ``Memory`` uses: full-text and HNSW search in the database."""
        return PostgresRetrieval(self, config)


@dataclass(frozen=True)
class PgScope:
    """A search restricted by SQL over ``documents d`` (namespaces and a compiled filter)."""

    sql: str
    params: tuple[Any, ...]


class PostgresRetrieval:
    """``scope / keyword / vector / vectors_for / stats / sync / save / reindex / set_dim``
    answered by PostgreSQL: a GIN-indexed ``tsvector`` and a pgvector HNSW index. Filters are
    part of both queries' WHERE clause, so ``k`` results come back when ``k`` match."""

    def __init__(self, store: PostgresStore, config: Any):
        self.store, self.config = store, config
        self.iterative_scan = store.pgvector_version >= (0, 8)

    def set_dim(self, dim: int) -> None:
        self.store.set_dim(
            dim, m=self.config.hnsw_m, ef_construction=self.config.hnsw_ef_construction
        )

    # -- queries --------------------------------------------------------------------------
    def scope(self, namespaces: list[str] | None, where: dict | None) -> Any:
        """``None`` for everything, ``EMPTY`` for no namespace, else a ``PgScope``."""
        from engram.index.local import EMPTY

        if namespaces is not None and not namespaces:
            return EMPTY
        if not where and (
            namespaces is None
            or (namespaces == [DEFAULT_NAMESPACE] and self.store.namespace_count() <= 1)
        ):
            return None
        cond, params = compile_where(where, dialect="postgres")
        if namespaces is not None:
            cond += " AND d.namespace = ANY(%s::text[])"
            params.append(list(namespaces))
        return PgScope(cond, tuple(params))

    def keyword(self, query: str, n: int, scope: Any) -> list[tuple[int, float]]:
        """Top ``n`` ``(chunk_id, ts_rank)`` for any of the query's terms (OR, like BM25)."""
        terms = query_terms(query)
        if not terms or n <= 0:
            return []
        tsquery = " | ".join(terms)
        join, cond, params = "", "", [tsquery]
        if scope is not None:
            join = " JOIN documents d ON d.id = c.document_id"
            cond = f" AND {scope.sql}"
            params += list(scope.params)
        rows = self.store._all(
            f"SELECT c.id, ts_rank(c.tsv, q, {_RANK_NORMALIZATION}) AS score "
            f"FROM chunks c{join} CROSS JOIN to_tsquery('english', %s) AS q "
            f"WHERE c.tsv @@ q{cond} ORDER BY score DESC, c.id LIMIT %s",
            (*params, n),
        )
        return [(int(i), float(s)) for i, s in rows]

    def vector(self, vector: np.ndarray, n: int, scope: Any) -> list[tuple[int, float]]:
        """Top ``n`` ``(chunk_id, inner product)``: HNSW, then exact when it found too few."""
        if n <= 0:
            return []
        q = np.ascontiguousarray(vector, dtype=np.float32).ravel()
        dim = self.store.vector_dim()
        if dim is not None and q.shape[0] != dim:
            raise EmbeddingMismatchError(f"query has {q.shape[0]} dims, the store holds {dim}")
        join, cond, params = "", "", []
        if scope is not None:
            join = " JOIN chunks c ON c.id = v.chunk_id JOIN documents d ON d.id = c.document_id"
            cond = f" WHERE {scope.sql}"
            params = list(scope.params)
        head = f"SELECT v.chunk_id, -(v.embedding <#> %s) AS score FROM vectors v{join}{cond} "
        graph = head + "ORDER BY v.embedding <#> %s LIMIT %s"
        # HNSW may stop early under a very selective filter; "(...) + 0" is an order the index
        # cannot serve, so that query is an exact scan of the rows in scope.
        exact = head + "ORDER BY (v.embedding <#> %s) + 0 LIMIT %s"
        ef = min(1000, max(int(self.config.hnsw_ef_search), n))
        with self.store.transaction() as conn:
            small = False
            if scope is not None:
                # Small scopes are searched exactly: cheaper than walking the graph past the
                # many rows a selective filter rejects (measured: 1% of 20k chunks, 0.1 s
                # exact vs 0.6 s by graph; 33%, 0.18 s exact vs 0.06 s by graph).
                limit = min(int(self.config.exact_filter_max), _EXACT_SCOPE_MAX)
                size = conn.execute(
                    "SELECT count(*) FROM (SELECT 1 FROM chunks c JOIN documents d "
                    f"ON d.id = c.document_id WHERE {scope.sql} LIMIT %s) AS s",
                    (*params, limit + 1),
                ).fetchone()[0]
                if size == 0:
                    return []
                small = size <= limit
            rows = []
            if not small:
                conn.execute(f"SET LOCAL hnsw.ef_search = {ef}")
                if self.iterative_scan:
                    conn.execute("SET LOCAL hnsw.iterative_scan = relaxed_order")
                rows = conn.execute(graph, (q, *params, q, n)).fetchall()
            if len(rows) < n:
                rows = conn.execute(exact, (q, *params, q, n)).fetchall()
        found = sorted(((float(s), int(i)) for i, s in rows), key=lambda x: (-x[0], x[1]))
        return [(i, s) for s, i in found]

    def vectors_for(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        found, mat = self.store.chunk_vectors(ids)
        return {int(i): mat[p] for p, i in enumerate(found)}

    def stats(self) -> dict[str, Any]:
        with self.store._conn() as conn:
            chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
            vectors = conn.execute("SELECT count(*) FROM vectors").fetchone()[0]
            head = conn.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()[0]
        return {
            "keyword": {
                "rows": chunks,
                "deleted": 0,
                "last_change": head,
                "index": "postgresql tsvector (english) + GIN, ts_rank",
            },
            "vector": {
                "rows": vectors,
                "deleted": 0,
                "last_change": head,
                "index": (
                    "pgvector hnsw (vector_ip_ops)" if self.store.has_vector_index() else "exact"
                ),
                "dim": self.store.vector_dim(),
            },
        }

    # -- upkeep: the database keeps its indexes current -----------------------------------
    def save(self) -> None:
        """Nothing to save: the indexes are part of the database."""

    def sync(self, autosave: bool = True) -> int:
        """Nothing to catch up: every committed write is already indexed."""
        return 0

    def reindex(self) -> dict[str, int]:
        """Rebuild the full-text and vector indexes (``REINDEX``); create the HNSW index if it
        was dropped (for a large bulk load, drop it first and reindex afterwards: faster)."""
        dim = self.store.vector_dim()
        with self.store.transaction() as conn:
            conn.execute("REINDEX TABLE chunks")
            conn.execute("REINDEX TABLE vectors")
            if (
                dim is not None
                and not conn.execute("SELECT to_regclass('vectors_hnsw') IS NOT NULL").fetchone()[0]
            ):
                self.store.create_vector_index(
                    conn,
                    dim,
                    m=self.config.hnsw_m,
                    ef_construction=self.config.hnsw_ef_construction,
                )
            chunks = conn.execute("SELECT count(*) FROM chunks").fetchone()[0]
            vectors = conn.execute("SELECT count(*) FROM vectors").fetchone()[0]
        return {"keyword": chunks, "vector": vectors}
