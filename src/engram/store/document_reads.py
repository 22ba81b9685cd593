"""Reads of whole documents as their chunks, for the document-level keyword index
(``engram.index.documents``); part of ``SqlStore``, written once for both dialects."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from engram.store.base import DocumentChunks


class DocumentReads:
    """Chunk -> document lookups and documents read as ``(title, chunks)``."""

    P = "?"

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        raise NotImplementedError

    def _in(self, column: str, values: Sequence[Any], kind: str = "bigint") -> Iterator[tuple]:
        raise NotImplementedError

    def chunk_documents(self, ids: Sequence[int]) -> dict[int, int]:
        """The document (its row id) of each chunk among ``ids`` that still exists."""
        out: dict[int, int] = {}
        for c, p in self._in("id", [int(i) for i in ids]):
            out.update(self._all(f"SELECT id, document_id FROM chunks WHERE {c}", p))
        return out

    def document_chunks(self, doc_ids: Sequence[int]) -> dict[int, DocumentChunks]:
        """Per document among ``doc_ids`` that still has chunks: its title and its chunks
        ``(chunk id, start_char, end_char, text)`` in position order."""
        titles: dict[int, str] = {}
        for c, p in self._in("id", [int(i) for i in doc_ids]):
            titles.update(self._all(f"SELECT id, title FROM documents WHERE {c}", p))
        out: dict[int, DocumentChunks] = {}
        for c, p in self._in("document_id", list(titles)):
            for r in self._all(
                "SELECT document_id, id, start_char, end_char, text FROM chunks "
                f"WHERE {c} ORDER BY document_id, position, id",
                p,
            ):
                out.setdefault(r[0], (titles[r[0]], []))[1].append((r[1], r[2], r[3], r[4]))
        return out

    def iter_document_chunks(self, batch: int = 2000) -> Iterator[dict[int, DocumentChunks]]:
        """``document_chunks`` of every document, in batches of documents (for rebuilds)."""
        last = 0
        while True:
            ids = [
                r[0]
                for r in self._all(
                    f"SELECT id FROM documents WHERE id > {self.P} ORDER BY id LIMIT {self.P}",
                    (last, batch),
                )
            ]
            if not ids:
                return
            yield self.document_chunks(ids)
            last = ids[-1]
