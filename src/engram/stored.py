"""Whole documents as stored (text, metadata, times, chunks), read back through the
``Memory`` facade, so agents, export and evaluation work on SQLite and PostgreSQL alike.

A neutral module: agents, ``export`` and ``evaluate.locomo`` import it; it imports none of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from engram.memory import Memory


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

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> StoredDocument:
        """From a row of the store's ``select_documents``."""
        return cls(
            row["id"],
            row["source"],
            row["title"],
            row["metadata"],
            row["created_at"],
            row["updated_at"],
            row["content_hash"],
            [StoredChunk(*c) for c in row["chunks"]],
        )

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
    yield from memory.documents(namespace, where, newest_first=newest_first, limit=limit)


def chunk_vectors(memory: Memory, chunk_ids: list[int]) -> dict[int, np.ndarray]:
    """Stored vectors of these chunks."""
    return memory.chunk_vectors(chunk_ids)


def latest_time(memory: Memory, namespace: str) -> float | None:
    """``created_at`` of the newest memory in ``namespace`` (None when it is empty)."""
    docs = memory.documents(namespace, newest_first=True, limit=1)
    return docs[0].created_at if docs else None


def max_turn(memory: Memory, namespace: str) -> int | None:
    """The highest ``metadata.turn`` of the conversation turns in ``namespace``."""
    value = memory.metadata_max(namespace, "turn", {"kind": "turn"})
    return None if value is None else int(value)
