"""The ``Store`` protocol: the one source of truth behind every index."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from engram.types import Chunk, Document


@dataclass
class ChunkRecord:
    """A chunk ready to be written: its span, content hash and vector."""

    chunk: Chunk
    content_hash: str
    vector: np.ndarray


@dataclass
class WriteResult:
    """What one document write did."""

    document_id: int
    status: str  # "added", "updated" or "unchanged"
    added: list[int] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)


class Store(Protocol):
    """Documents, chunks, vectors, namespaces and a numbered changelog."""

    path: str

    def close(self) -> None: ...
    def get_setting(self, key: str) -> str | None: ...
    def set_setting(self, key: str, value: str) -> None: ...
    def namespaces(self) -> list[dict[str, Any]]: ...
    def namespace_exists(self, name: str) -> bool: ...
    def document_hash(self, namespace: str, doc_key: str) -> str | None: ...
    def vectors_for_hashes(self, hashes: Sequence[str], model: str) -> dict[str, np.ndarray]: ...
    def write_document(
        self,
        namespace: str,
        doc: Document,
        doc_key: str,
        content_hash: str,
        chunks: Sequence[ChunkRecord],
        model: str,
        created_at: float | None = None,
    ) -> WriteResult: ...
    def delete(
        self,
        namespace: str | None = None,
        doc_keys: Sequence[str] | None = None,
        where: dict | None = None,
        chunk_ids: Sequence[int] | None = None,
        reason: str = "",
    ) -> int: ...
    def max_seq(self) -> int: ...
    def changes_since(self, seq: int, limit: int = 10000) -> list[tuple[int, str, int]]: ...
    def chunk_texts(self, ids: Sequence[int]) -> dict[int, str]: ...
    def chunk_vectors(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]: ...
    def iter_chunks(self, batch: int = 5000) -> Iterator[list[tuple[int, str, np.ndarray]]]: ...
    def existing(self, ids: Sequence[int]) -> set[int]: ...
    def hit_rows(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]: ...
    def allowed_ids(self, namespaces: Sequence[str] | None, where: dict | None) -> np.ndarray: ...
    def stats(self) -> dict[str, Any]: ...
    def integrity_check(self) -> str: ...
    def select_documents(
        self,
        namespace: str,
        where: dict | None = None,
        *,
        newest_first: bool = False,
        limit: int | None = None,
    ) -> list[dict[str, Any]]: ...
    def metadata_max(self, namespace: str, key: str, where: dict | None = None) -> float | None: ...
    def purge(self) -> None: ...
    def index_metadata(self, key: str) -> str | None: ...
