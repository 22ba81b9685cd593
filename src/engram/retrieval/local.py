"""The ``local`` retrieval backend: derived keyword and vector index files.

The indexes are files (by default ``<store>.index/`` beside a SQLite store) that catch up
from the store's changelog (``sync``) and are rebuilt from a consistent snapshot of it
(``Store.snapshot``) when missing, damaged or replaced. The index internals live in
``engram.index`` (segments, BM25, flat and HNSW vectors).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from itertools import compress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engram.config import Config
from engram.embed.base import default_threads
from engram.errors import EmbeddingMismatchError, EngramError
from engram.index.base import SegmentedIndex
from engram.index.documents import DocumentIndex, Ids
from engram.index.keyword import Counted, KeywordIndex
from engram.index.postings import MetadataPostings
from engram.index.vector import FlatVectorIndex
from engram.index.wordpool import WordPool, WordPoolError
from engram.retrieval.base import EVERYTHING, NOTHING, Candidates, Scope, net_changes
from engram.store.base import (
    ChunkRecord,
    DocumentRow,
    Inserted,
    Store,
    WriteResult,
    chunk_vectors,
)
from engram.types import DEFAULT_NAMESPACE

if TYPE_CHECKING:
    from engram.index.cutting import Cut


log = logging.getLogger(__name__)


class LocalRetrieval:
    """The keyword and vector indexes of one store, kept in ``directory`` (default
    ``<store>.index/``; a server store has no file beside it, so it needs one named)."""

    name = "local"

    def __init__(
        self, store: Store, config: Config, load: bool = True, directory: str | None = None
    ):
        self.store, self.config = store, config
        if directory is None and store.kind != "sqlite":
            raise EngramError(
                f"local index files for {store.path} need a folder: use the retrieval URL "
                "local:DIR (or leave the retrieval out to search inside the database)"
            )
        index_dir = Path(directory or store.path + ".index")
        self.keyword_index = KeywordIndex(
            index_dir / "keyword", k1=config.bm25_k1, b=config.bm25_b, language=config.language
        )
        dim = store.get_setting("embedding_dim")
        self.vector_index = FlatVectorIndex(
            index_dir / "vector",
            dim=int(dim) if dim else None,
            ann=config.ann,
            ann_threshold=config.ann_threshold,
            exact_filter_max=config.exact_filter_max,
            hnsw_m=config.hnsw_m,
            hnsw_ef_construction=config.hnsw_ef_construction,
            hnsw_ef_search=config.hnsw_ef_search,
            threads=config.threads or default_threads(),
            ivf_nprobe=config.ivf_nprobe,
            ivf_nlist=config.ivf_nlist,
        )
        self.postings = MetadataPostings(store)
        self._words: WordPool | None = None  # during a bulk load (``bulk_load``)
        self._unsaved = 0
        self._index_dir = index_dir
        # BM25 over whole documents: made when keyword_scope asks for it (or on first use),
        # and kept current from then on once its folder exists
        self.document_index: DocumentIndex | None = None
        if config.keyword_scope != "chunk" or (index_dir / "document").is_dir():
            self.document_index = self._document_index()
        for index in self.indexes if load else ():
            index.load()
        self._repair = [i for i in self.indexes if i.damaged]  # saved once rebuilt

    @property
    def indexes(self) -> list[SegmentedIndex]:
        extra = [self.document_index] if self.document_index is not None else []
        return [self.keyword_index, self.vector_index, *extra]

    def _document_index(self) -> DocumentIndex:
        c = self.config
        return DocumentIndex(
            self._index_dir / "document", k1=c.bm25_k1, b=c.bm25_b, language=c.language
        )

    def set_dim(self, dim: int) -> None:
        self.vector_index.dim = dim

    # -- queries --------------------------------------------------------------------------
    def scope(self, namespaces: Sequence[str] | None, where: dict | None) -> Scope:
        """Resolved to the sorted ids of the chunks allowed (none: everything)."""
        only_default = namespaces is not None and list(namespaces) == [DEFAULT_NAMESPACE]
        if only_default and self.store.namespace_count() <= 1:
            namespaces = None  # the only namespace: no condition to check per row
        if not where and namespaces is None:
            return EVERYTHING
        allowed = self.postings.lookup(where) if namespaces is None else None
        if allowed is None:
            allowed = self.store.allowed_ids(namespaces, where)
        if not len(allowed):
            return NOTHING
        names = tuple(namespaces) if namespaces is not None else None
        return Scope(names, where, resolved=allowed)

    def keyword(self, query: str, n: int, scope: Scope) -> Candidates:
        return self.keyword_index.search(query, n, scope.resolved)

    def document_keyword(
        self, query: str, n: int, scope: Scope, title_weight: float = 0.0
    ) -> Candidates:
        """The chunks of the top ``n`` documents by BM25 of the whole document's text (plus
        ``title_weight`` times BM25 of its title), in scope: each chunk scores its
        document's score; a document's chunks follow one another in id order."""
        index = self.document_index
        if index is None:  # first use: built (or loaded) and caught up now
            index = self.document_index = self._document_index()
            if not index.load() and index.damaged:
                self._repair.append(index)
            self.sync()
        allowed = scope.resolved if isinstance(scope.resolved, np.ndarray) else None
        ranked = index.search_documents(query, n, index.allowed_rows(allowed), title_weight)
        groups = [(score, index.chunks_of_row(row, allowed)) for row, score in ranked]
        return self._within_documents(query, groups)

    def _within_documents(self, query: str, groups: list[tuple[float, np.ndarray]]) -> Candidates:
        """Each document's chunks with its score, ordered within it by their own BM25: a
        chunk gains at most a millionth of the score, so documents keep their order. (A
        document of one chunk has nothing to order: its chunk keeps the document's score.)"""
        several = [c for _, c in groups if len(c) > 1]
        ids = np.unique(np.concatenate(several)) if several else np.zeros(0, dtype=np.int64)
        own = (
            dict(self.keyword_index.search(query, len(ids), ids.astype(np.int64)))
            if several
            else {}
        )
        out: Candidates = []
        for score, chunks in groups:
            if len(chunks) == 1:
                out.append((int(chunks[0]), score))
                continue
            mine = [(int(c), own.get(int(c), 0.0)) for c in chunks]
            best = max((s for _, s in mine), default=0.0) or 1.0
            mine.sort(key=lambda x: (-x[1], x[0]))
            out.extend((cid, score * (1.0 + 1e-6 * s / best)) for cid, s in mine)
        return out

    def vector(self, vector: np.ndarray, n: int, scope: Scope) -> Candidates:
        return self.vector_index.search(vector, n, scope.resolved)

    def vectors_for(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        return self.vector_index.vectors_for(ids)

    def stats(self) -> dict[str, Any]:
        return {
            i.kind: {"rows": i.size(), "deleted": len(i.deleted), "last_change": i.last_seq}
            for i in self.indexes
        }

    # -- upkeep ---------------------------------------------------------------------------
    def save(self) -> None:
        """Save every index. A failed save (a full disk) is logged, not raised: the store is
        the truth, the last saved files stay valid, and the index catches up on next open."""
        self.close_word_pool()
        for index in self.indexes:
            self._save_one(index)
        self._unsaved = 0

    @staticmethod
    def _save_one(index: SegmentedIndex) -> None:
        try:
            index.save()
        except OSError as exc:
            log.warning(
                "%s index not saved (%s); it catches up from the store on the next open",
                index.kind,
                exc.strerror or exc,
            )

    def sync(self, autosave: bool = True) -> int:
        """Bring every index up to the store's changelog; returns changes applied. With
        ``autosave``, save once ``save_every_changes`` changes are unsaved."""
        applied = 0
        head = self.store.max_seq()
        for index in self.indexes:
            if index.last_seq > head:  # the store was replaced under the index
                index.reset()
            if index.last_seq == 0 and head > 0 and index.size() == 0:
                applied += self._rebuild(index)
                continue
            while index.last_seq < head:
                changes = self.store.changes_since(index.last_seq, limit=20_000)
                if not changes:
                    break
                self._apply(index, changes)
                applied += len(changes)
        self._unsaved += applied
        while self._repair:
            self._save_one(self._repair.pop())
        if autosave and self._unsaved >= self.config.save_every_changes:
            self.save()
        return applied

    def _apply(self, index: SegmentedIndex, changes: list[tuple[int, str, int]]) -> None:
        ids, removed = net_changes(changes)
        if isinstance(index, DocumentIndex):  # every document a changed chunk belongs to
            docs = set(index.documents_of(removed).tolist())
            docs.update(self.store.chunk_documents(ids).values())
            index.drop_documents(docs)
            index.add_documents(self.store.document_chunks(sorted(docs)))
            ids = []
        else:
            index.remove(removed)
        if ids:
            if isinstance(index, KeywordIndex):
                texts = self.store.chunk_texts(ids)
                index.add([(i, texts[i], None) for i in ids if i in texts])
            else:
                self._add_vectors(*self.store.chunk_vectors(ids))
        self._applied(index, changes[-1][0])

    @contextmanager
    def bulk_load(self, word_pool: bool = False) -> Iterator[None]:
        """Vectors added inside the block stay in memory until the next save or search (one
        segment, no merges of growing segments meanwhile: a bulk load copies each vector
        once instead of about log2(rows / 50,000) times). With ``word_pool`` a worker
        process cuts the texts of batches given to ``cut_words`` meanwhile."""
        rows = self.vector_index.memtable_rows
        self.vector_index.memtable_rows = sys.maxsize
        if self._words is not None and (not word_pool or self._words.full()):
            self.close_word_pool()
        if word_pool and self._words is None:
            self._words = _word_pool(self.keyword_index.language)
            for index in self._keyword_indexes():
                index.hold_merges()  # until the pool closes: see close_word_pool
        try:
            yield
        except BaseException:
            self.close_word_pool()  # batches it was given may not have been taken
            raise
        finally:
            self.vector_index.memtable_rows = rows

    def close_word_pool(self) -> None:
        """End a run of bulk loads: stop the word worker, if one is running, and merge the
        keyword segments they froze. The worker outlives a load, so the next one
        (``Memory.import_vectors`` called block by block) neither starts a process nor
        analyses its words again; ``save``, ``optimize`` and ``close`` stop it."""
        if self._words is not None:
            self._words.close()
            self._words = None
        for index in self._keyword_indexes():
            index.release_merges()

    def _keyword_indexes(self) -> list[KeywordIndex]:
        return [i for i in (self.keyword_index, self.document_index) if i is not None]

    def cut_words(self, rows: Sequence[DocumentRow]) -> Future[tuple] | None:
        """Start cutting the chunk texts of ``rows`` into words in the worker (``bulk_load``
        with a word pool); hand the result to ``index_written`` with the same rows."""
        if self._words is None:
            return None
        return self._words.submit([rec.chunk.text for row in rows for rec in row[3]])

    def index_written(
        self,
        rows: Sequence[DocumentRow],
        results: Sequence[WriteResult],
        head: int,
        words: Future[tuple] | None = None,
    ) -> bool:
        """Index one write from memory, its chunks' texts and vectors as given (nothing read
        back), when the changelog up to ``head`` holds that write's changes and nothing else
        the indexes lack. Returns False, having done nothing, otherwise (``sync`` then).
        ``words``: the rows' texts cut by ``cut_words`` (taken even when nothing is done)."""
        cut = self._take(words)
        if isinstance(results, Inserted):  # new documents only: their ids are ranges
            ids, removed = results.chunk_ids(), []
        else:
            ids = np.array([cid for r in results for cid in r.added], dtype=np.int64)
            removed = [cid for r in results for cid in r.deleted]
        changed = len(ids) + len(removed)
        if any(index.last_seq != head - changed for index in self.indexes) or (
            removed and set(removed) & set(ids.tolist())  # a key twice in the batch
        ):
            return False
        written = _written_chunks(rows, results)
        if len(ids) != int(written.sum()):
            raise EngramError("a write's chunk ids do not match its rows")
        self.keyword_index.remove(removed)
        self.vector_index.remove(removed)
        if cut is not None:
            cut = cut.of_texts(written)
            self.keyword_index.add_counted(ids, *self._counted(self.keyword_index, cut))
        else:
            texts = compress((rec.chunk.text for row in rows for rec in row[3]), written)
            self.keyword_index.add([(int(c), t, None) for c, t in zip(ids, texts, strict=True)])
        if len(ids):
            vectors = chunk_vectors(rows)
            self._add_vectors(ids, vectors if written.all() else vectors[written])
        if self.document_index is not None:
            self._documents_written(rows, results, cut)
        for index in self.indexes:
            self._applied(index, head)
        self._unsaved += changed
        return True

    def _take(self, words: Future[tuple] | None) -> Cut | None:
        """The counted terms of a batch given to ``cut_words``; None without a word pool (or
        once it failed: the texts are cut here then)."""
        if words is None or self._words is None:
            return None
        try:
            return self._words.take(words)
        except WordPoolError as exc:
            log.warning("%s; the bulk load goes on without it", exc)
            self.close_word_pool()
            return None

    def _counted(self, index: KeywordIndex, cut: Cut) -> Counted:
        """``cut``'s counted terms in ``index``'s vocabulary, for ``add_counted``."""
        assert self._words is not None  # a cut comes from the word pool
        return cut.lengths, cut.cols, self._words.term_ids(index, cut.terms), cut.tfs

    def _documents_written(
        self, rows: Sequence[DocumentRow], results: Sequence[WriteResult], cut: Cut | None
    ) -> None:
        """The document index takes a write from memory: documents replaced leave, every
        document written comes in as a new row (documents of one chunk reuse its counted terms,
        ``cut``, already cut down to the chunks written)."""
        index = self.document_index
        assert index is not None
        if not isinstance(results, Inserted):  # an insert replaces nothing
            index.drop_documents([r.document_id for r in results if r.deleted])
        if cut is not None and (single := _one_chunk_documents(rows, results)) is not None:
            index.add_single_chunks(*single, self._counted(index, cut))  # the chunk's terms
            return
        written = [(row, r) for row, r in zip(rows, results, strict=True) if r.added]
        index.add_documents(
            {r.document_id: (row[0].title, _spans(r.added, row[3])) for row, r in written}
        )

    def _add_vectors(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Rows ``ids`` with ``vectors`` (a matrix, one row each) into the vector index."""
        if len(ids):
            self._check_dim({vectors.shape[1]})
            self.vector_index.add_block(ids, vectors)

    def _applied(self, index: SegmentedIndex, seq: int) -> None:
        """``index`` holds the changes up to ``seq``; compacted if too much of it is deleted."""
        index.last_seq = seq
        index.dirty = True
        if index.deleted_share() > self.config.compact_deleted_share and index.size() > 1000:
            self._rebuild(index)

    def _check_dim(self, dims: set[int]) -> None:
        """The vectors about to be indexed have the index's dimension (the first sets it)."""
        index = self.vector_index
        for dim in dims:
            if index.dim is None:
                index.dim = dim
            elif dim != index.dim:
                raise EmbeddingMismatchError(
                    f"store holds {dim}-dim vectors, index expects {index.dim}"
                )

    def _rebuild(self, index: SegmentedIndex) -> int:
        """Rebuild one index from a consistent snapshot of the store; returns chunks read."""
        index.reset()
        n = 0
        with self.store.snapshot():
            head = self.store.max_seq()
            if isinstance(index, DocumentIndex):
                for docs in self.store.iter_document_chunks():
                    index.add_documents(docs)
                    n += sum(len(chunks) for _, chunks in docs.values())
            else:
                for rows in self.store.iter_chunks():
                    if index is self.vector_index:
                        self._check_dim({len(r[2]) for r in rows})
                    index.add(rows)
                    n += len(rows)
        index.last_seq = head
        index.dirty = True
        index.freeze()
        return n

    def rebuild_and_save(self, index: SegmentedIndex) -> int:
        """Rebuild one index from the store and save it; returns chunks indexed."""
        n = self._rebuild(index)
        index.save()
        return n

    def optimize(self) -> dict[str, Any]:
        """Build or extend the inverted lists over every row now, then save. The result
        names the time spent merging keyword segments left by bulk loads (``keyword_merge_s``)."""
        start = time.perf_counter()
        self.close_word_pool()
        merged = time.perf_counter() - start
        self.sync(autosave=False)
        v = self.vector_index
        built = v.ann != "exact" and v.ann != "hnsw" and v.build_ivf(force=v.ivf is None)
        self.save()
        return {
            "keyword_merge_s": round(merged, 3),
            "vector_rows": v.size(),
            "in_lists": len(v.ivf) if v.ivf is not None else 0,
            "searched_exactly": v.tail_rows() if v.ivf is not None else v.size(),
            "built": bool(built),
        }

    def close(self) -> None:
        """Stop the word worker, if any; nothing else is held open (the index files are
        memory-mapped or read on load)."""
        self.close_word_pool()

    def reindex(self) -> dict[str, int]:
        """Rebuild both indexes from the store and save them."""
        counts = {}
        for index in self.indexes:
            counts[index.kind] = self._rebuild(index)
            index.save()
        return counts


def _written_chunks(rows: Sequence[DocumentRow], results: Sequence[WriteResult]) -> np.ndarray:
    """A mask over every chunk of ``rows``: those of the documents written (not kept)."""
    if isinstance(results, Inserted):
        return np.ones(int(results.starts[-1] - results.starts[0]), dtype=bool)
    return np.repeat([bool(r.added) for r in results], [len(row[3]) for row in rows])


def _one_chunk_documents(
    rows: Sequence[DocumentRow], results: Sequence[WriteResult]
) -> tuple[Ids, Ids, list[str]] | None:
    """``(document ids, chunk ids, titles)`` of the documents a write added, when each has
    one chunk (and appears once); None otherwise."""
    if isinstance(results, Inserted):  # new documents, their ids as ranges
        if not results.one_chunk_each():
            return None
        return results.document_ids(), results.chunk_ids(), [row[0].title for row in rows]
    written = [(row, r) for row, r in zip(rows, results, strict=True) if r.added]
    doc_ids = [r.document_id for _, r in written]
    if len(set(doc_ids)) < len(doc_ids) or any(len(row[3]) != 1 for row, _ in written):
        return None
    return doc_ids, [r.added[0] for _, r in written], [row[0].title for row, _ in written]


def _spans(ids: list[int], records: Sequence[ChunkRecord]) -> list[tuple[int, int, int, str]]:
    """``(chunk id, start, end, text)`` of a document's chunks, as the document index reads."""
    return [
        (c, r.chunk.start, r.chunk.end, r.chunk.text) for c, r in zip(ids, records, strict=True)
    ]


def _word_pool(language: str) -> WordPool | None:
    """A word worker for a bulk load, or None (the texts are cut here) if none can start."""
    try:
        return WordPool(language)
    except OSError as exc:
        log.warning("no word worker (%s); the bulk load cuts words itself", exc)
        return None
