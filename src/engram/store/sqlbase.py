"""What the SQLite and PostgreSQL stores share: the same tables, read and changed with the
same SQL, spelled per dialect through a few hooks.

A dialect (``SQLiteStore``, ``PostgresStore``) provides:

- ``P`` (its placeholder) and ``dialect`` (the filter compiler's name for it);
- ``_all`` (rows of one read), ``transaction`` and ``snapshot`` (see ``Store``),
  ``_write_tx`` (run a write in a transaction, retried where the database asks for it);
- ``_in`` (an ``IN`` condition over many values, in batches where the dialect needs them),
  ``_log_changes`` and ``_executemany``;
- ``_meta`` and ``_vector`` (decode a stored metadata value and a stored vector).

Everything else here is written once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, TypeVar

import numpy as np

from engram.errors import EngramError
from engram.identity import metadata_json
from engram.store.base import ChunkRecord, DocumentRow, WriteResult
from engram.store.chunk_reads import ChunkReads
from engram.store.filters import compile_where
from engram.types import Document

T = TypeVar("T")
Row = DocumentRow
_AUDIT_KEYS = ("at", "action", "namespace", "target", "reason")


class SqlStore(ChunkReads):
    """The shared part of the SQL stores (see the module docstring for the hooks)."""

    kind = "sql"
    dialect = "sqlite"
    P = "?"
    path: str
    _vector_column = "vector"  # the column of table ``vectors`` holding the embedding
    _lock_rows = ""  # appended to a select of documents about to change
    _lock_row = ""  # appended to a select of one document about to change
    _json = "?"  # the placeholder of a JSON value
    _binary_order = ""  # makes ORDER BY compare names as bytes

    # -- dialect hooks --------------------------------------------------------------------
    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def bulk_writes(self) -> AbstractContextManager[None]:
        return nullcontext()

    def checkpoint(self) -> None:
        return None  # PostgreSQL checkpoints by itself

    def snapshot(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def _write_tx(self, work: Callable[[Any], T]) -> T:
        with self.transaction() as conn:
            return work(conn)

    def _in(self, column: str, values: Sequence[Any], kind: str = "bigint") -> Iterator[tuple]:
        """``(condition, params)`` pairs that together select ``column IN values``."""
        raise NotImplementedError

    def _log_changes(self, conn: Any, op: str, ids: Sequence[int], now: float) -> None:
        raise NotImplementedError

    def _executemany(self, conn: Any, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        raise NotImplementedError

    def _meta(self, value: Any) -> dict[str, Any]:
        raise NotImplementedError

    def _insert_chunks(
        self, conn: Any, doc_id: int, chunks: Sequence[ChunkRecord], model: str, now: float
    ) -> list[int]:
        """Insert chunks and vectors of document ``doc_id`` and log them; their new ids."""
        raise NotImplementedError

    def _prepare(self, chunks: Sequence[ChunkRecord]) -> None:
        """Before a write of these chunks (PostgreSQL fixes its vector column's dimension)."""

    def _ingest_errors(self, what: str) -> AbstractContextManager[Any]:
        """Turns the database's refusal of a value into an ``IngestError`` naming ``what``."""
        return nullcontext()

    def _write_rows(
        self,
        conn: Any,
        namespace: str,
        rows: Sequence[Row],
        model: str,
        now: float,
        prepared: Any = None,
    ) -> Sequence[WriteResult]:
        return [
            self._write_one(conn, namespace, doc, key, digest, chunks, model, doc.created_at, now)
            for doc, key, digest, chunks in rows
        ]

    def _vector(self, value: Any) -> np.ndarray:
        raise NotImplementedError

    def _native(self, sql: str) -> str:
        """``sql`` written with ``?`` placeholders, in this dialect's."""
        return sql if self.P == "?" else sql.replace("?", self.P)

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        rows = self._all(sql, params)
        return rows[0][0] if rows else None

    # -- plain reads and writes (``?`` placeholders, for tables outside the protocol) -----
    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Rows of one read written with ``?`` placeholders (e.g. the ``api_keys`` table)."""
        return self._all(self._native(sql), params)

    def write(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one write written with ``?`` placeholders in a transaction; rows changed."""
        return self._write_tx(lambda conn: conn.execute(self._native(sql), params).rowcount)

    # -- settings and namespaces ----------------------------------------------------------
    def get_setting(self, key: str) -> str | None:
        return self._one(f"SELECT value FROM settings WHERE key = {self.P}", (key,))

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                f"INSERT INTO settings(key, value) VALUES ({self.P}, {self.P}) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def namespaces(self) -> list[dict[str, Any]]:
        rows = self._all(
            "SELECT n.name, n.created_at, "
            "(SELECT count(*) FROM documents d WHERE d.namespace = n.name), "
            "(SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id "
            f" WHERE d.namespace = n.name) FROM namespaces n ORDER BY n.name{self._binary_order}"
        )
        return [
            {"name": r[0], "created_at": r[1], "documents": int(r[2]), "chunks": int(r[3])}
            for r in rows
        ]

    def namespace_count(self) -> int:
        return int(self._one("SELECT count(*) FROM namespaces"))

    def namespace_exists(self, name: str) -> bool:
        return bool(self._all(f"SELECT 1 FROM namespaces WHERE name = {self.P}", (name,)))

    def namespace_stats(self, namespace: str) -> dict[str, Any] | None:
        """Creation time, document and chunk counts, last update of a namespace (or None)."""
        rows = self._all(
            "SELECT n.created_at, "
            "(SELECT count(*) FROM documents d WHERE d.namespace = n.name), "
            "(SELECT count(*) FROM chunks c JOIN documents d ON d.id = c.document_id "
            " WHERE d.namespace = n.name), "
            "(SELECT max(d.updated_at) FROM documents d WHERE d.namespace = n.name) "
            f"FROM namespaces n WHERE n.name = {self.P}",
            (namespace,),
        )
        if not rows:
            return None
        created, docs, chunks, updated = rows[0]
        return {
            "created_at": created,
            "documents": int(docs),
            "chunks": int(chunks),
            "updated_at": updated,
        }

    def drop_namespace(self, namespace: str, reason: str = "") -> int:
        n = self.delete(namespace=namespace, reason=reason)
        self._write_tx(
            lambda conn: conn.execute(f"DELETE FROM namespaces WHERE name = {self.P}", (namespace,))
        )
        return n

    # -- writes ---------------------------------------------------------------------------
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
        self._prepare(chunks)
        now = time.time()
        with self._ingest_errors(f"document {doc_key!r}"):
            return self._write_tx(
                lambda conn: self._write_one(
                    conn, namespace, doc, doc_key, content_hash, chunks, model, created_at, now
                )
            )

    def prepare_documents(self, rows: Sequence[Row]) -> Any:
        """Work on a batch for ``write_documents`` that can be done before its transaction
        (None: nothing; the SQLite store builds its bulk insert)."""
        return None

    def write_documents(
        self, namespace: str, rows: Sequence[Row], model: str, prepared: Any = None
    ) -> Sequence[WriteResult]:
        """Write many documents in one transaction (bulk loads); a result per row, in order.
        ``prepared``: what ``prepare_documents`` returned for these rows, if called."""
        if rows:
            self._prepare(rows[0][3])
        now = time.time()
        with self._ingest_errors("documents"):
            return self._write_tx(
                lambda conn: self._write_rows(conn, namespace, rows, model, now, prepared)
            )

    def append_chunks(self, doc_id: int, chunks: Sequence[ChunkRecord], model: str) -> list[int]:
        """Add chunks to a stored document in one transaction (large documents are written in
        bounded batches); returns the new chunk ids."""
        self._prepare(chunks)
        now = time.time()
        return self._write_tx(lambda conn: self._insert_chunks(conn, doc_id, chunks, model, now))

    def _add_namespace(self, conn: Any, namespace: str, now: float) -> None:
        """Create ``namespace`` in the caller's transaction unless it exists."""
        conn.execute(
            f"INSERT INTO namespaces(name, created_at) VALUES ({self.P}, {self.P}) "
            "ON CONFLICT (name) DO NOTHING",
            (namespace, now),
        )

    def _write_one(
        self,
        conn: Any,
        namespace: str,
        doc: Document,
        doc_key: str,
        content_hash: str,
        chunks: Sequence[ChunkRecord],
        model: str,
        created_at: float | None,
        now: float,
    ) -> WriteResult:
        """Insert, replace or keep one document (in the caller's transaction)."""
        P, meta = self.P, metadata_json(doc.metadata)
        self._add_namespace(conn, namespace, now)
        select = (
            "SELECT id, content_hash FROM documents "
            f"WHERE namespace = {P} AND doc_key = {P}{self._lock_row}"
        )
        row = conn.execute(select, (namespace, doc_key)).fetchone()
        if row is None:
            inserted = conn.execute(
                "INSERT INTO documents(namespace, doc_key, source, title, content_hash, "
                f"metadata, created_at, updated_at) VALUES ({P}, {P}, {P}, {P}, {P}, "
                f"{self._json}, {P}, {P}) ON CONFLICT (namespace, doc_key) DO NOTHING RETURNING id",
                (namespace, doc_key, doc.source, doc.title, content_hash, meta)
                + (created_at if created_at is not None else now, now),
            ).fetchall()
            if inserted:
                doc_id = inserted[0][0]
                return WriteResult(
                    doc_id, "added", self._insert_chunks(conn, doc_id, chunks, model, now)
                )
            row = conn.execute(select, (namespace, doc_key)).fetchone()  # another writer's
        if row[1] == content_hash:
            return WriteResult(row[0], "unchanged")
        deleted = sorted(
            r[0]
            for r in conn.execute(
                f"DELETE FROM chunks WHERE document_id = {P} RETURNING id", (row[0],)
            ).fetchall()
        )
        self._log_changes(conn, "delete", deleted, now)
        conn.execute(
            f"UPDATE documents SET source = {P}, title = {P}, content_hash = {P}, "
            f"metadata = {self._json}, updated_at = {P} WHERE id = {P}",
            (doc.source, doc.title, content_hash, meta, now, row[0]),
        )
        added = self._insert_chunks(conn, row[0], chunks, model, now)
        return WriteResult(row[0], "updated", added, deleted)

    # -- documents ------------------------------------------------------------------------
    def document_hash(self, namespace: str, doc_key: str) -> str | None:
        state = self.document_state(namespace, doc_key)
        return state[1] if state else None

    def document_state(self, namespace: str, doc_key: str) -> tuple[int, str] | None:
        """``(id, content_hash)`` of a document, or None."""
        rows = self._all(
            "SELECT id, content_hash FROM documents "
            f"WHERE namespace = {self.P} AND doc_key = {self.P}",
            (namespace, doc_key),
        )
        return (int(rows[0][0]), rows[0][1]) if rows else None

    def chunk_positions(self, doc_id: int) -> set[int]:
        rows = self._all(f"SELECT position FROM chunks WHERE document_id = {self.P}", (doc_id,))
        return {int(r[0]) for r in rows}

    def set_content_hash(self, doc_id: int, content_hash: str) -> None:
        self._write_tx(
            lambda conn: conn.execute(
                f"UPDATE documents SET content_hash = {self.P} WHERE id = {self.P}",
                (content_hash, doc_id),
            )
        )

    def count_documents(
        self,
        namespace: str,
        doc_keys: Sequence[str] | None = None,
        where: dict | None = None,
    ) -> int:
        """Documents in ``namespace`` that match ``where`` (and have one of ``doc_keys``)."""
        cond, params = compile_where(where, dialect=self.dialect)
        sql = f"SELECT count(*) FROM documents d WHERE {cond} AND d.namespace = {self.P}"
        params.append(namespace)
        if doc_keys is None:
            return int(self._one(sql, params))
        keys = list(dict.fromkeys(doc_keys))
        return sum(
            int(self._one(f"{sql} AND {c}", (*params, *p)))
            for c, p in self._in("d.doc_key", keys, "text")
        )

    def list_documents(
        self, namespace: str, limit: int = 100, offset: int = 0
    ) -> tuple[int, list[dict[str, Any]]]:
        """``(total, documents)``: documents of ``namespace`` in insertion order, a page."""
        with self.snapshot():
            total = self._one(
                f"SELECT count(*) FROM documents WHERE namespace = {self.P}", (namespace,)
            )
            rows = self._all(
                "SELECT d.doc_key, d.source, d.title, d.metadata, d.created_at, d.updated_at, "
                "(SELECT count(*) FROM chunks c WHERE c.document_id = d.id) FROM documents d "
                f"WHERE d.namespace = {self.P} ORDER BY d.id LIMIT {self.P} OFFSET {self.P}",
                (namespace, limit, offset),
            )
        return int(total), [
            {
                "id": r[0],
                "source": r[1],
                "title": r[2],
                "metadata": self._meta(r[3]),
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
        cond, params = compile_where(where, dialect=self.dialect)
        order = "DESC" if newest_first else "ASC"
        sql = (
            "SELECT d.id, d.doc_key, d.source, d.title, d.metadata, d.created_at, d.updated_at, "
            f"d.content_hash FROM documents d WHERE d.namespace = {self.P} AND {cond} "
            f"ORDER BY d.created_at {order}, d.id {order}"
        )
        args: list[Any] = [namespace, *params]
        if limit is not None:
            sql += f" LIMIT {self.P}"
            args.append(int(limit))
        chunks: dict[int, list[tuple]] = {}
        with self.snapshot():
            rows = self._all(sql, args)
            for c, p in self._in("document_id", [r[0] for r in rows]):
                for doc_id, *rest in self._all(
                    "SELECT document_id, id, position, text, start_char, end_char, content_hash "
                    f"FROM chunks WHERE {c} ORDER BY document_id, position",
                    p,
                ):
                    chunks.setdefault(doc_id, []).append(tuple(rest))
        return [
            {
                "id": key,
                "source": source,
                "title": title,
                "metadata": self._meta(meta),
                "created_at": created,
                "updated_at": updated,
                "content_hash": digest,
                "chunks": chunks.get(pk, []),
            }
            for pk, key, source, title, meta, created, updated, digest in rows
        ]

    def get_document(self, namespace: str, doc_key: str) -> dict[str, Any] | None:
        """One document with its chunks (``id``, ``position``, ``text``), or None."""
        with self.snapshot():
            rows = self._all(
                "SELECT id, doc_key, source, title, metadata, created_at, updated_at "
                f"FROM documents WHERE namespace = {self.P} AND doc_key = {self.P}",
                (namespace, doc_key),
            )
            if not rows:
                return None
            row = rows[0]
            chunks = self._all(
                "SELECT id, position, text FROM chunks "
                f"WHERE document_id = {self.P} ORDER BY position",
                (row[0],),
            )
        return {
            "id": row[1],
            "source": row[2],
            "title": row[3],
            "metadata": self._meta(row[4]),
            "created_at": row[5],
            "updated_at": row[6],
            "chunks": [{"id": c[0], "position": c[1], "text": c[2]} for c in chunks],
        }

    def text_sizes(self) -> dict[str, int]:
        """Characters of chunk text per namespace."""
        rows = self._all(
            "SELECT d.namespace, coalesce(sum(length(c.text)), 0) FROM chunks c "
            "JOIN documents d ON d.id = c.document_id GROUP BY d.namespace"
        )
        return {str(r[0]): int(r[1]) for r in rows}

    def audit(self, namespace: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        sql = "SELECT at, action, namespace, target, reason FROM audit"
        params: list[Any] = []
        if namespace is not None:
            sql += f" WHERE namespace = {self.P}"
            params.append(namespace)
        rows = self._all(sql + f" ORDER BY id DESC LIMIT {self.P}", (*params, limit))
        return [dict(zip(_AUDIT_KEYS, r, strict=True)) for r in rows]

    # -- deletes --------------------------------------------------------------------------
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
        if chunk_ids is None and doc_keys is None and not where and namespace is None:
            raise EngramError("delete needs document ids, a filter or a namespace")
        now = time.time()

        def work(conn: Any) -> int:
            if chunk_ids is not None:
                ids = self._ids(conn, "id", [int(i) for i in chunk_ids])
                targets = [(None, namespace or "", f"chunk:{i}") for i in ids]
            else:
                docs = self._doomed_documents(conn, namespace, doc_keys, where)
                ids = self._ids(conn, "document_id", [d[0] for d in docs])
                targets = [(d[0], d[1], d[2]) for d in docs]
            for c, p in self._in("id", ids):
                conn.execute(f"DELETE FROM chunks WHERE {c}", p)
            if chunk_ids is None:
                for c, p in self._in("id", [t[0] for t in targets]):
                    conn.execute(f"DELETE FROM documents WHERE {c}", p)
            self._log_changes(conn, "delete", ids, now)
            marks = ", ".join([self.P] * 5)
            self._executemany(
                conn,
                f"INSERT INTO audit(at, action, namespace, target, reason) VALUES ({marks})",
                [(now, action, ns, key, reason) for _, ns, key in targets],
            )
            return len(ids)

        return self._write_tx(work)

    def _ids(self, conn: Any, column: str, values: Sequence[int]) -> list[int]:
        """Sorted ids of the chunks whose ``column`` is among ``values``."""
        ids: list[int] = []
        for c, p in self._in(column, values):
            ids += [r[0] for r in conn.execute(f"SELECT id FROM chunks WHERE {c}", p).fetchall()]
        return sorted(ids)

    def _doomed_documents(
        self, conn: Any, namespace: str | None, doc_keys: Sequence[str] | None, where: Any
    ) -> list[tuple]:
        """``(id, namespace, doc_key)`` of the documents a delete removes, locked."""
        cond, params = compile_where(where, dialect=self.dialect)
        sql = "SELECT d.id, d.namespace, d.doc_key FROM documents d WHERE " + cond
        if namespace is not None:
            sql += f" AND d.namespace = {self.P}"
            params.append(namespace)
        if doc_keys is None:
            return conn.execute(sql + self._lock_rows, params).fetchall()
        docs: list[tuple] = []
        for c, p in self._in("d.doc_key", list(doc_keys), "text"):
            docs += conn.execute(f"{sql} AND {c}{self._lock_rows}", (*params, *p)).fetchall()
        return docs

    # -- changelog ------------------------------------------------------------------------
    def max_seq(self) -> int:
        return int(self._one("SELECT coalesce(max(seq), 0) FROM changes"))

    def changes_since(self, seq: int, limit: int = 10000) -> list[tuple[int, str, int]]:
        return [
            (int(s), op, int(c))
            for s, op, c in self._all(
                f"SELECT seq, op, chunk_id FROM changes WHERE seq > {self.P} "
                f"ORDER BY seq LIMIT {self.P}",
                (seq, limit),
            )
        ]

    def live_chunk_ids(self, upto: int | None = None) -> np.ndarray:
        """Sorted chunk ids the changelog says exist (added, not deleted), up to ``upto``."""
        cond = f"WHERE seq <= {int(upto)} " if upto is not None else ""
        rows = self._all(
            f"SELECT chunk_id FROM changes {cond}GROUP BY chunk_id "
            "HAVING sum(CASE WHEN op = 'add' THEN 1 ELSE -1 END) > 0"
        )
        return np.array(sorted(r[0] for r in rows), dtype=np.int64)

    def hit_rows(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        for c, p in self._in("c.id", [int(i) for i in ids]):
            for r in self._all(
                "SELECT c.id, c.text, d.doc_key, d.source, d.title, d.namespace, d.metadata, "
                f"d.created_at FROM chunks c JOIN documents d ON d.id = c.document_id WHERE {c}",
                p,
            ):
                out[r[0]] = {
                    "text": r[1],
                    "doc_id": r[2],
                    "source": r[3],
                    "title": r[4],
                    "namespace": r[5],
                    "metadata": self._meta(r[6]),
                    "created_at": r[7],
                }
        return out

    def allowed_ids(self, namespaces: Sequence[str] | None, where: dict | None) -> np.ndarray:
        """Sorted ids of the chunks that pass a namespace restriction and a filter."""
        cond, params = compile_where(where, dialect=self.dialect)
        sql = "SELECT c.id FROM documents d JOIN chunks c ON c.document_id = d.id WHERE " + cond
        if namespaces is not None:
            if not namespaces:
                return np.zeros(0, dtype=np.int64)
            (ns_cond, ns_params), *more = list(self._in("d.namespace", list(namespaces), "text"))
            if more:  # never: namespaces are few
                raise EngramError("too many namespaces in one search")
            sql += f" AND {ns_cond}"
            params += list(ns_params)
        rows = self._all(sql + " ORDER BY c.id", params)
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
