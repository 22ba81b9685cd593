"""SQLite store: one file in WAL mode, numbered migrations, a changelog for derived indexes."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from engram.errors import EngramError, StoreNotFoundError
from engram.store.base import ChunkRecord, WriteResult
from engram.store.filters import compile_where, json_path_literal, metadata_path
from engram.types import Document

_BATCH = 900  # stay under SQLite's parameter limit


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


class SQLiteStore:
    """The embedded store. Safe for one writer and many readers across processes."""

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

    def get_setting(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM settings WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO settings(key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                (key, value),
            )

    # -- namespaces -----------------------------------------------------------------------
    def namespaces(self) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT n.name, n.created_at, "
            "(SELECT count(*) FROM documents d WHERE d.namespace=n.name), "
            "(SELECT count(*) FROM chunks c JOIN documents d ON d.id=c.document_id "
            " WHERE d.namespace=n.name) FROM namespaces n ORDER BY n.name"
        ).fetchall()
        return [{"name": r[0], "created_at": r[1], "documents": r[2], "chunks": r[3]} for r in rows]

    def namespace_count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM namespaces").fetchone()[0]

    def namespace_exists(self, name: str) -> bool:
        return bool(self.conn.execute("SELECT 1 FROM namespaces WHERE name=?", (name,)).fetchone())

    # -- writes ---------------------------------------------------------------------------
    def document_hash(self, namespace: str, doc_key: str) -> str | None:
        row = self.conn.execute(
            "SELECT content_hash FROM documents WHERE namespace=? AND doc_key=?",
            (namespace, doc_key),
        ).fetchone()
        return row[0] if row else None

    def vectors_for_hashes(self, hashes: Sequence[str], model: str) -> dict[str, np.ndarray]:
        """Stored vectors of chunks with these content hashes (an embedding cache)."""
        out: dict[str, np.ndarray] = {}
        for part in _chunks(list(set(hashes))):
            marks = ",".join("?" * len(part))
            for h, blob in self.conn.execute(
                f"SELECT c.content_hash, v.vector FROM chunks c JOIN vectors v ON v.chunk_id=c.id "
                f"WHERE v.model=? AND c.content_hash IN ({marks})",
                (model, *part),
            ):
                out[h] = np.frombuffer(blob, dtype=np.float32)
        return out

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
        with self.transaction() as conn:
            return self._write(
                conn, namespace, doc, doc_key, content_hash, chunks, model, created_at, time.time()
            )

    def write_documents(
        self,
        namespace: str,
        rows: Sequence[tuple[Document, str, str, Sequence[ChunkRecord]]],
        model: str,
    ) -> int:
        """Write many documents in one transaction (bulk loads); returns those changed."""
        now = time.time()
        with self.transaction() as conn:
            results = [
                self._write(conn, namespace, doc, key, digest, chunks, model, doc.created_at, now)
                for doc, key, digest, chunks in rows
            ]
        return sum(r.status != "unchanged" for r in results)

    def _write(
        self,
        conn: sqlite3.Connection,
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
            "INSERT OR IGNORE INTO namespaces(name, created_at) VALUES (?, ?)", (namespace, now)
        )
        row = conn.execute(
            "SELECT id, content_hash FROM documents WHERE namespace=? AND doc_key=?",
            (namespace, doc_key),
        ).fetchone()
        deleted: list[int] = []
        if row and row[1] == content_hash:
            return WriteResult(row[0], "unchanged")
        if row:
            doc_id = row[0]
            deleted = [
                r[0] for r in conn.execute("SELECT id FROM chunks WHERE document_id=?", (doc_id,))
            ]
            conn.execute("DELETE FROM chunks WHERE document_id=?", (doc_id,))
            conn.executemany(
                "INSERT INTO changes(op, chunk_id, at) VALUES ('delete', ?, ?)",
                [(i, now) for i in deleted],
            )
            conn.execute(
                "UPDATE documents SET source=?, title=?, content_hash=?, metadata=?, "
                "updated_at=? WHERE id=?",
                (doc.source, doc.title, content_hash, meta, now, doc_id),
            )
            status = "updated"
        else:
            doc_id = conn.execute(
                "INSERT INTO documents(namespace, doc_key, source, title, content_hash, "
                "metadata, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?)",
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
            ).lastrowid
            status = "added"
        added = self._insert_chunks(conn, doc_id, chunks, model, now)
        return WriteResult(doc_id, status, added, deleted)

    @staticmethod
    def _insert_chunks(
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
                (
                    doc_id,
                    rec.chunk.position,
                    rec.chunk.text,
                    rec.chunk.start,
                    rec.chunk.end,
                    rec.content_hash,
                ),
            ).lastrowid
            conn.execute(
                "INSERT INTO vectors(chunk_id, model, dim, vector) VALUES (?,?,?,?)",
                (cid, model, int(vec.shape[0]), vec.tobytes()),
            )
            added.append(cid)
        conn.executemany(
            "INSERT INTO changes(op, chunk_id, at) VALUES ('add', ?, ?)",
            [(i, now) for i in added],
        )
        return added

    def document_state(self, namespace: str, doc_key: str) -> tuple[int, str] | None:
        """``(id, content_hash)`` of a document, or None."""
        row = self.conn.execute(
            "SELECT id, content_hash FROM documents WHERE namespace=? AND doc_key=?",
            (namespace, doc_key),
        ).fetchone()
        return (row[0], row[1]) if row else None

    def chunk_positions(self, doc_id: int) -> set[int]:
        rows = self.conn.execute("SELECT position FROM chunks WHERE document_id=?", (doc_id,))
        return {r[0] for r in rows}

    def append_chunks(self, doc_id: int, chunks: Sequence[ChunkRecord], model: str) -> list[int]:
        """Add chunks to a stored document in one transaction (large documents are written in
        bounded batches); returns the new chunk ids."""
        with self.transaction() as conn:
            return self._insert_chunks(conn, doc_id, chunks, model, time.time())

    def set_content_hash(self, doc_id: int, content_hash: str) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE documents SET content_hash=? WHERE id=?", (content_hash, doc_id))

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
        cond, params = compile_where(where)
        sql = "SELECT d.id, d.namespace, d.doc_key FROM documents d WHERE " + cond
        if namespace is not None:
            sql += " AND d.namespace=?"
            params.append(namespace)
        with self.transaction() as conn:
            if chunk_ids is not None:
                ids = []
                for part in _chunks(list(chunk_ids)):
                    marks = ",".join("?" * len(part))
                    ids += [
                        r[0]
                        for r in conn.execute(f"SELECT id FROM chunks WHERE id IN ({marks})", part)
                    ]
                targets = [(None, namespace or "", f"chunk:{i}") for i in ids]
            else:
                if doc_keys is not None:
                    keys = list(doc_keys)
                    docs = []
                    for part in _chunks(keys):
                        marks = ",".join("?" * len(part))
                        docs += conn.execute(
                            sql + f" AND d.doc_key IN ({marks})", (*params, *part)
                        ).fetchall()
                elif where or namespace is not None:
                    docs = conn.execute(sql, params).fetchall()
                else:
                    raise EngramError("delete needs document ids, a filter or a namespace")
                doc_ids = [d[0] for d in docs]
                ids = []
                for part in _chunks(doc_ids):
                    marks = ",".join("?" * len(part))
                    ids += [
                        r[0]
                        for r in conn.execute(
                            f"SELECT id FROM chunks WHERE document_id IN ({marks})", part
                        )
                    ]
                targets = [(d[0], d[1], d[2]) for d in docs]
            for part in _chunks(ids):
                marks = ",".join("?" * len(part))
                conn.execute(f"DELETE FROM chunks WHERE id IN ({marks})", part)
            if chunk_ids is None:
                for part in _chunks([t[0] for t in targets]):
                    marks = ",".join("?" * len(part))
                    conn.execute(f"DELETE FROM documents WHERE id IN ({marks})", part)
            conn.executemany(
                "INSERT INTO changes(op, chunk_id, at) VALUES ('delete', ?, ?)",
                [(i, now) for i in ids],
            )
            conn.executemany(
                "INSERT INTO audit(at, action, namespace, target, reason) VALUES (?,?,?,?,?)",
                [(now, action, ns, key, reason) for _, ns, key in targets],
            )
        return len(ids)

    def drop_namespace(self, namespace: str, reason: str = "") -> int:
        n = self.delete(namespace=namespace, reason=reason)
        with self.transaction() as conn:
            conn.execute("DELETE FROM namespaces WHERE name=?", (namespace,))
        return n

    # -- changelog ------------------------------------------------------------------------
    def max_seq(self) -> int:
        return self.conn.execute("SELECT coalesce(max(seq), 0) FROM changes").fetchone()[0]

    def changes_since(self, seq: int, limit: int = 10000) -> list[tuple[int, str, int]]:
        return self.conn.execute(
            "SELECT seq, op, chunk_id FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit),
        ).fetchall()

    # -- reads ----------------------------------------------------------------------------
    def chunk_texts(self, ids: Sequence[int]) -> dict[int, str]:
        out: dict[int, str] = {}
        for part in _chunks(list(ids)):
            marks = ",".join("?" * len(part))
            out.update(
                self.conn.execute(
                    f"SELECT id, text FROM chunks WHERE id IN ({marks})", part
                ).fetchall()
            )
        return out

    def chunk_vectors(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, matrix)`` of the chunks among ``ids`` that still exist, in id order."""
        rows: list[tuple[int, bytes]] = []
        for part in _chunks(list(ids)):
            marks = ",".join("?" * len(part))
            rows += self.conn.execute(
                f"SELECT chunk_id, vector FROM vectors WHERE chunk_id IN ({marks})", part
            ).fetchall()
        rows.sort()
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, 0), dtype=np.float32)
        mat = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
        return np.array([r[0] for r in rows], dtype=np.int64), mat

    def iter_chunks(self, batch: int = 5000) -> Iterator[list[tuple[int, str, np.ndarray]]]:
        """Every chunk with its text and vector, in id order, in batches (for rebuilds)."""
        last = 0
        while True:
            rows = self.conn.execute(
                "SELECT c.id, c.text, v.vector FROM chunks c JOIN vectors v ON v.chunk_id=c.id "
                "WHERE c.id > ? ORDER BY c.id LIMIT ?",
                (last, batch),
            ).fetchall()
            if not rows:
                return
            yield [(r[0], r[1], np.frombuffer(r[2], dtype=np.float32)) for r in rows]
            last = rows[-1][0]

    def existing(self, ids: Sequence[int]) -> set[int]:
        out: set[int] = set()
        for part in _chunks(list(ids)):
            marks = ",".join("?" * len(part))
            out.update(
                r[0]
                for r in self.conn.execute(f"SELECT id FROM chunks WHERE id IN ({marks})", part)
            )
        return out

    def hit_rows(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        for part in _chunks(list(ids)):
            marks = ",".join("?" * len(part))
            for r in self.conn.execute(
                "SELECT c.id, c.text, d.doc_key, d.source, d.title, d.namespace, d.metadata, "
                f"d.created_at FROM chunks c JOIN documents d ON d.id=c.document_id "
                f"WHERE c.id IN ({marks})",
                part,
            ):
                out[r[0]] = {
                    "text": r[1],
                    "doc_id": r[2],
                    "source": r[3],
                    "title": r[4],
                    "namespace": r[5],
                    "metadata": json.loads(r[6]),
                    "created_at": r[7],
                }
        return out

    def allowed_ids(self, namespaces: Sequence[str] | None, where: dict | None) -> np.ndarray:
        """Sorted ids of the chunks that pass a namespace restriction and a filter."""
        cond, params = compile_where(where)
        sql = "SELECT c.id FROM documents d JOIN chunks c ON c.document_id=d.id WHERE " + cond
        if namespaces is not None:
            sql += f" AND d.namespace IN ({','.join('?' * len(namespaces))})"
            params += list(namespaces)
        rows = self.conn.execute(sql + " ORDER BY c.id", params).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def count_chunks(self) -> int:
        return self.conn.execute("SELECT count(*) FROM chunks").fetchone()[0]

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

    def audit(self, namespace: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        sql = "SELECT at, action, namespace, target, reason FROM audit"
        params: list[Any] = []
        if namespace is not None:
            sql += " WHERE namespace=?"
            params.append(namespace)
        rows = self.conn.execute(sql + " ORDER BY id DESC LIMIT ?", (*params, limit)).fetchall()
        keys = ("at", "action", "namespace", "target", "reason")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    # -- documents for the server ---------------------------------------------------------
    def namespace_stats(self, namespace: str) -> dict[str, Any] | None:
        """Creation time, document and chunk counts, last update of a namespace (or None)."""
        row = self.conn.execute(
            "SELECT n.created_at, "
            "(SELECT count(*) FROM documents d WHERE d.namespace=n.name), "
            "(SELECT count(*) FROM chunks c JOIN documents d ON d.id=c.document_id "
            " WHERE d.namespace=n.name), "
            "(SELECT max(d.updated_at) FROM documents d WHERE d.namespace=n.name) "
            "FROM namespaces n WHERE n.name=?",
            (namespace,),
        ).fetchone()
        if row is None:
            return None
        return {"created_at": row[0], "documents": row[1], "chunks": row[2], "updated_at": row[3]}

    def count_documents(
        self,
        namespace: str,
        doc_keys: Sequence[str] | None = None,
        where: dict | None = None,
    ) -> int:
        """Documents in ``namespace`` that match ``where`` (and have one of ``doc_keys``)."""
        cond, params = compile_where(where)
        sql = "SELECT count(*) FROM documents d WHERE " + cond + " AND d.namespace=?"
        params.append(namespace)
        if doc_keys is not None:
            keys = list(dict.fromkeys(doc_keys))
            if not keys:
                return 0
            total = 0
            for part in _chunks(keys):
                marks = ",".join("?" * len(part))
                total += self.conn.execute(
                    sql + f" AND d.doc_key IN ({marks})", (*params, *part)
                ).fetchone()[0]
            return total
        return self.conn.execute(sql, params).fetchone()[0]

    def list_documents(
        self, namespace: str, limit: int = 100, offset: int = 0
    ) -> tuple[int, list[dict[str, Any]]]:
        """``(total, documents)``: documents of ``namespace`` in insertion order, a page."""
        with self.lock:
            total = self.conn.execute(
                "SELECT count(*) FROM documents WHERE namespace=?", (namespace,)
            ).fetchone()[0]
            rows = self.conn.execute(
                "SELECT d.doc_key, d.source, d.title, d.metadata, d.created_at, d.updated_at, "
                "(SELECT count(*) FROM chunks c WHERE c.document_id=d.id) "
                "FROM documents d WHERE d.namespace=? ORDER BY d.id LIMIT ? OFFSET ?",
                (namespace, limit, offset),
            ).fetchall()
        return total, [
            {
                "id": r[0],
                "source": r[1],
                "title": r[2],
                "metadata": json.loads(r[3]),
                "created_at": r[4],
                "updated_at": r[5],
                "chunks": r[6],
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
        cond, params = compile_where(where)
        order = "DESC" if newest_first else "ASC"
        sql = (
            "SELECT d.id, d.doc_key, d.source, d.title, d.metadata, d.created_at, d.updated_at, "
            f"d.content_hash FROM documents d WHERE d.namespace=? AND {cond} "
            f"ORDER BY d.created_at {order}, d.id {order}"
        )
        args: list[Any] = [namespace, *params]
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        with self.lock:
            rows = self.conn.execute(sql, args).fetchall()
            chunks: dict[int, list[tuple]] = {}
            for part in _chunks([r[0] for r in rows]):
                marks = ",".join("?" * len(part))
                for doc_id, *rest in self.conn.execute(
                    "SELECT document_id, id, position, text, start_char, end_char, content_hash "
                    f"FROM chunks WHERE document_id IN ({marks}) ORDER BY document_id, position",
                    part,
                ):
                    chunks.setdefault(doc_id, []).append(tuple(rest))
        return [
            {
                "id": key,
                "source": source,
                "title": title,
                "metadata": json.loads(meta),
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
        name = "meta_" + "".join(c if c.isalnum() or c == "_" else "_" for c in key)
        if not key.replace("_", "").isalnum():  # "a.b" and "a_b" must not share a name
            name += "_" + hashlib.sha1(key.encode()).hexdigest()[:8]
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

    def get_document(self, namespace: str, doc_key: str) -> dict[str, Any] | None:
        """One document with its chunks (``id``, ``position``, ``text``), or None."""
        with self.lock:
            row = self.conn.execute(
                "SELECT id, doc_key, source, title, metadata, created_at, updated_at "
                "FROM documents WHERE namespace=? AND doc_key=?",
                (namespace, doc_key),
            ).fetchone()
            if row is None:
                return None
            chunks = self.conn.execute(
                "SELECT id, position, text FROM chunks WHERE document_id=? ORDER BY position",
                (row[0],),
            ).fetchall()
        return {
            "id": row[1],
            "source": row[2],
            "title": row[3],
            "metadata": json.loads(row[4]),
            "created_at": row[5],
            "updated_at": row[6],
            "chunks": [{"id": c[0], "position": c[1], "text": c[2]} for c in chunks],
        }
