"""Whole documents of a namespace read back from the store (text, metadata, times, chunks).

Read through the store's own methods, so agents work on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engram.memory import Memory
from engram.store.filters import parse_where


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
    for row in memory.store.select_documents(
        namespace, parse_where(where), newest_first=newest_first, limit=limit
    ):
        yield StoredDocument(
            row["id"],
            row["source"],
            row["title"],
            row["metadata"],
            row["created_at"],
            row["updated_at"],
            row["content_hash"],
            [StoredChunk(*c) for c in row["chunks"]],
        )


def chunk_vectors(memory: Memory, chunk_ids: list[int]) -> dict[int, np.ndarray]:
    """Stored vectors of these chunks."""
    ids, mat = memory.store.chunk_vectors(chunk_ids)
    return {int(i): mat[n] for n, i in enumerate(ids)}


def latest_time(memory: Memory, namespace: str) -> float | None:
    """``created_at`` of the newest memory in ``namespace`` (None when it is empty)."""
    rows = memory.store.select_documents(namespace, newest_first=True, limit=1)
    return rows[0]["created_at"] if rows else None


def max_turn(memory: Memory, namespace: str) -> int | None:
    """The highest ``metadata.turn`` of the conversation turns in ``namespace``."""
    value = memory.store.metadata_max(namespace, "turn", {"kind": "turn"})
    return None if value is None else int(value)
