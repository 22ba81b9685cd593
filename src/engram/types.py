"""Typed records that flow between Engram's stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_NAMESPACE = "default"


@dataclass
class Document:
    """One unit of input: a file, a record, a conversation turn.

    ``id`` is the caller's stable key for the document (a path, a record id); re-adding a
    document with the same ``id`` and changed text replaces it, with the same text does nothing.
    ``created_at`` dates a memory (a conversation turn's time); recency and time filters use it.
    """

    text: str
    id: str | None = None
    source: str = ""
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float | None = None  # seconds since the epoch; default: when it is stored


@dataclass
class Chunk:
    """A span of a document's text that is embedded and indexed on its own."""

    text: str
    position: int
    start: int = 0
    end: int = 0


@dataclass
class Hit:
    """One recalled chunk with its scores from every stage (``scores``) for explanation."""

    id: int
    text: str
    score: float
    doc_id: str = ""
    source: str = ""
    title: str = ""
    namespace: str = "default"
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    scores: dict[str, float] = field(default_factory=dict)
    vector: Any = None  # numpy array, when the caller asked for it (clustering)

    def to_dict(self, with_scores: bool = True) -> dict[str, Any]:
        out = {
            "id": self.id,
            "score": self.score,
            "text": self.text,
            "doc_id": self.doc_id,
            "source": self.source,
            "title": self.title,
            "namespace": self.namespace,
            "metadata": self.metadata,
            "created_at": self.created_at,
        }
        if with_scores:
            out["scores"] = self.scores
        return out
