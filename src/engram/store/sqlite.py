"""SQLite store: one file in WAL mode, numbered migrations, a changelog for derived indexes."""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from engram.errors import EngramError, StoreNotFoundError
from engram.store.base import ChunkRecord, WriteResult
from engram.store.document_reads import DocumentReads
from engram.store.filters import (
    compile_where,
    json_path_literal,
    metadata_index_name,
    metadata_path,
)
from engram.store.sqlbase import Row, SqlStore
from engram.store.sqlite_write import Batch, insert_documents, known_keys

log = logging.getLogger(__name__)
_BATCH = 900  # stay under SQLite's parameter limit
_BULK_CACHE_KIB = 256 * 1024  # the page cache during bulk writes


# Pages of new stores: 16 KiB instead of SQLite's 4 KiB halve the commit and checkpoint time of
# bulk loads (10 vectors of 384 floats a page instead of 2; docs/benchmarks.md). A store keeps
# the page size it was created with.
PAGE_SIZE = 16384
HASH_PREFIX = 12  # hex digits of a chunk's content hash in its index (migration 0003)


def migrations() -> list[tuple[int, str]]:
    """``(version, sql)`` for every file in ``store/migrations``, in order."""
    out = []
    for entry in resources.files("engram.store").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            out.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(out)


def _chunks(seq: Sequence[Any], size: int = _BATCH) -> Iterator[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i : i + size]


class SQLiteStore(SqlStore, DocumentReads):
    """The embedded store. Safe for one writer and many readers across processes."""

    kind = "sqlite"
    dialect = "sqlite"
    P = "?"

    def __init__(
        self,
        path: str | Path,
        *,
        readonly: bool = False,
        timeout: float = 60.0,
        create: bool = True,
    ):
        self.path = str(path)
        if not create and not Path(self.path).is_file():
            raise StoreNotFoundError(
                f"{self.path}: no Engram store here (`engram add` or `engram init` creates one)"
            )
        if not readonly:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        uri = f"file:{Path(self.path).resolve()}{'?mode=ro' if readonly else ''}"
        try:
            self.conn = sqlite3.connect(
                uri, uri=True, isolation_level=None, timeout=timeout, check_same_thread=False
            )
            self.conn.execute(f"PRAGMA page_size={PAGE_SIZE}")  # new files only; else no-op
            self.conn.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as exc:
            raise EngramError(f"{self.path}: not an Engram store ({exc})") from exc
        self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.execute("PRAGMA secure_delete=ON")  # deleted text is zeroed, not left behind
        self.conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
        self.lock = threading.RLock()
        if not readonly:
            self.migrate()

    # -- plumbing -------------------------------------------------------------------------
    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """An immediate (write-locking) transaction, rolled back on any error."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
                self.conn.execute("COMMIT")
            except BaseException as exc:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError) and "full" in str(exc):
                    raise EngramError(
                        f"{self.path}: the disk is full ({exc}); this write was rolled back, "
                        "everything committed before it is kept"
                    ) from exc
                raise

    # -- dialect hooks (engram.store.sqlbase) ---------------------------------------------
    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        return self.conn.execute(sql, params).fetchall()

    def _in(self, column: str, values: Sequence[Any], kind: str = "bigint") -> Iterator[tuple]:
        for part in _chunks(list(values)):
            yield f"{column} IN ({','.join('?' * len(part))})", list(part)

    def _log_changes(self, conn: Any, op: str, ids: Sequence[int], now: float) -> None:
        conn.executemany(
            "INSERT INTO changes(op, chunk_id, at) VALUES (?, ?, ?)", [(op, i, now) for i in ids]
        )

    def _executemany(self, conn: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        conn.executemany(sql, rows)

    def _meta(self, value: Any) -> dict[str, Any]:
        return json.loads(value)

    def _vector(self, value: Any) -> np.ndarray:
        return np.frombuffer(value, dtype=np.float32)

    @contextmanager
    def bulk_writes(self) -> Iterator[None]:
        """A 256 MiB page cache while bulk writes run (SQLite's default is 2 MiB): the pages of
        the indexes on random keys (document keys, chunk hashes) that a batch dirties then
        reach the log once per transaction, not once per row; at 1M rows that halves the
        write time. The log is not copied into the file after every transaction meanwhile,
        but once, by ``checkpoint`` at the end of the load (a page written by several
        transactions is copied once, and the file is synced once)."""
        with self.lock:
            before = self.conn.execute("PRAGMA cache_size").fetchone()[0]
            every = self.conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0]
            self.conn.execute(f"PRAGMA cache_size = -{_BULK_CACHE_KIB}")
            self.conn.execute("PRAGMA wal_autocheckpoint = 0")
        try:
            yield
        finally:
            with self.lock:
                self.conn.execute(f"PRAGMA cache_size = {int(before)}")
                self.conn.execute(f"PRAGMA wal_autocheckpoint = {int(every)}")

    def checkpoint(self) -> None:
        """Copy the write-ahead log into the database file, as far as no reader holds it back
        (SQLite's passive checkpoint: it never waits). One that cannot run now (a statement
        of this connection still open) is left to the next automatic checkpoint."""
        with self.lock:
            try:
                self.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
            except sqlite3.OperationalError as exc:  # "database table is locked"
                log.debug("checkpoint deferred: %s", exc)

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads inside the block see one state of the file (a read transaction; other
        processes may write meanwhile, WAL keeps this view)."""
        with self.lock:
            if self.conn.in_transaction:  # already inside one: that is the snapshot
                yield
                return
            self.conn.execute("BEGIN")
            try:
                yield
            finally:
                self.conn.execute("COMMIT")

    def schema_version(self) -> int:
        return self.conn.execute("PRAGMA user_version").fetchone()[0]

    def migrate(self) -> int:
        """Apply numbered migrations forward; returns the schema version."""
        with self.transaction() as conn:
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            known = migrations()
            if known and current > known[-1][0]:
                raise EngramError(
                    f"{self.path} has schema version {current}, newer than this Engram "
                    f"({known[-1][0]}): upgrade Engram"
                )
            for version, sql in known:
                if version > current:
                    for statement in sql.split(";\n"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(f"PRAGMA user_version={version}")
                    current = version
        return current

    # -- writes ---------------------------------------------------------------------------

    def vectors_for_hashes(self, hashes: Sequence[str], model: str) -> dict[str, np.ndarray]:
        """Stored vectors of chunks with these content hashes (an embedding cache)."""
        out: dict[str, np.ndarray] = {}
        for part in _chunks(list(set(hashes)), _BATCH // 2):  # each hash is bound twice
            marks = ",".join("?" * len(part))
            for h, blob in self.conn.execute(
                f"SELECT c.content_hash, v.vector FROM chunks c JOIN vectors v ON v.chunk_id=c.id "
                f"WHERE v.model=? AND substr(c.content_hash, 1, {HASH_PREFIX}) IN ({marks}) "
                f"AND c.content_hash IN ({marks})",  # the index holds the hashes' prefixes
                (model, *(h[:HASH_PREFIX] for h in part), *part),
            ):
                out[h] = np.frombuffer(blob, dtype=np.float32)
        return out

    def _insert_chunks(
        self,
        conn: sqlite3.Connection,
        doc_id: int,
        chunks: Sequence[ChunkRecord],
        model: str,
        now: float,
    ) -> list[int]:
        """Insert chunks and vectors of document ``doc_id`` and log them; their new ids."""
        added = []
        for rec in chunks:
            vec = np.ascontiguousarray(rec.vector, dtype=np.float32)
            cid = conn.execute(
                "INSERT INTO chunks(document_id, position, text, start_char, end_char, "
                "content_hash) VALUES (?,?,?,?,?,?)",
                (doc_id, *rec.columns()),
            ).lastrowid
            conn.execute(
                "INSERT INTO vectors(chunk_id, model, dim, vector) VALUES (?,?,?,?)",
                (cid, model, int(vec.shape[0]), vec.tobytes()),
            )
            assert cid is not None  # an INSERT's rowid
            added.append(cid)
        self._log_changes(conn, "add", added, now)
        return added

    def prepare_documents(self, rows: Sequence[Row]) -> Batch | None:
        """The JSON of a bulk insert of ``rows``, built outside the write transaction (a
        bulk load builds the next batch's while the store writes the last). None where the
        rows go one by one: fewer than two, a key twice, or a NUL in a text."""
        keys = [key for _, key, _, _ in rows]
        if len(rows) < 2 or len(set(keys)) < len(keys):
            return None
        batch = Batch.of(rows)
        return None if batch.has_nul() else batch

    def _write_rows(
        self,
        conn: Any,
        namespace: str,
        rows: Sequence[Row],
        model: str,
        now: float,
        prepared: Any = None,
    ) -> Sequence[WriteResult]:
        """Documents with new keys in one bulk insert; known keys one by one (kept or
        replaced). Rows that ``prepare_documents`` refuses: all in order, one by one."""
        batch = prepared if isinstance(prepared, Batch) else self.prepare_documents(rows)
        if batch is None or len(batch.keys) != len(rows):
            return super()._write_rows(conn, namespace, rows, model, now)
        self._add_namespace(conn, namespace, now)
        known = known_keys(conn, namespace, batch.keys)
        if not known:
            return insert_documents(conn, namespace, batch, model, now)
        results: list[WriteResult | None] = [  # stored documents first, kept or replaced
            self._write_one(conn, namespace, doc, key, digest, chunks, model, doc.created_at, now)
            if key in known
            else None
            for doc, key, digest, chunks in rows
        ]
        fresh = [row for row in rows if row[1] not in known]
        added = iter(
            insert_documents(conn, namespace, Batch.of(fresh), model, now) if fresh else []
        )
        return [r if r is not None else next(added) for r in results]

    # -- reads ----------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        q = self.conn.execute
        return {
            "path": self.path,
            "schema_version": self.schema_version(),
            "namespaces": q("SELECT count(*) FROM namespaces").fetchone()[0],
            "documents": q("SELECT count(*) FROM documents").fetchone()[0],
            "chunks": q("SELECT count(*) FROM chunks").fetchone()[0],
            "changes": self.max_seq(),
            "embedding_model": self.get_setting("embedding_model"),
            "embedding_dim": int(self.get_setting("embedding_dim") or 0) or None,
            "size_bytes": sum(
                Path(self.path + s).stat().st_size
                for s in ("", "-wal")
                if Path(self.path + s).exists()
            ),
        }

    def integrity_check(self) -> str:
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0]

    # -- metadata -------------------------------------------------------------------------

    def metadata_max(self, namespace: str, key: str, where: dict | None = None) -> float | None:
        """The largest numeric ``metadata[key]`` among the documents of ``namespace`` that
        match ``where`` (None when none has a number there)."""
        cond, params = compile_where(where)
        path = metadata_path(key)
        with self.lock:
            row = self.conn.execute(
                f"SELECT max(CASE WHEN json_type(d.metadata, ?) IN ('integer', 'real') "
                f"THEN json_extract(d.metadata, ?) END) FROM documents d "
                f"WHERE d.namespace=? AND {cond}",
                [path, path, namespace, *params],
            ).fetchone()
        return row[0]

    def index_metadata(self, key: str) -> str:
        """Create (if missing) an SQL index on metadata ``key``; filters on it then read only
        the matching rows instead of scanning every document. Returns the index name."""
        name = metadata_index_name(key)
        # The namespace rides along, so a filter within namespaces reads no table row.
        sql = (
            f"CREATE INDEX {name} ON documents(json_extract(metadata, {json_path_literal(key)}), "
            "namespace)"
        )
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT sql FROM sqlite_master WHERE type='index' AND name=?", (name,)
            ).fetchone()
            if row is not None and row[0] != sql:  # made by an older Engram: rebuild it
                conn.execute(f"DROP INDEX {name}")
            if row is None or row[0] != sql:
                conn.execute(sql)
        return name

    def metadata_indexes(self) -> list[str]:
        """Names of the metadata indexes made by ``index_metadata``."""
        rows = self.conn.execute(
            "SELECT name FROM sqlite_master WHERE type='index' AND name LIKE 'meta\\_%' "
            "ESCAPE '\\' AND tbl_name='documents' ORDER BY name"
        ).fetchall()
        return [r[0] for r in rows]

    def purge(self) -> None:
        """Leave no deleted text in the files: deletes already zero what they free
        (``secure_delete``, set on open); this checkpoints and truncates the write-ahead log,
        which still holds older copies of the pages."""
        with self.lock:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
