"""Bulk writes for the SQLite store: new documents, their chunks, vectors and changelog rows
in one statement per table instead of five statements per document.

SQLite allows one writer at a time, and every write here runs inside the store's immediate
(write-locking) transaction, so the next ids of ``documents`` and ``chunks`` are known before
the insert and are given explicitly. Each table's rows travel as one JSON array read by
``json_each`` (vectors as one blob cut by ``substr``): SQLite then inserts them all in one
call that runs without Python's global lock, so a bulk load can index one batch while the
store writes the next (``engram.ingest.bulk``). Timestamps stay bound parameters, never
JSON numbers, so they are stored bit for bit.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engram.identity import metadata_json
from engram.store.base import DocumentRow, Inserted, chunk_vectors

_JSON = json.JSONEncoder(ensure_ascii=False)  # texts stay text: a bad one fails at binding
_NUL = "\\u0000"  # how _JSON writes a NUL character


def next_id(conn: sqlite3.Connection, table: str) -> int:
    """The id the next row of ``table`` (an AUTOINCREMENT table) would get."""
    row = conn.execute(
        f"SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = ?), 0), "
        f"coalesce((SELECT max(id) FROM {table}), 0)) + 1",
        (table,),
    ).fetchone()
    return int(row[0])


def known_keys(conn: sqlite3.Connection, namespace: str, keys: Sequence[str]) -> set[str]:
    """Those of ``keys`` that name a stored document of ``namespace``."""
    sql = (
        "SELECT doc_key FROM documents WHERE namespace = ? "
        "AND doc_key IN (SELECT value FROM json_each(?))"
    )
    return {r[0] for r in conn.execute(sql, (namespace, _JSON.encode(list(keys))))}


@dataclass
class Batch:
    """A batch of new documents made ready for insertion outside the write transaction: the
    rows as JSON arrays with ids relative to the batch (the transaction adds the first id)."""

    keys: list[str]
    documents: str  # JSON [index, key, source, title, digest, metadata] of undated documents
    dated: list[tuple]  # (index, key, source, title, digest, metadata, created_at)
    chunks: str  # JSON [document index, position, text, start, end, content hash]
    vectors: np.ndarray  # one row per chunk
    sizes: list[int]  # chunks per document

    def has_nul(self) -> bool:
        """Whether a text holds a NUL character, which SQLite's JSON functions would cut the
        text at (such rows are written one by one, with bound parameters). One search of the
        JSON for its escape; a text holding a backslash and ``u0000`` matches too, harmlessly."""
        dated = ("".join(row[1:4]) for row in self.dated)
        return _NUL in self.documents or _NUL in self.chunks or any("\x00" in t for t in dated)

    @classmethod
    def of(cls, rows: Sequence[DocumentRow]) -> Batch:
        undated, dated, chunks = [], [], []
        for j, (doc, key, digest, records) in enumerate(rows):
            row = (j, key, doc.source, doc.title, digest, metadata_json(doc.metadata))
            if doc.created_at is None:
                undated.append(row)
            else:
                dated.append((*row, doc.created_at))
            chunks += [(j, *rec.columns()) for rec in records]
        return cls(
            keys=[row[1] for row in rows],
            documents=_JSON.encode(undated),
            dated=dated,
            chunks=_JSON.encode(chunks),
            vectors=chunk_vectors(rows).reshape(len(chunks), -1),
            sizes=[len(row[3]) for row in rows],
        )


def insert_documents(
    conn: sqlite3.Connection, namespace: str, batch: Batch, model: str, now: float
) -> Inserted:
    """Insert a batch of documents whose keys are new in ``namespace`` (the caller checked),
    with their chunks and vectors, and log the chunks; a result per document, in order."""
    doc0 = next_id(conn, "documents")
    columns = "id, namespace, doc_key, source, title, content_hash, metadata, created_at"
    conn.execute(  # documents without their own creation time get ``now``
        f"INSERT INTO documents({columns}, updated_at) SELECT ? + (value ->> 0), ?, "
        "value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, ?, ? "
        "FROM json_each(?)",
        (doc0, namespace, now, now, batch.documents),
    )
    conn.executemany(  # documents with their own creation time: few in a bulk load
        f"INSERT INTO documents({columns}, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
        [(doc0 + j, namespace, *rest, now) for j, *rest in batch.dated],
    )
    chunk0 = next_id(conn, "chunks")
    if len(batch.vectors):
        _insert_chunk_rows(conn, batch, doc0, chunk0, model, now)
    return Inserted(doc0, np.concatenate([[0], np.cumsum(batch.sizes)]) + chunk0)


def _insert_chunk_rows(
    conn: sqlite3.Connection, batch: Batch, doc0: int, chunk0: int, model: str, now: float
) -> None:
    """Chunks ``chunk0, chunk0 + 1, ...`` of documents ``doc0, ...``, with their vectors."""
    n, dim = batch.vectors.shape
    conn.execute(
        "INSERT INTO chunks(id, document_id, position, text, start_char, end_char, "
        "content_hash) SELECT ? + key, ? + (value ->> 0), value ->> 1, value ->> 2, "
        "value ->> 3, value ->> 4, value ->> 5 FROM json_each(?)",
        (chunk0, doc0, batch.chunks),
    )
    width = dim * 4
    conn.execute(
        "INSERT INTO vectors(chunk_id, model, dim, vector) SELECT ? + value, ?, ?, "
        "substr(?, value * ? + 1, ?) FROM json_each(?)",
        (chunk0, model, dim, batch.vectors.tobytes(), width, width, _range(n)),
    )
    conn.execute(
        "INSERT INTO changes(op, chunk_id, at) SELECT 'add', ? + value, ? FROM json_each(?) "
        "ORDER BY value",
        (chunk0, now, _range(n)),
    )


def _range(n: int) -> str:
    return _JSON.encode(list(range(n)))
