"""The ``Store`` protocol: the one source of truth behind every index."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, overload

import numpy as np

from engram.types import Chunk, Document


@dataclass
class ChunkRecord:
    """A chunk ready to be written: its span, content hash and vector."""

    chunk: Chunk
    content_hash: str
    vector: np.ndarray

    def columns(self) -> tuple[int, str, int, int, str]:
        """``(position, text, start_char, end_char, content_hash)`` of table ``chunks``."""
        c = self.chunk
        return (c.position, c.text, c.start, c.end, self.content_hash)


@dataclass
class WriteResult:
    """What one document write did."""

    document_id: int
    status: str  # "added", "updated" or "unchanged"
    added: list[int] = field(default_factory=list)
    deleted: list[int] = field(default_factory=list)


DocumentRow = tuple[Document, str, str, Sequence[ChunkRecord]]  # document, key, digest, chunks


class Inserted(Sequence[WriteResult]):
    """The results of a bulk insert of new documents, made when read: document ``doc0 + j``
    was added with chunks ``starts[j]`` up to ``starts[j + 1]`` (ids given in order). A bulk
    load's indexes read the ids as ranges instead of one result object per document."""

    def __init__(self, doc0: int, starts: np.ndarray) -> None:
        self.doc0, self.starts = doc0, starts

    def __len__(self) -> int:
        return len(self.starts) - 1

    @overload
    def __getitem__(self, j: int) -> WriteResult: ...
    @overload
    def __getitem__(self, j: slice) -> list[WriteResult]: ...
    def __getitem__(self, j: int | slice) -> WriteResult | list[WriteResult]:
        if isinstance(j, slice):
            return [self[i] for i in range(*j.indices(len(self)))]
        j = j + len(self) if j < 0 else j
        if not 0 <= j < len(self):
            raise IndexError(j)
        chunks = list(range(int(self.starts[j]), int(self.starts[j + 1])))
        return WriteResult(self.doc0 + j, "added", chunks)

    def document_ids(self) -> np.ndarray:
        return np.arange(self.doc0, self.doc0 + len(self), dtype=np.int64)

    def chunk_ids(self) -> np.ndarray:
        return np.arange(self.starts[0], self.starts[-1], dtype=np.int64)

    def one_chunk_each(self) -> bool:
        return int(self.starts[-1] - self.starts[0]) == len(self)


class VectorBlock(list[DocumentRow]):
    """Rows of one chunk each whose vectors are the rows of ``vectors``, in order (a bulk load
    of given vectors): writers and indexes take the matrix whole instead of stacking the
    chunks' vectors again."""

    def __init__(self, rows: Sequence[DocumentRow], vectors: np.ndarray) -> None:
        super().__init__(rows)
        self.vectors = vectors


def chunk_vectors(rows: Sequence[DocumentRow]) -> np.ndarray:
    """The vectors of every chunk of ``rows``, in order, one matrix row each."""
    if isinstance(rows, VectorBlock):
        return rows.vectors
    return np.asarray([rec.vector for row in rows for rec in row[3]], dtype=np.float32)


# a document's title and its chunks (chunk id, start_char, end_char, text) in position order
DocumentChunks = tuple[str, list[tuple[int, int, int, str]]]


class Store(Protocol):
    """Documents, chunks, vectors, namespaces, settings, an audit trail and a numbered
    changelog: the one source of truth. ``open_store`` returns one (``SQLiteStore`` or
    ``PostgresStore``, both built on ``engram.store.sqlbase.SqlStore``)."""

    path: str
    kind: str  # "sqlite" or "postgresql"

    # -- lifecycle and settings -----------------------------------------------------------
    def close(self) -> None: ...
    def snapshot(self) -> AbstractContextManager[None]:
        """Reads of this thread inside the block see one state of the store."""
        ...

    def bulk_writes(self) -> AbstractContextManager[None]:
        """Large writes follow inside the block (a store may hold more in memory meanwhile)."""
        ...

    def checkpoint(self) -> None:
        """Bring what the store's log holds into its files (after bulk writes)."""
        ...

    def schema_version(self) -> int: ...
    def get_setting(self, key: str) -> str | None: ...
    def set_setting(self, key: str, value: str) -> None: ...
    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Rows of one read written with ``?`` placeholders (tables outside this protocol)."""
        ...

    def write(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One write written with ``?`` placeholders, in a transaction; rows changed."""
        ...

    # -- namespaces -----------------------------------------------------------------------
    def namespaces(self) -> list[dict[str, Any]]: ...
    def namespace_count(self) -> int: ...
    def namespace_exists(self, name: str) -> bool: ...
    def namespace_stats(self, namespace: str) -> dict[str, Any] | None: ...
    def drop_namespace(self, namespace: str, reason: str = "") -> int: ...

    # -- writes ---------------------------------------------------------------------------
    def document_hash(self, namespace: str, doc_key: str) -> str | None: ...
    def document_state(self, namespace: str, doc_key: str) -> tuple[int, str] | None: ...
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
    def prepare_documents(self, rows: Sequence[DocumentRow]) -> Any: ...
    def write_documents(
        self, namespace: str, rows: Sequence[DocumentRow], model: str, prepared: Any = None
    ) -> Sequence[WriteResult]: ...
    def append_chunks(
        self, doc_id: int, chunks: Sequence[ChunkRecord], model: str
    ) -> list[int]: ...
    def chunk_positions(self, doc_id: int) -> set[int]: ...
    def set_content_hash(self, doc_id: int, content_hash: str) -> None: ...
    def delete(
        self,
        namespace: str | None = None,
        doc_keys: Sequence[str] | None = None,
        where: dict | None = None,
        chunk_ids: Sequence[int] | None = None,
        reason: str = "",
        action: str = "delete",
    ) -> int: ...
    def purge(self) -> None: ...

    # -- changelog ------------------------------------------------------------------------
    def max_seq(self) -> int: ...
    def changes_since(self, seq: int, limit: int = 10000) -> list[tuple[int, str, int]]: ...
    def live_chunk_ids(self, upto: int | None = None) -> np.ndarray: ...

    # -- chunks ---------------------------------------------------------------------------
    def chunk_ids(self) -> np.ndarray: ...
    def count_chunks(self) -> int: ...
    def chunks_without_vector(self) -> int: ...
    def chunk_texts(self, ids: Sequence[int]) -> dict[int, str]: ...
    def chunk_vectors(self, ids: Sequence[int]) -> tuple[np.ndarray, np.ndarray]: ...
    def iter_chunks(self, batch: int = 5000) -> Iterator[list[tuple[int, str, np.ndarray]]]: ...
    def existing(self, ids: Sequence[int]) -> set[int]: ...
    def hit_rows(self, ids: Sequence[int]) -> dict[int, dict[str, Any]]: ...
    def chunk_documents(self, ids: Sequence[int]) -> dict[int, int]: ...
    def document_chunks(self, doc_ids: Sequence[int]) -> dict[int, DocumentChunks]: ...
    def iter_document_chunks(self, batch: int = 2000) -> Iterator[dict[int, DocumentChunks]]: ...
    def allowed_ids(self, namespaces: Sequence[str] | None, where: dict | None) -> np.ndarray: ...

    # -- documents ------------------------------------------------------------------------
    def count_documents(
        self, namespace: str, doc_keys: Sequence[str] | None = None, where: dict | None = None
    ) -> int: ...
    def list_documents(
        self, namespace: str, limit: int = 100, offset: int = 0
    ) -> tuple[int, list[dict[str, Any]]]: ...
    def select_documents(
        self,
        namespace: str,
        where: dict | None = None,
        *,
        newest_first: bool = False,
        limit: int | None = None,
    ) -> list[dict[str, Any]]: ...
    def get_document(self, namespace: str, doc_key: str) -> dict[str, Any] | None: ...
    def metadata_max(self, namespace: str, key: str, where: dict | None = None) -> float | None: ...
    def index_metadata(self, key: str) -> str | None: ...
    def metadata_indexes(self) -> list[str]: ...

    # -- reports --------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]: ...
    def integrity_check(self) -> str: ...
    def audit(self, namespace: str | None = None, limit: int = 100) -> list[dict[str, Any]]: ...
    def text_sizes(self) -> dict[str, int]: ...
