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

import numpy as np

from engram.identity import metadata_json
from engram.store.base import DocumentRow, WriteResult

_JSON = json.JSONEncoder(ensure_ascii=False)  # texts stay text: a bad one fails at binding


def has_nul(rows: Sequence[DocumentRow]) -> bool:
    """Whether a text of ``rows`` holds a NUL character, which SQLite's JSON functions would
    cut the text at (such rows are written one by one, with bound parameters)."""
    return any(
        "\x00" in "".join((key, doc.source, doc.title, *(r.chunk.text for r in chunks)))
        for doc, key, _, chunks in rows
    )


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


def insert_documents(
    conn: sqlite3.Connection,
    namespace: str,
    rows: Sequence[DocumentRow],
    model: str,
    now: float,
) -> list[WriteResult]:
    """Insert documents whose keys are new in ``namespace`` (the caller checked), with their
    chunks and vectors, and log the chunks; a result per row, in order."""
    doc0 = next_id(conn, "documents")
    _insert_document_rows(conn, namespace, rows, doc0, now)
    chunk0 = next_id(conn, "chunks")
    chunks: list[tuple] = []
    vectors: list[np.ndarray] = []
    results: list[WriteResult] = []
    for j, (_, _, _, records) in enumerate(rows):
        first = chunk0 + len(chunks)
        for rec in records:
            chunks.append((doc0 + j, *rec.columns()))
            vectors.append(rec.vector)
        results.append(WriteResult(doc0 + j, "added", list(range(first, chunk0 + len(chunks)))))
    if chunks:
        _insert_chunk_rows(conn, chunks, np.asarray(vectors, dtype=np.float32), chunk0, model, now)
    return results


def _insert_document_rows(
    conn: sqlite3.Connection,
    namespace: str,
    rows: Sequence[DocumentRow],
    doc0: int,
    now: float,
) -> None:
    """Documents ``doc0, doc0 + 1, ...``; those without their own creation time get ``now``."""
    columns = "id, namespace, doc_key, source, title, content_hash, metadata, created_at"
    undated = [
        (j, key, doc.source, doc.title, digest, metadata_json(doc.metadata))
        for j, (doc, key, digest, _) in enumerate(rows)
        if doc.created_at is None
    ]
    conn.execute(
        f"INSERT INTO documents({columns}, updated_at) SELECT ? + (value ->> 0), ?, "
        "value ->> 1, value ->> 2, value ->> 3, value ->> 4, value ->> 5, ?, ? "
        "FROM json_each(?)",
        (doc0, namespace, now, now, _JSON.encode(undated)),
    )
    conn.executemany(  # documents with their own creation time: few in a bulk load
        f"INSERT INTO documents({columns}, updated_at) VALUES (?,?,?,?,?,?,?,?,?)",
        [
            (doc0 + j, namespace, key, doc.source, doc.title, digest)
            + (metadata_json(doc.metadata), doc.created_at, now)
            for j, (doc, key, digest, _) in enumerate(rows)
            if doc.created_at is not None
        ],
    )


def _insert_chunk_rows(
    conn: sqlite3.Connection,
    chunks: list[tuple],
    vectors: np.ndarray,
    chunk0: int,
    model: str,
    now: float,
) -> None:
    """Chunks ``chunk0, chunk0 + 1, ...`` with their vectors (one row each of ``vectors``)."""
    if vectors.ndim != 2 or len(vectors) != len(chunks):
        raise ValueError(f"{len(chunks)} chunks but vectors of shape {vectors.shape}")
    conn.execute(
        "INSERT INTO chunks(id, document_id, position, text, start_char, end_char, "
        "content_hash) SELECT ? + key, value ->> 0, value ->> 1, value ->> 2, value ->> 3, "
        "value ->> 4, value ->> 5 FROM json_each(?)",
        (chunk0, _JSON.encode(chunks)),
    )
    width = vectors.shape[1] * 4
    conn.execute(
        "INSERT INTO vectors(chunk_id, model, dim, vector) SELECT ? + value, ?, ?, "
        "substr(?, value * ? + 1, ?) FROM json_each(?)",
        (chunk0, model, vectors.shape[1], vectors.tobytes(), width, width, _range(len(chunks))),
    )
    conn.execute(
        "INSERT INTO changes(op, chunk_id, at) SELECT 'add', ? + value, ? FROM json_each(?) "
        "ORDER BY value",
        (chunk0, now, _range(len(chunks))),
    )


def _range(n: int) -> str:
    return _JSON.encode(list(range(n)))
