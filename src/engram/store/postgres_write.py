"""Writes of the PostgreSQL store: one document at a time, and many at once by ``COPY``.

Every function runs inside the caller's transaction (``PostgresStore._retrying``) and logs
each chunk added or deleted in the ``changes`` table, which derived indexes follow.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import psycopg

from engram.identity import metadata_json
from engram.store.base import ChunkRecord, WriteResult
from engram.store.sqlbase import Row
from engram.types import Document


def log_changes(conn: psycopg.Connection, op: str, ids: Sequence[int], now: float) -> None:
    if ids:
        conn.execute(
            "INSERT INTO changes(op, chunk_id, at) SELECT %s, i, %s "
            "FROM unnest(%s::bigint[]) WITH ORDINALITY AS t(i, o) ORDER BY o",
            (op, now, list(ids)),
        )


def insert_chunks(
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
                [(cid, doc_id, *rec.columns()) for cid, rec in zip(added, chunks, strict=True)],
            )
            vectors = [np.ascontiguousarray(rec.vector, dtype=np.float32) for rec in chunks]
            cur.executemany(
                "INSERT INTO vectors(chunk_id, model, dim, embedding) VALUES (%s, %s, %s, %s)",
                [
                    (cid, model, int(vec.shape[0]), vec)
                    for cid, vec in zip(added, vectors, strict=True)
                ],
            )
        log_changes(conn, "add", added, now)
    return added


def write_many(
    conn: psycopg.Connection, namespace: str, rows: Sequence[Row], model: str, now: float
) -> list[WriteResult | None]:
    """Write many documents with distinct keys in a few statements and COPYs; a result per
    row, None for a key another writer inserted since (write that one by one)."""
    conn.execute(
        "INSERT INTO namespaces(name, created_at) VALUES (%s, %s) ON CONFLICT (name) DO NOTHING",
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
    changed = []
    for j, (_, key, digest, _) in enumerate(rows):
        if key in found and found[key][1] == digest:
            results[j] = WriteResult(found[key][0], "unchanged")
        else:
            changed.append(j)
    metas = {j: _meta(rows[j][0]) for j in changed}
    updates = [j for j in changed if keys[j] in found]
    for j, result in _update_documents(conn, rows, updates, found, metas, now).items():
        results[j] = result
    inserts = [j for j in changed if keys[j] not in found]
    for j, result in _insert_documents(conn, namespace, rows, inserts, metas, now).items():
        results[j] = result
    pending = [(j, r) for j in changed if (r := results[j]) is not None]
    _copy_chunks(conn, rows, pending, model, now)
    return results  # None: a key another writer inserted since the select


def _meta(doc: Document) -> str:
    return metadata_json(doc.metadata)


def _update_documents(
    conn: psycopg.Connection,
    rows: Sequence[Row],
    updates: list[int],
    found: dict[str, tuple[int, str]],
    metas: dict[int, str],
    now: float,
) -> dict[int, WriteResult]:
    """Replace the stored documents ``rows[j]`` (j in ``updates``): their chunks go."""
    if not updates:
        return {}
    ids = [found[rows[j][1]][0] for j in updates]
    deleted: dict[int, list[int]] = {}
    for doc_id, cid in conn.execute(
        "DELETE FROM chunks WHERE document_id = ANY(%s::bigint[]) RETURNING document_id, id",
        (ids,),
    ).fetchall():
        deleted.setdefault(doc_id, []).append(cid)
    log_changes(conn, "delete", sorted(c for v in deleted.values() for c in v), now)
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
    return {
        j: WriteResult(doc_id, "updated", [], sorted(deleted.get(doc_id, [])))
        for j, doc_id in zip(updates, ids, strict=True)
    }


def _insert_documents(
    conn: psycopg.Connection,
    namespace: str,
    rows: Sequence[Row],
    inserts: list[int],
    metas: dict[int, str],
    now: float,
) -> dict[int, WriteResult]:
    """Insert the new documents ``rows[j]`` (j in ``inserts``); a key another writer
    inserted meanwhile is left out (no result)."""
    if not inserts:
        return {}
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
                [rows[j][1] for j in inserts],
                [rows[j][0].source for j in inserts],
                [rows[j][0].title for j in inserts],
                [rows[j][2] for j in inserts],
                [metas[j] for j in inserts],
                [rows[j][0].created_at for j in inserts],
            ),
        ).fetchall()
    )
    return {j: WriteResult(new_ids[rows[j][1]], "added") for j in inserts if rows[j][1] in new_ids}


def _copy_chunks(
    conn: psycopg.Connection,
    rows: Sequence[Row],
    pending: list[tuple[int, WriteResult]],
    model: str,
    now: float,
) -> None:
    """Chunks and vectors of every added or updated document, by ``COPY`` (binary vectors);
    their new ids are appended to each result's ``added``."""
    n_chunks = sum(len(rows[j][3]) for j, _ in pending)
    if not n_chunks:
        return
    chunk_ids = [
        r[0]
        for r in conn.execute(
            "SELECT nextval(pg_get_serial_sequence('chunks', 'id')) FROM generate_series(1, %s)",
            (n_chunks,),
        ).fetchall()
    ]
    it = iter(chunk_ids)
    with conn.cursor() as cur:
        with cur.copy(
            "COPY chunks(id, document_id, position, text, start_char, end_char, content_hash) "
            "FROM STDIN"
        ) as copy:
            for j, result in pending:
                for rec in rows[j][3]:
                    cid = next(it)
                    result.added.append(cid)
                    copy.write_row((cid, result.document_id, *rec.columns()))
        # Binary: a vector goes as its float32 bytes, not as 384 numbers printed in Python.
        with cur.copy(
            "COPY vectors(chunk_id, model, dim, embedding) FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["int8", "text", "int4", "vector"])
            for j, result in pending:
                for cid, rec in zip(result.added, rows[j][3], strict=True):
                    vec = np.ascontiguousarray(rec.vector, dtype=np.float32)
                    copy.write_row((cid, model, int(vec.shape[0]), vec))
    log_changes(conn, "add", chunk_ids, now)
