"""Vector index: exact inner-product search over float32 segments (memory-mapped on disk).

Exact search is the reference the approximate index (``hnsw.py``) is measured against, and the
path taken whenever a filter leaves few candidates: scoring only the allowed rows is both exact
and faster than asking a graph index to skip most of its neighbours.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engram.index.base import SegmentedIndex, mask_of


@dataclass
class VectorSegment:
    ids: np.ndarray  # int64, ascending
    vectors: np.ndarray  # float32 (n, dim), possibly a read-only memmap
    alive: np.ndarray  # bool


def top_k(ids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best ``(ids, scores)``, best first, ties broken by id."""
    if len(scores) > k:
        part = np.argpartition(-scores, k - 1)[:k]
        ids, scores = ids[part], scores[part]
    order = np.lexsort((ids, -scores))
    return ids[order], scores[order]


class FlatVectorIndex(SegmentedIndex):
    """Exact cosine (inner product of unit vectors) search."""

    kind = "vector"

    def __init__(
        self,
        directory: str | Path | None = None,
        dim: int | None = None,
        memtable_rows: int = 50_000,
    ):
        super().__init__(directory)
        self.dim = dim
        self.memtable_rows = memtable_rows
        self.reset()

    def params(self) -> dict[str, Any]:
        return {"dim": self.dim}

    def reset(self) -> None:
        super().reset()
        self._mem_ids: list[int] = []
        self._mem_vecs: list[np.ndarray] = []

    def size(self) -> int:
        return sum(len(s.ids) for s in self.segments) + len(self._mem_ids)

    def add(self, rows: Sequence[tuple[int, str, np.ndarray]]) -> None:
        for chunk_id, _, vec in rows:
            self._mem_ids.append(int(chunk_id))
            self._mem_vecs.append(np.asarray(vec, dtype=np.float32))
        self.dirty = True
        if len(self._mem_ids) >= self.memtable_rows:
            self.freeze()

    def freeze(self) -> None:
        if not self._mem_ids:
            return
        ids = np.array(self._mem_ids, dtype=np.int64)
        vecs = np.vstack(self._mem_vecs).astype(np.float32, copy=False)
        order = np.argsort(ids, kind="stable")
        ids, vecs = ids[order], vecs[order]
        alive = ~mask_of(ids, np.array(sorted(self.deleted), dtype=np.int64))
        self.segments.append(VectorSegment(ids, vecs, alive))
        self.segment_names.append(None)
        self._mem_ids, self._mem_vecs = [], []
        while len(self.segments) > 1 and 2 * len(self.segments[-1].ids) >= len(
            self.segments[-2].ids
        ):
            tail = self.segments[-2:]
            ids = np.concatenate([s.ids for s in tail])
            order = np.argsort(ids, kind="stable")
            self.segments[-2:] = [
                VectorSegment(
                    ids[order],
                    np.concatenate([np.asarray(s.vectors) for s in tail])[order],
                    np.concatenate([s.alive for s in tail])[order],
                )
            ]
            self.segment_names[-2:] = [None]

    def _on_remove(self, ids: np.ndarray) -> None:
        for s in self.segments:
            s.alive &= ~mask_of(s.ids, ids)

    def _save_segment(self, seg: VectorSegment, stem: Path) -> None:
        np.save(str(stem) + ".ids.npy", seg.ids)
        np.save(str(stem) + ".vec.npy", np.asarray(seg.vectors))

    def _load_segment(self, stem: Path) -> VectorSegment:
        ids = np.load(str(stem) + ".ids.npy")
        vecs = np.load(str(stem) + ".vec.npy", mmap_mode="r")
        if vecs.shape != (len(ids), self.dim):
            raise ValueError(f"segment {stem.name} has shape {vecs.shape}")
        return VectorSegment(ids, vecs, np.ones(len(ids), dtype=bool))

    def vectors_for(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """Stored vectors of these chunk ids (those held by this index)."""
        self.freeze()
        wanted = np.array(sorted(set(ids)), dtype=np.int64)
        out = {}
        for s in self.segments:
            pos = np.flatnonzero(mask_of(s.ids, wanted))
            for p in pos:
                out[int(s.ids[p])] = np.asarray(s.vectors[p])
        return out

    def search(
        self, query: np.ndarray, k: int = 10, allowed: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """Top ``k`` ``(chunk_id, cosine)`` among ``allowed`` ids (sorted array) if given."""
        self.freeze()
        q = np.asarray(query, dtype=np.float32).ravel()
        found_ids, found_scores = [], []
        for seg in self.segments:
            keep = seg.alive if allowed is None else seg.alive & mask_of(seg.ids, allowed)
            if allowed is not None or not keep.all():
                pos = np.flatnonzero(keep)
                if not len(pos):
                    continue
                scores = (
                    np.asarray(seg.vectors[pos]) @ q
                    if len(pos) < len(keep) // 2
                    else (np.asarray(seg.vectors) @ q)[pos]
                )
                ids = seg.ids[pos]
            else:
                scores, ids = np.asarray(seg.vectors) @ q, seg.ids
            ids, scores = top_k(ids, scores, k)
            found_ids.append(ids)
            found_scores.append(scores)
        if not found_ids:
            return []
        ids, scores = top_k(np.concatenate(found_ids), np.concatenate(found_scores), k)
        return [(int(i), float(s)) for i, s in zip(ids, scores, strict=True)]
