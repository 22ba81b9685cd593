"""Retrieval for the embedded backend: derived keyword and vector index files.

A backend's retrieval object answers ``scope`` (namespaces + filter -> what to search),
``keyword`` and ``vector`` (top candidates within that scope), and keeps itself current with
the store (``sync``). Here the indexes are files beside the SQLite store that catch up from its
changelog; a server backend would answer the same calls inside its database.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engram.config import Config
from engram.errors import EmbeddingMismatchError
from engram.index.base import SegmentedIndex
from engram.index.keyword import KeywordIndex
from engram.index.vector import FlatVectorIndex
from engram.store.sqlite import SQLiteStore
from engram.types import DEFAULT_NAMESPACE

log = logging.getLogger(__name__)

EMPTY = object()  # a scope that matches nothing: skip retrieval


class LocalIndexes:
    """The keyword and vector indexes of one SQLite store, kept in ``<store>.index/``."""

    def __init__(self, store: SQLiteStore, config: Config, load: bool = True):
        self.store, self.config = store, config
        index_dir = Path(store.path + ".index")
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
            threads=config.threads or 1,
        )
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
    def scope(self, namespaces: list[str] | None, where: dict | None) -> Any:
        """Sorted allowed chunk ids, ``None`` for everything, or ``EMPTY``."""
        if namespaces == [DEFAULT_NAMESPACE] and self.store.namespace_count() <= 1:
            namespaces = None  # the only namespace: no condition to check per row
        if not where and namespaces is None:
            return None
        allowed = self.store.allowed_ids(namespaces, where)
        return allowed if len(allowed) else EMPTY

    def keyword(self, query: str, n: int, scope: Any) -> list[tuple[int, float]]:
        return self.keyword_index.search(query, n, scope)

    def vector(self, vector: np.ndarray, n: int, scope: Any) -> list[tuple[int, float]]:
        return self.vector_index.search(vector, n, scope)

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
        pending: dict[int, None] = {}
        removed: list[int] = []
        for _, op, cid in changes:
            if op == "add":
                pending[cid] = None
            elif cid in pending:
                del pending[cid]
            else:
                removed.append(cid)
        index.remove(removed)
        if pending:
            ids = list(pending)
            if isinstance(index, KeywordIndex):
                texts = self.store.chunk_texts(ids)
                index.add([(i, texts[i], None) for i in ids if i in texts])
            else:
                found, mat = self.store.chunk_vectors(ids)
                self._check_dim(mat)
                index.add([(int(i), "", v) for i, v in zip(found, mat, strict=True)])
        index.last_seq = changes[-1][0]
        index.dirty = True
        if index.deleted_share() > self.config.compact_deleted_share and index.size() > 1000:
            self._rebuild(index)

    def _check_dim(self, mat: np.ndarray) -> None:
        index = self.vector_index
        if len(mat):
            if index.dim is None:
                index.dim = mat.shape[1]
            elif mat.shape[1] != index.dim:
                raise EmbeddingMismatchError(
                    f"store holds {mat.shape[1]}-dim vectors, index expects {index.dim}"
                )

    def _rebuild(self, index: SegmentedIndex) -> int:
        """Rebuild one index from a consistent snapshot of the store."""
        index.reset()
        n = 0
        with self.store.lock:
            self.store.conn.execute("BEGIN")
            try:
                head = self.store.max_seq()
                for rows in self.store.iter_chunks():
                    if index is self.vector_index:
                        self._check_dim(np.vstack([r[2] for r in rows]))
                    index.add(rows)
                    n += len(rows)
            finally:
                self.store.conn.execute("COMMIT")
        index.last_seq = head
        index.dirty = True
        index.freeze()
        return n

    def rebuild_and_save(self, index: SegmentedIndex) -> int:
        """Rebuild one index from the store and save it; returns chunks indexed."""
        n = self._rebuild(index)
        index.save()
        return n

    def reindex(self) -> dict[str, int]:
        """Rebuild both indexes from the store and save them."""
        counts = {}
        for index in self.indexes:
            counts[index.kind] = self._rebuild(index)
            index.save()
        return counts


def open_retrieval(store: Any, config: Config, url: str | None = None) -> Any:
    """The retrieval object for a store: its own (server backends) or local index files."""
    if url and url.split(":", 1)[0].lower() in ("milvus", "milvus-lite", "milvus+https"):
        from engram.retrieval.milvus import MilvusRetrieval

        return MilvusRetrieval(store, config, url)
    own = getattr(store, "retrieval", None)
    return own(config) if callable(own) else LocalIndexes(store, config)
