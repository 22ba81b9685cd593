"""Whole documents of a namespace read back from the store (text, metadata, times, chunks).

The only module of ``engram.agents`` that reads the store with SQL (SQLite).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engram.memory import Memory
from engram.store.filters import compile_where, parse_where


@dataclass
class StoredChunk:
    id: int
    position: int
    text: str
    start: int
    end: int
    content_hash: str


@dataclass
class StoredDocument:
    """A document as stored: its key, text (rebuilt from its chunks), metadata and times."""

    key: str
    source: str
    title: str
    metadata: dict[str, Any]
    created_at: float
    updated_at: float
    content_hash: str
    chunks: list[StoredChunk] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The text rebuilt from chunk offsets; a gap between chunks becomes a space or a
        paragraph break (the store keeps chunks, not the raw text)."""
        out: list[str] = []
        end = None
        for c in sorted(self.chunks, key=lambda c: c.start):
            if end is None:
                out.append(c.text)
            elif c.start >= end:
                gap = c.start - end
                out.append((" " if gap < 2 else "\n\n") + c.text)
            else:  # overlapping chunks: keep only the new part
                out.append(c.text[end - c.start :])
            end = c.end if end is None else max(end, c.end)
        return "".join(out)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.key,
            "text": self.text,
            "source": self.source,
            "title": self.title,
            "metadata": self.metadata,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


def iter_documents(
    memory: Memory,
    namespace: str,
    where: Any = None,
    *,
    newest_first: bool = False,
    limit: int | None = None,
) -> Iterator[StoredDocument]:
    """Documents of ``namespace`` matching ``where``, oldest first by ``created_at``."""
    cond, params = compile_where(parse_where(where))
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
    conn = memory.store.conn
    rows = conn.execute(sql, args).fetchall()
    for start in range(0, len(rows), 500):
        part = rows[start : start + 500]
        chunks: dict[int, list[StoredChunk]] = {}
        marks = ",".join("?" * len(part))
        for doc_id, *rest in conn.execute(
            "SELECT document_id, id, position, text, start_char, end_char, content_hash "
            f"FROM chunks WHERE document_id IN ({marks}) ORDER BY document_id, position",
            [r[0] for r in part],
        ):
            chunks.setdefault(doc_id, []).append(StoredChunk(*rest))
        for doc_id, key, source, title, meta, created, updated, digest in part:
            yield StoredDocument(
                key,
                source,
                title,
                json.loads(meta),
                created,
                updated,
                digest,
                chunks.get(doc_id, []),
            )


def chunk_vectors(memory: Memory, chunk_ids: list[int]) -> dict[int, np.ndarray]:
    """Stored vectors of these chunks."""
    ids, mat = memory.store.chunk_vectors(chunk_ids)
    return {int(i): mat[n] for n, i in enumerate(ids)}


def latest_time(memory: Memory, namespace: str) -> float | None:
    """``created_at`` of the newest memory in ``namespace`` (None when it is empty)."""
    row = memory.store.conn.execute(
        "SELECT max(created_at) FROM documents WHERE namespace=?", (namespace,)
    ).fetchone()
    return row[0]


def max_turn(memory: Memory, namespace: str) -> int | None:
    """The highest ``metadata.turn`` of the conversation turns in ``namespace``."""
    row = memory.store.conn.execute(
        "SELECT max(CAST(json_extract(metadata, '$.turn') AS INTEGER)) FROM documents "
        "WHERE namespace=? AND json_extract(metadata, '$.kind')='turn'",
        (namespace,),
    ).fetchone()
    return None if row[0] is None else int(row[0])
