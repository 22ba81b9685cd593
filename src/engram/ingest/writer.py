"""Writing documents into a store: chunk, reuse or compute vectors, commit in batches.

``Memory.add_documents`` hands its documents to a ``DocumentWriter``. Small documents are
embedded ``embed_batch`` chunks at a time and committed one document per transaction; a
document of many chunks is written in bounded batches that an interrupted add resumes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from engram.config import Config
from engram.embed import Embedder
from engram.errors import EmbeddingMismatchError, IngestError
from engram.identity import content_hash, document_hashes, document_identity
from engram.ingest.chunking import chunk_text
from engram.ingest.report import AddReport
from engram.store.base import ChunkRecord, VectorBlock
from engram.types import Chunk, Document

Pending = tuple[Document, str, str, list[Chunk]]  # document, key, digest, chunks


class DocumentWriter:
    """Writes documents of one ``namespace`` with ``emb``, counting into ``report``.

    ``bar`` (a tqdm bar or None) moves as chunks are embedded; ``created_at`` dates documents
    that carry no time of their own.
    """

    def __init__(
        self,
        store: Any,
        namespace: str,
        emb: Embedder,
        config: Config,
        report: AddReport,
        bar: Any = None,
        created_at: float | None = None,
    ):
        self.store, self.namespace, self.emb, self.config = store, namespace, emb, config
        self.report, self.bar, self.created_at = report, bar, created_at
        self.limit = max(8, min(config.chunk_tokens, emb.max_tokens - 2))
        self.overlap = min(config.chunk_overlap, self.limit // 2)

    @property
    def commit_chunks(self) -> int:
        """Chunks per transaction when a large document is written in batches."""
        return max(4 * self.config.embed_batch, 16)

    def write(self, docs: Iterable[Document], metadata: dict[str, Any] | None = None) -> None:
        """Store ``docs`` (``metadata`` under each one's own); unchanged ones are skipped
        without embedding. On bad input the documents read before it are kept, then the
        error is raised."""
        pending: list[Pending] = []
        n_pending = 0
        try:
            for doc in docs:
                item = self._prepare(doc, metadata)
                if item is None:
                    continue
                if len(item[3]) > self.commit_chunks:  # a large file: bounded batches
                    self._flush(pending)
                    pending, n_pending = [], 0
                    self._write_large(item)
                    continue
                pending.append(item)
                n_pending += len(item[3])
                if n_pending >= self.config.embed_batch:
                    self._flush(pending)
                    pending, n_pending = [], 0
        except IngestError:
            self._flush(pending)
            raise
        self._flush(pending)

    def _prepare(self, doc: Document, metadata: dict[str, Any] | None) -> Pending | None:
        """The document keyed and chunked, or None (counted) when empty or unchanged."""
        if metadata:
            doc.metadata = {**metadata, **doc.metadata}
        if not doc.text or not doc.text.strip():
            self.report.empty += 1
            return None
        key, digest = document_identity(doc)
        if self.store.document_hash(self.namespace, key) == digest:
            self.report.unchanged += 1
            return None
        chunks = chunk_text(
            doc.text,
            max_tokens=self.limit,
            overlap=self.overlap,
            count_tokens=self.emb.count_tokens,
        )
        if not chunks:
            self.report.empty += 1
            return None
        if self.bar is not None:
            self.bar.total += len(chunks)  # known once chunked, before any embedding
            self.bar.refresh()
        return doc, key, digest, chunks

    def _when(self, doc: Document) -> float | None:
        return doc.created_at if doc.created_at is not None else self.created_at

    def records(self, chunks: Sequence[Chunk]) -> list[ChunkRecord]:
        """Chunks with vectors: stored ones reused, the rest embedded ``embed_batch`` at a
        time (the progress bar moves after each batch)."""
        emb, bar = self.emb, self.bar
        hashes = [content_hash(c.text) for c in chunks]
        cached = self.store.vectors_for_hashes(hashes, emb.model_id)
        todo = list(dict.fromkeys(h for h in hashes if h not in cached))
        texts = dict(zip(hashes, (c.text for c in chunks), strict=True))
        step = max(1, self.config.embed_batch)
        for start in range(0, len(todo), step):
            part = todo[start : start + step]
            vecs = emb.embed([texts[h] for h in part])
            if vecs.shape != (len(part), emb.dim):
                raise EmbeddingMismatchError(
                    f"embedder {emb.model_id} returned vectors of shape {vecs.shape}, "
                    f"expected ({len(part)}, {emb.dim})"
                )
            cached.update(zip(part, vecs, strict=True))
            self.report.embedded += len(part)
            if bar is not None:
                bar.update(len(part))
        if bar is not None:
            bar.update(len(chunks) - len(todo))  # reused vectors and repeated chunks
        return [ChunkRecord(c, h, cached[h]) for c, h in zip(chunks, hashes, strict=True)]

    def _flush(self, pending: list[Pending]) -> None:
        if not pending:
            return
        records = iter(self.records([c for *_, cs in pending for c in cs]))
        for doc, key, digest, chunks in pending:
            result = self.store.write_document(
                self.namespace,
                doc,
                key,
                digest,
                [next(records) for _ in chunks],
                self.emb.model_id,
                created_at=self._when(doc),
            )
            self.report.count(result.status)
            self.report.chunks += len(result.added)

    def _write_large(self, item: Pending) -> None:
        """Write a document of many chunks in transactions of ``commit_chunks`` chunks, so
        memory stays bounded and progress is committed as it goes. Until the last batch the
        stored document's hash is a ``partial:`` marker: an interrupted add of the same text
        resumes after the chunks already stored; the final hash marks it complete."""
        doc, key, digest, chunks = item
        marker = "partial:" + content_hash(
            digest, self.emb.model_id, f"{self.limit}/{self.overlap}"
        )
        state = self.store.document_state(self.namespace, key)
        doc_id = state[0] if state is not None and state[1] == marker else None
        done = self.store.chunk_positions(doc_id) if doc_id is not None else set()
        status = "updated" if state is not None and doc_id is None else "added"
        step = self.commit_chunks
        for start in range(0, len(chunks), step):
            batch = [c for c in chunks[start : start + step] if c.position not in done]
            if self.bar is not None:
                self.bar.update(min(step, len(chunks) - start) - len(batch))  # stored before
            if not batch:
                continue
            records = self.records(batch)
            if doc_id is None:
                result = self.store.write_document(
                    self.namespace,
                    doc,
                    key,
                    marker,
                    records,
                    self.emb.model_id,
                    created_at=self._when(doc),
                )
                doc_id, added = result.document_id, result.added
            else:
                added = self.store.append_chunks(doc_id, records, self.emb.model_id)
            self.report.chunks += len(added)
        self.store.set_content_hash(doc_id, digest)
        self.report.count(status)


Row = tuple[Document, str, str, list[ChunkRecord]]  # document, key, digest, its chunks


def vector_rows(
    docs: Sequence[Document], vectors: np.ndarray, emb: Embedder, batch: int
) -> Iterator[VectorBlock]:
    """Rows of ``batch`` documents for ``Store.write_documents``: one chunk per document with
    its given vector (nothing chunked or embedded); the shape is checked first."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.shape != (len(docs), emb.dim):
        raise EmbeddingMismatchError(
            f"vectors have shape {vectors.shape}, expected ({len(docs)}, {emb.dim})"
        )
    for start in range(0, len(docs), batch):
        rows: list[Row] = []
        block = vectors[start : start + batch]
        for doc, vec in zip(docs[start : start + batch], block, strict=True):
            key, digest, text_hash = document_hashes(doc)
            chunk = Chunk(doc.text, 0, 0, len(doc.text))
            rows.append((doc, key, digest, [ChunkRecord(chunk, text_hash, vec)]))
        yield VectorBlock(rows, block)
