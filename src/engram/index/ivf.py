"""Inverted lists (IVF) over unit vectors: the approximate vector index at scale.

Rows are grouped by their nearest of ``nlist`` k-means centroids and stored grouped, so a query
scores the centroids, then every row of the ``nprobe`` nearest lists, exactly, as contiguous
slices of memory-mapped files. Building is one k-means over a sample plus one matrix product per
block of rows (about a minute for 1M x 384 on two cores, against half an hour for an HNSW graph
at M 32 / ef_construction 200, see docs/benchmarks.md); reopening maps four files and reads
nothing else. Extending reuses the centroids: new rows are assigned and the lists rewritten.

Files of one saved index ``<name>``: ``.centroids.npy`` (nlist x dim), ``.offsets.npy``
(nlist + 1; list ``l`` holds rows ``offsets[l]:offsets[l+1]``), ``.ids.npy`` (chunk ids in list
order) and ``.vec.npy`` (the vectors in list order, float32).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from engram.index.base import stack_rows

FILES = ("centroids", "offsets", "ids", "vec")
BLOCK = 65_536


def default_nlist(n: int) -> int:
    """About sqrt(n) lists (1,000 rows each at 1M). Training costs grow with the square of
    the lists (64 sample rows per list) and assigning with the lists: at 1M, 1,000 lists train
    in 2.4 s and assign in 4.3 s against 9.3 s and 8.5 s for 2,000 (docs/benchmarks.md), while
    a query's scan of ``ivf_nprobe`` lists stays a few tens of thousands of rows."""
    return max(1, min(n // 39, int(math.sqrt(n))))


def train(sample: np.ndarray, nlist: int, threads: int = 1, seed: int = 1234) -> np.ndarray:
    """Spherical k-means centroids (unit vectors) of a sample of rows."""
    import faiss

    faiss.omp_set_num_threads(max(1, threads))
    km = faiss.Kmeans(
        sample.shape[1], nlist, niter=10, seed=seed, spherical=True, max_points_per_centroid=64
    )
    km.train(np.ascontiguousarray(sample, dtype=np.float32))
    return np.asarray(km.centroids, dtype=np.float32)


def assign(centroids: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    """The nearest centroid (inner product) of each row, in blocks."""
    out = np.empty(len(vectors), dtype=np.int32)
    for i in range(0, len(vectors), BLOCK):
        block = np.asarray(vectors[i : i + BLOCK], dtype=np.float32)
        out[i : i + BLOCK] = np.argmax(block @ centroids.T, axis=1)
    return out


class IvfLists:
    """Rows grouped by centroid; ``max_id`` is the largest chunk id the lists cover."""

    def __init__(
        self,
        centroids: np.ndarray,
        offsets: np.ndarray,
        ids: np.ndarray,
        vectors: np.ndarray,
        max_id: int | None = None,
    ):
        self.centroids, self.offsets, self.ids, self.vectors = centroids, offsets, ids, vectors
        if max_id is None:  # recorded in the manifest, so that opening reads no id file
            max_id = int(np.max(ids)) if len(ids) else -1
        self.max_id = int(max_id)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def nlist(self) -> int:
        return len(self.centroids)

    @classmethod
    def build(
        cls, centroids: np.ndarray, parts: Iterable[tuple[np.ndarray, np.ndarray]]
    ) -> IvfLists:
        """Lists over ``(ids, vectors)`` parts (ids ascending across parts). Each row is
        copied once, straight to its place in the lists: the parts may be views of the
        segments, and no stacked copy of them is made."""
        ids_l, vec_l, lists_l = [], [], []
        for ids, vecs in parts:
            if len(ids):
                ids_l.append(np.asarray(ids, dtype=np.int64))
                vec_l.append(vecs)
                lists_l.append(assign(centroids, vecs))
        dim = centroids.shape[1]
        if not ids_l:
            empty = np.zeros(len(centroids) + 1, dtype=np.int64)
            return cls(centroids, empty, np.zeros(0, np.int64), np.zeros((0, dim), np.float32))
        ids, lists = np.concatenate(ids_l), np.concatenate(lists_l)
        order = np.argsort(lists, kind="stable")  # stable: ids stay ascending within a list
        vectors = stack_rows(vec_l, order)
        counts = np.bincount(lists, minlength=len(centroids))
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return cls(centroids, offsets, ids[order], vectors)

    def parts(self) -> Iterable[tuple[np.ndarray, np.ndarray]]:
        """The rows as ``(ids, vectors)`` blocks, for extending."""
        for i in range(0, len(self.ids), BLOCK):
            yield np.asarray(self.ids[i : i + BLOCK]), np.asarray(self.vectors[i : i + BLOCK])

    def probes(self, q: np.ndarray, nprobe: int) -> np.ndarray:
        nprobe = min(nprobe, self.nlist)
        s = self.centroids @ q
        return np.argpartition(-s, nprobe - 1)[:nprobe] if nprobe < len(s) else np.arange(len(s))

    def scan(self, q: np.ndarray, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, scores)`` of every row in the ``nprobe`` lists nearest to ``q``."""
        ids_l, sc_l = [], []
        for lst in self.probes(q, nprobe).tolist():
            a, b = int(self.offsets[lst]), int(self.offsets[lst + 1])
            if b > a:
                sc_l.append(np.asarray(self.vectors[a:b]) @ q)
                ids_l.append(np.asarray(self.ids[a:b]))
        if not ids_l:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        return np.concatenate(ids_l), np.concatenate(sc_l)

    # -- files ---------------------------------------------------------------------------
    def save(self, folder: Path, name: str) -> list[str]:
        """Write the lists, then map their ids and vectors from the files (as ``load`` does),
        so the process no longer holds them in its own memory."""
        names = []
        for part, arr in zip(
            FILES, (self.centroids, self.offsets, self.ids, self.vectors), strict=True
        ):
            np.save(folder / f"{name}.{part}.npy", np.asarray(arr))
            names.append(f"{name}.{part}.npy")
        self.ids = np.load(folder / f"{name}.ids.npy", mmap_mode="r")
        self.vectors = np.load(folder / f"{name}.vec.npy", mmap_mode="r")
        return names

    @classmethod
    def load(cls, folder: Path, name: str, max_id: int | None = None) -> IvfLists:
        """Map the files (centroids and offsets are read: they are small)."""
        centroids = np.load(folder / f"{name}.centroids.npy")
        offsets = np.load(folder / f"{name}.offsets.npy")
        ids = np.load(folder / f"{name}.ids.npy", mmap_mode="r")
        vectors = np.load(folder / f"{name}.vec.npy", mmap_mode="r")
        if len(offsets) != len(centroids) + 1 or offsets[-1] != len(ids):
            raise ValueError(f"inverted lists {name} are inconsistent")
        if len(ids) != len(vectors) or vectors.shape[1:] != centroids.shape[1:]:
            raise ValueError(f"inverted lists {name} have mismatched shapes")
        return cls(centroids, offsets, ids, vectors, max_id)
