"""PostgreSQL store: the same protocol as the SQLite store, for many processes and machines;
its keyword (``tsvector`` + GIN) and vector (pgvector HNSW) columns are searched in the
database by the ``postgres`` retrieval backend (``engram.retrieval.postgres``).

``PostgresStore(url)`` opens a ``postgresql://`` URL with a connection pool and applies the
numbered migrations in ``store/migrations_pg`` (tracked in ``schema_migrations``). Every
document is written in one transaction, like SQLite.
Needs ``psycopg[binary]``, ``psycopg-pool`` and ``pgvector`` (Python), and the ``vector``
extension in the database (``CREATE EXTENSION vector``; Engram creates it when allowed).
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
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
from engram.store.document_reads import DocumentReads
from engram.store.filters import (
    compile_where,
    metadata_index_name,
    metadata_path,
    pg_text_path,
)
from engram.store.postgres_write import insert_chunks, log_changes, write_many
from engram.store.sqlbase import Row, SqlStore

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


def scalar(conn: psycopg.Connection, sql: str, params: Sequence[Any] | None = None) -> Any:
    """The first column of the first row of one statement (None when no row)."""
    row = conn.execute(sql, params).fetchone()
    return row[0] if row else None


def _configure(conn: psycopg.Connection) -> None:
    """Per pooled connection: load pgvector's ``vector`` type as numpy arrays."""
    from pgvector.psycopg.vector import register_vector_info

    register_vector_info(conn, TypeInfo.fetch(conn, "vector"))
    conn.commit()


class PostgresStore(SqlStore, DocumentReads):
    """The server store. Safe for many writers and readers across processes and machines."""

    kind = "postgresql"
    dialect = "postgres"
    P = "%s"
    _vector_column = "embedding"
    _lock_rows = " ORDER BY d.id FOR UPDATE"
    _binary_order = ' COLLATE "C"'
    _lock_row = " FOR UPDATE"
    _json = "%s::jsonb"

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
        self._pinned = threading.local()  # the connection of this thread's snapshot
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
        """A pooled connection; what it did is committed when the block ends. Inside a
        ``snapshot`` block, that snapshot's connection."""
        pinned = getattr(self._pinned, "conn", None)
        if pinned is not None:
            yield pinned
            return
        with self.pool.connection() as conn:
            yield conn

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads of this thread inside the block see one state of the database (a
        repeatable-read, read-only transaction): a rebuild reads ``max_seq`` and every chunk
        as of one moment, while writers go on."""
        if getattr(self._pinned, "conn", None) is not None:
            yield
            return
        with self.pool.connection() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            self._pinned.conn = conn
            try:
                yield
            finally:
                self._pinned.conn = None

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Rows of one read (``%s`` placeholders), on a pooled connection."""
        return self._all(sql, params)

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection of its own, for work the store does not model (the read-only
        SQL console); returned to the pool when the block ends."""
        with self.pool.connection() as conn:
            yield conn

    # -- dialect hooks (engram.store.sqlbase) ---------------------------------------------
    def _write_tx(self, work: Callable[[psycopg.Connection], T]) -> T:
        return self._retrying(work)

    def _in(self, column: str, values: Sequence[Any], kind: str = "bigint") -> Iterator[tuple]:
        yield f"{column} = ANY(%s::{kind}[])", [list(values)]

    def _executemany(self, conn: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        if rows:
            with conn.cursor() as cur:
                cur.executemany(sql, rows)

    def _meta(self, value: Any) -> dict[str, Any]:
        return value

    def _vector(self, value: Any) -> np.ndarray:
        return value.to_numpy()

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
            current = scalar(conn, "SELECT coalesce(max(version), 0) FROM schema_migrations")
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

    # -- vector dimension -----------------------------------------------------------------
    def vector_dim(self) -> int | None:
        """The dimension of the ``vectors.embedding`` column (None until the first set_dim)."""
        if self._dim is None:
            with self._conn() as conn:
                self._dim = self._column_dim(conn)
        return self._dim

    @staticmethod
    def _column_dim(conn: psycopg.Connection) -> int | None:
        mod = scalar(
            conn,
            "SELECT atttypmod FROM pg_attribute "
            "WHERE attrelid = 'vectors'::regclass AND attname = 'embedding'",
        )
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

    # -- writes ---------------------------------------------------------------------------

    def vectors_for_hashes(self, hashes: Sequence[str], model: str) -> dict[str, np.ndarray]:
        """Stored vectors of chunks with these content hashes (an embedding cache)."""
        rows = self._all(
            "SELECT DISTINCT ON (c.content_hash) c.content_hash, v.embedding FROM chunks c "
            "JOIN vectors v ON v.chunk_id = c.id "
            "WHERE v.model = %s AND c.content_hash = ANY(%s::text[])",
            (model, list(set(hashes))),
        )
        return {h: vec.to_numpy() for h, vec in rows}

    def _log_changes(self, conn: Any, op: str, ids: Sequence[int], now: float) -> None:
        log_changes(conn, op, ids, now)

    def _prepare(self, chunks: Sequence[ChunkRecord]) -> None:
        if chunks and self.vector_dim() is None:
            self.set_dim(int(np.shape(chunks[0].vector)[0]))

    @contextmanager
    def _ingest_errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except psycopg.DataError as exc:
            raise IngestError(f"cannot store {what}: {exc}") from exc

    def _insert_chunks(
        self, conn: Any, doc_id: int, chunks: Sequence[ChunkRecord], model: str, now: float
    ) -> list[int]:
        return insert_chunks(conn, doc_id, chunks, model, now)

    def _write_rows(
        self,
        conn: Any,
        namespace: str,
        rows: Sequence[Row],
        model: str,
        now: float,
        prepared: Any = None,
    ) -> Sequence[WriteResult]:
        if len({key for _, key, _, _ in rows}) < len(rows):  # a key twice: in order
            return super()._write_rows(conn, namespace, rows, model, now)
        results = write_many(conn, namespace, rows, model, now)
        for j, result in enumerate(results):  # a key another writer inserted meanwhile
            if result is None:
                doc, key, digest, chunks = rows[j]
                results[j] = self._write_one(
                    conn, namespace, doc, key, digest, chunks, model, doc.created_at, now
                )
        return [r for r in results if r is not None]

    # -- reads ----------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        with self._conn() as conn:

            def q(sql: str) -> Any:
                return scalar(conn, sql)

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
            n = scalar(
                conn,
                "SELECT count(*) FROM chunks c LEFT JOIN vectors v ON v.chunk_id = c.id "
                "WHERE v.chunk_id IS NULL",
            )
            if n:
                problems.append(f"{n} chunks without a vector")
            n = scalar(
                conn,
                "SELECT count(*) FROM documents d LEFT JOIN namespaces n "
                "ON n.name = d.namespace WHERE n.name IS NULL",
            )
            if n:
                problems.append(f"{n} documents in unknown namespaces")
        return "; ".join(problems) or "ok"

    # -- documents for the server ---------------------------------------------------------

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

    def index_metadata(self, key: str) -> str:
        """Create (if missing) a B-tree on the text at metadata ``key`` (literal path) and the
        namespace: an equality filter on a string there then reads only the matching rows
        (the filter compiler adds that literal-path form). Returns the index name."""
        name = metadata_index_name(key)
        with self.transaction() as conn:
            conn.execute(
                f"CREATE INDEX IF NOT EXISTS {name} ON documents "
                f"({pg_text_path(key).replace('d.metadata', 'metadata')}, namespace)"
            )
            conn.execute("ANALYZE documents")  # plans see the new expression's statistics
        return name

    def metadata_indexes(self) -> list[str]:
        """Names of the metadata indexes made by ``index_metadata``."""
        rows = self._all(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = 'documents' AND indexname LIKE %s ORDER BY indexname",
            ("meta\\_%",),
        )
        return [r[0] for r in rows]

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
