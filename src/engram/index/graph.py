"""The HNSW graph of the vector index: faiss-cpu's ``IndexHNSWFlat`` plus a chunk-id table.

faiss ships wheels for Linux (x86_64, arm64) and macOS, so installing Engram needs no compiler;
it built the graph faster than usearch at equal recall here (docs/benchmarks.md). faiss numbers
vectors by insertion position and cannot delete from an HNSW graph, so ``ids[position]`` holds
each position's chunk id, or -1 once that chunk is deleted or replaced; searches skip those.
Two files per saved graph: ``<name>.faiss`` (the graph) and ``<name>.ids.npy`` (the table).
"""

from __future__ import annotations

from array import array
from pathlib import Path
from typing import Any

import numpy as np

LIBRARY = "faiss"


class HnswGraph:
    """Inner-product HNSW over unit vectors, addressed by chunk id."""

    def __init__(self, dim: int, m: int = 32, ef_construction: int = 200, ef_search: int = 128):
        import faiss

        self.dim, self.m = dim, m
        self.ef_construction, self.ef_search = ef_construction, ef_search
        self.index: Any = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        self.index.hnsw.efConstruction = ef_construction
        self.index.hnsw.efSearch = ef_search
        self._ids = array("q")
        self._live = 0
        self._max_id = -1
        self.graph_dirty = self.ids_dirty = True

    def __len__(self) -> int:
        """Live entries: chunks that a search can return."""
        return self._live

    def ids(self) -> np.ndarray:
        return np.frombuffer(self._ids, dtype=np.int64) if len(self._ids) else np.zeros(0, np.int64)

    def _kill(self, ids: np.ndarray) -> int:
        """Mark the positions holding ``ids`` dead; returns how many were live."""
        table = self.ids()
        pos = np.flatnonzero(np.isin(table, ids))
        for p in pos.tolist():
            self._ids[p] = -1
        self._live -= len(pos)
        return len(pos)

    def add(self, ids: np.ndarray, vectors: np.ndarray, threads: int = 1) -> None:
        """Add rows; an id already present is replaced (its old position is skipped)."""
        import faiss

        ids = np.asarray(ids, dtype=np.int64)
        if not len(ids):
            return
        if self._max_id >= int(ids.min()) and self._kill(ids):
            self.ids_dirty = True
        faiss.omp_set_num_threads(max(1, threads))
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self._ids.extend(ids.tolist())
        self._live += len(ids)
        self._max_id = max(self._max_id, int(ids.max()))
        self.graph_dirty = self.ids_dirty = True

    def remove(self, ids: np.ndarray) -> bool:
        """Skip these chunk ids from now on; True if any was in the graph."""
        if len(ids) and self._kill(np.asarray(ids, dtype=np.int64)):
            self.ids_dirty = True
            return True
        return False

    def search(self, query: np.ndarray, fetch: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``fetch`` live ``(chunk ids, cosines)`` nearest to ``query``, best first."""
        fetch = max(1, min(fetch, self.index.ntotal))
        dead = self.index.ntotal - self._live  # over-fetch for the positions to skip
        want = min(self.index.ntotal, fetch + min(dead, 4 * fetch))
        self.index.hnsw.efSearch = max(self.ef_search, want)
        scores, pos = self.index.search(np.asarray(query, dtype=np.float32)[None, :], want)
        pos, scores = pos[0], scores[0]
        keep = pos >= 0
        pos, scores = pos[keep], scores[keep]
        ids = self.ids()[pos]
        live = ids >= 0
        return ids[live][:fetch], scores[live][:fetch]

    # -- files ---------------------------------------------------------------------------
    def save(self, folder: Path, name: str) -> None:
        import faiss

        faiss.write_index(self.index, str(folder / f"{name}.faiss"))
        np.save(folder / f"{name}.ids.npy", self.ids())
        self.graph_dirty = self.ids_dirty = False

    def save_ids(self, folder: Path, name: str) -> None:
        np.save(folder / f"{name}.ids.npy", self.ids())
        self.ids_dirty = False

    @classmethod
    def load(
        cls, folder: Path, graph: str, ids: str, ef_construction: int, ef_search: int
    ) -> HnswGraph:
        import faiss

        index = faiss.read_index(str(folder / f"{graph}.faiss"))
        table = np.load(folder / f"{ids}.ids.npy")
        if index.ntotal != len(table):
            raise ValueError(f"graph {graph} holds {index.ntotal} rows, its id table {len(table)}")
        self = cls.__new__(cls)
        hnsw = getattr(index, "hnsw")  # noqa: B009 (faiss's stubs do not declare it)
        self.dim, self.m = index.d, hnsw.nb_neighbors(1)
        self.ef_construction, self.ef_search = ef_construction, ef_search
        hnsw.efConstruction, hnsw.efSearch = ef_construction, ef_search
        self.index = index
        self._ids = array("q", table.astype(np.int64).tobytes())
        self._live = int((table >= 0).sum())
        self._max_id = int(table.max()) if len(table) else -1
        self.graph_dirty = self.ids_dirty = False
        return self
