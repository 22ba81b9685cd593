"""The ``local`` retrieval backend: derived keyword and vector index files.

The indexes are files (by default ``<store>.index/`` beside a SQLite store) that catch up
from the store's changelog (``sync``) and are rebuilt from a consistent snapshot of it
(``Store.snapshot``) when missing, damaged or replaced. The index internals live in
``engram.index`` (segments, BM25, flat and HNSW vectors).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engram.config import Config
from engram.embed.base import default_threads
from engram.errors import EmbeddingMismatchError, EngramError
from engram.index.base import SegmentedIndex
from engram.index.keyword import KeywordIndex
from engram.index.postings import MetadataPostings
from engram.index.vector import FlatVectorIndex
from engram.index.wordpool import WordPool, WordPoolError
from engram.retrieval.base import EVERYTHING, NOTHING, Candidates, Scope, net_changes
from engram.store.base import DocumentRow, Store, WriteResult
from engram.types import DEFAULT_NAMESPACE

if TYPE_CHECKING:
    from engram.index.wordworker import Cut


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
        for index in self.indexes if load else ():
            index.load()
        self._repair = [i for i in self.indexes if i.damaged]  # saved once rebuilt

    @property
    def indexes(self) -> list[SegmentedIndex]:
        return [self.keyword_index, self.vector_index]

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
        index.remove(removed)
        if ids:
            if isinstance(index, KeywordIndex):
                texts = self.store.chunk_texts(ids)
                index.add([(i, texts[i], None) for i in ids if i in texts])
            else:
                found, mat = self.store.chunk_vectors(ids)
                self._add_vectors([(int(i), "", v) for i, v in zip(found, mat, strict=True)])
        self._applied(index, changes[-1][0])

    @contextmanager
    def bulk_load(self, word_pool: bool = False) -> Iterator[None]:
        """Vectors added inside the block stay in memory until the next save or search (one
        segment, no merges of growing segments meanwhile: a bulk load copies each vector
        once instead of about log2(rows / 50,000) times). With ``word_pool`` a worker
        process cuts the texts of batches given to ``cut_words`` meanwhile."""
        rows = self.vector_index.memtable_rows
        self.vector_index.memtable_rows = sys.maxsize
        self._words = WordPool() if word_pool else None
        try:
            yield
        finally:
            self.vector_index.memtable_rows = rows
            if self._words is not None:
                self._words.close()
                self._words = None

    def cut_words(self, rows: Sequence[DocumentRow]) -> Future[Cut] | None:
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
        words: Future[Cut] | None = None,
    ) -> bool:
        """Index one write from memory, its chunks' texts and vectors as given (nothing read
        back), when the changelog up to ``head`` holds that write's changes and nothing else
        the indexes lack. Returns False, having done nothing, otherwise (``sync`` then).
        ``words``: the rows' texts cut by ``cut_words`` (taken even when nothing is done)."""
        terms = self._cut_terms(words)
        changed = sum(len(r.added) + len(r.deleted) for r in results)
        if any(index.last_seq != head - changed for index in self.indexes):
            return False
        removed = [cid for r in results for cid in r.deleted]
        added = [
            (cid, rec)
            for (_, _, _, chunks), r in zip(rows, results, strict=True)
            if r.added  # an unchanged document adds nothing
            for cid, rec in zip(r.added, chunks, strict=True)
        ]
        self.keyword_index.remove(removed)
        self.vector_index.remove(removed)
        if terms is not None:
            self._add_cut(rows, results, [cid for cid, _ in added], *terms)
        else:
            self.keyword_index.add([(cid, rec.chunk.text, None) for cid, rec in added])
        if added:
            self._add_vectors([(cid, "", rec.vector) for cid, rec in added])
        for index in self.indexes:
            self._applied(index, head)
        self._unsaved += changed
        return True

    def _cut_terms(self, words: Future[Cut] | None) -> tuple[np.ndarray, np.ndarray] | None:
        if words is None or self._words is None:
            return None
        try:
            return self._words.term_ids(words, self.keyword_index)
        except WordPoolError as exc:  # the texts are cut here instead from now on
            log.warning("%s; the bulk load goes on without it", exc)
            self._words.close()
            self._words = None
            return None

    def _add_cut(
        self,
        rows: Sequence[DocumentRow],
        results: Sequence[WriteResult],
        ids: list[int],
        counts: np.ndarray,
        tids: np.ndarray,
    ) -> None:
        """Add the chunks of the documents written (not those kept unchanged) from the term
        ids of every chunk of ``rows``."""
        written = np.repeat([bool(r.added) for r in results], [len(row[3]) for row in rows])
        if not written.all():
            tids, counts = tids[np.repeat(written, counts)], counts[written]
        self.keyword_index.add_terms(ids, counts, tids)

    def _add_vectors(self, rows: list[tuple[int, str, np.ndarray]]) -> None:
        self._check_dim({len(v) for _, _, v in rows})
        self.vector_index.add(rows)

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
        """Rebuild one index from a consistent snapshot of the store."""
        index.reset()
        n = 0
        with self.store.snapshot():
            head = self.store.max_seq()
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
        """Build or extend the inverted lists over every row now, then save."""
        self.sync(autosave=False)
        v = self.vector_index
        built = v.ann != "exact" and v.ann != "hnsw" and v.build_ivf(force=v.ivf is None)
        self.save()
        return {
            "vector_rows": v.size(),
            "in_lists": len(v.ivf) if v.ivf is not None else 0,
            "searched_exactly": v.tail_rows() if v.ivf is not None else v.size(),
            "built": bool(built),
        }

    def close(self) -> None:
        """Nothing held open: the index files are memory-mapped or read on load."""

    def reindex(self) -> dict[str, int]:
        """Rebuild both indexes from the store and save them."""
        counts = {}
        for index in self.indexes:
            counts[index.kind] = self._rebuild(index)
            index.save()
        return counts
