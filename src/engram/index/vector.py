"""Vector index: exact inner-product search over float32 segments (memory-mapped on disk).

Exact search is the reference the HNSW graph (faiss, ``engram.index.graph``) is measured
against, and the path taken whenever a filter leaves few candidates: scoring only the allowed
rows is both exact and faster than asking a graph index to skip most of its neighbours.

Graph files written by hnswlib (before Engram moved to faiss, whose wheels need no compiler) are
not read: such an index is rebuilt from the store once, with a one-line notice.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engram.index.base import (
    SegmentedIndex,
    ascending_order,
    log,
    mask_of,
    positions_of,
    stack_rows,
)
from engram.index.graph import LIBRARY as GRAPH_LIB
from engram.index.graph import HnswGraph
from engram.index.ivf import IvfLists, default_nlist, train


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
    """Cosine (inner product of unit vectors) search: exact, plus an approximate index at scale.

    With ``ann="auto"`` (or ``"ivf"``) inverted lists (``engram.index.ivf``) are built in bulk
    when the index is saved (or on ``engram optimize``) once it holds ``ann_threshold`` rows, and
    extended in bulk once the rows added since reach a tenth of them; every row not yet in the
    lists is searched exactly, so each committed chunk is searchable at once. ``ann="hnsw"``
    keeps a faiss HNSW graph up to date on every add instead. Queries whose filter leaves at
    most ``exact_filter_max`` candidates are answered exactly.
    """

    kind = "vector"
    rebuildable_files = ("file_graph", "file_graph_ids") + tuple(
        f"file_ivf_{p}" for p in ("centroids", "offsets", "ids", "vec")
    )

    def __init__(
        self,
        directory: str | Path | None = None,
        dim: int | None = None,
        memtable_rows: int = 50_000,
        ann: str = "auto",
        ann_threshold: int = 50_000,
        exact_filter_max: int = 20_000,
        hnsw_m: int = 32,
        hnsw_ef_construction: int = 200,
        hnsw_ef_search: int = 128,
        threads: int = 1,
        ivf_nprobe: int = 24,
        ivf_nlist: int = 0,
    ):
        super().__init__(directory)
        if ann not in ("auto", "ivf", "hnsw", "exact"):
            raise ValueError(f"ann must be auto, ivf, hnsw or exact, got {ann!r}")
        self.dim = dim
        self.memtable_rows = memtable_rows
        self.ann, self.ann_threshold, self.exact_filter_max = ann, ann_threshold, exact_filter_max
        self.hnsw_m, self.hnsw_ef_construction = hnsw_m, hnsw_ef_construction
        self.hnsw_ef_search, self.threads = hnsw_ef_search, threads
        self.ivf_nprobe, self.ivf_nlist = ivf_nprobe, ivf_nlist
        self.reset()

    def params(self) -> dict[str, Any]:
        return {"dim": self.dim}

    def reset(self) -> None:
        super().reset()
        self._mem_ids: list[int] = []
        self._mem_vecs: list[np.ndarray] = []  # blocks of rows, in the order of _mem_ids
        self.hnsw: HnswGraph | None = None
        self._hnsw_name = self._ids_name = ""
        self.ivf: IvfLists | None = None
        self._ivf_name = ""

    # -- HNSW -----------------------------------------------------------------------------
    def _want_hnsw(self) -> bool:
        return self.ann == "hnsw"

    def _want_ivf(self) -> bool:
        return self.ann in ("auto", "ivf") and self.size() >= self.ann_threshold

    # -- inverted lists -------------------------------------------------------------------
    def _live_parts(self, min_id: int = -1):
        """``(ids, vectors)`` of the live rows with an id above ``min_id``, per segment (views
        of the segment where none of those rows is deleted)."""
        for seg in self.segments:
            start = int(np.searchsorted(seg.ids, min_id, side="right"))
            alive = seg.alive[start:]
            if alive.all():
                if start < len(seg.ids):
                    yield seg.ids[start:], seg.vectors[start:]
                continue
            pos = start + np.flatnonzero(alive)
            if len(pos):
                yield seg.ids[pos], np.asarray(seg.vectors[pos])

    def tail_rows(self) -> int:
        """Rows not yet in the inverted lists (searched exactly)."""
        min_id = self.ivf.max_id if self.ivf is not None else -1
        n = len(self._mem_ids)
        for seg in self.segments:
            start = int(np.searchsorted(seg.ids, min_id, side="right"))
            n += int(seg.alive[start:].sum())
        return n

    def build_ivf(self, force: bool = False) -> bool:
        """Build the inverted lists, or extend them with the rows added since; True if done.

        Without ``force`` only when worth it: none yet, or the new rows reach a tenth of the
        lists (the centroids are retrained once the lists have grown fourfold)."""
        self.freeze()
        live = sum(int(s.alive.sum()) for s in self.segments)
        if not live:
            return False
        old = self.ivf
        tail = self.tail_rows()
        if old is not None and not tail and not force:
            return False
        if old is not None and not force and tail < max(1, len(old) // 10):
            return False
        nlist = self.ivf_nlist or default_nlist(live)
        if old is None or nlist > 2 * old.nlist or force:
            centroids = train(self._sample(nlist), nlist, self.threads)
            self.ivf = IvfLists.build(centroids, self._live_parts())
        else:
            self.ivf = IvfLists.build(
                old.centroids, [*self._old_live(old), *self._live_parts(old.max_id)]
            )
        self._ivf_name = ""
        self.dirty = True
        return True

    def _old_live(self, old: IvfLists):
        dead = self.deleted_ids()
        for ids, vecs in old.parts():
            if len(dead):
                keep = ~np.isin(ids, dead)
                ids, vecs = ids[keep], vecs[keep]
            yield ids, vecs

    def _sample(self, nlist: int) -> np.ndarray:
        parts = list(self._live_parts())
        n = sum(len(i) for i, _ in parts)
        want = min(n, 64 * nlist)
        rng = np.random.default_rng(1234)
        pick = np.sort(rng.choice(n, size=want, replace=False))
        out, base = [], 0
        for ids, vecs in parts:
            sel = pick[(pick >= base) & (pick < base + len(ids))] - base
            out.append(vecs[sel])
            base += len(ids)
        return np.vstack(out)

    def _search_ivf(
        self, q: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> list[tuple[int, float]]:
        ivf = self.ivf
        assert ivf is not None  # called only when the lists are built
        nprobe = self.ivf_nprobe
        while True:
            ids, scores = ivf.scan(q, nprobe)
            keep = np.ones(len(ids), dtype=bool)
            if self.deleted:
                keep &= ~np.isin(ids, self.deleted_ids())
            if allowed is not None:
                keep &= np.isin(ids, allowed)
            if keep.sum() >= k or nprobe >= ivf.nlist:
                break
            if allowed is None and not self.deleted:
                break
            nprobe *= 4
        ids, scores = top_k(ids[keep], scores[keep], k)
        tail = self._search_exact(q, k, allowed, min_id=ivf.max_id)
        if tail:
            t_ids = np.array([i for i, _ in tail], dtype=np.int64)
            t_sc = np.array([s for _, s in tail], dtype=np.float32)
            ids, scores = top_k(np.concatenate([ids, t_ids]), np.concatenate([scores, t_sc]), k)
        return [(int(i), float(s)) for i, s in zip(ids, scores, strict=True)]

    def _new_graph(self) -> HnswGraph:
        assert self.dim is not None  # fixed before any row is added
        return HnswGraph(self.dim, self.hnsw_m, self.hnsw_ef_construction, self.hnsw_ef_search)

    def _hnsw_add(self, ids: np.ndarray, vecs: np.ndarray) -> None:
        if len(ids) and self.hnsw is not None:
            self.hnsw.add(ids, vecs, threads=self.threads)

    def build_hnsw(self) -> None:
        """Build the graph over every live row (called once the index is large enough)."""
        self.hnsw = self._new_graph()
        for seg in self.segments:
            pos = np.flatnonzero(seg.alive)
            for i in range(0, len(pos), 50_000):
                part = pos[i : i + 50_000]
                self._hnsw_add(seg.ids[part], np.asarray(seg.vectors[part]))
        if self._mem_ids:
            ids = np.array(self._mem_ids, dtype=np.int64)
            keep = ~np.isin(ids, self.deleted_ids())
            if keep.any():
                self._hnsw_add(ids[keep], np.vstack(self._mem_vecs)[keep])
        self.dirty = True

    def size(self) -> int:
        return sum(len(s.ids) for s in self.segments) + len(self._mem_ids)

    def add(self, rows: Sequence[tuple[int, str, np.ndarray]]) -> None:
        if rows:
            vectors = [np.asarray(r[2], dtype=np.float32) for r in rows]
            self.add_block([int(r[0]) for r in rows], np.vstack(vectors))

    def add_block(self, ids: Sequence[int] | np.ndarray, vectors: np.ndarray) -> None:
        """Add rows ``ids`` with ``vectors`` (one row each), kept as one block until frozen."""
        if not len(ids):
            return
        ids = np.asarray(ids, dtype=np.int64).tolist()
        vecs = np.asarray(vectors, dtype=np.float32).reshape(len(ids), -1)
        self._mem_ids.extend(ids)
        self._mem_vecs.append(vecs)
        self.dirty = True
        if self.ivf is not None and min(ids) <= self.ivf.max_id:
            self.ivf = None  # an id the lists may hold came back: rebuilt at the next save
        if self.hnsw is not None:
            self._hnsw_add(np.array(ids, dtype=np.int64), vecs)
        if len(self._mem_ids) >= self.memtable_rows:
            self.freeze()

    def freeze(self) -> None:
        if not self._mem_ids:
            return
        ids = np.array(self._mem_ids, dtype=np.int64)
        order = ascending_order(ids)
        blocks, self._mem_ids, self._mem_vecs = self._mem_vecs, [], []
        vecs = stack_rows(blocks, order)
        ids = ids if order is None else ids[order]
        alive = ~mask_of(ids, self.deleted_ids())
        self.segments.append(VectorSegment(ids, vecs, alive))
        self.segment_names.append(None)
        while len(self.segments) > 1 and 2 * len(self.segments[-1].ids) >= len(
            self.segments[-2].ids
        ):
            tail = self.segments[-2:]
            ids = np.concatenate([s.ids for s in tail])
            alive = np.concatenate([s.alive for s in tail])
            order = ascending_order(ids)
            if order is not None:
                ids, alive = ids[order], alive[order]
            vecs = stack_rows([s.vectors for s in tail], order)
            self.segments[-2:] = [VectorSegment(ids, vecs, alive)]
            self.segment_names[-2:] = [None]

    def _on_remove(self, ids: np.ndarray) -> None:
        for s in self.segments:
            s.alive &= ~mask_of(s.ids, ids)
        if self.hnsw is not None:
            self.hnsw.remove(ids)

    def _save_extra(self, seg_dir: Path, tag: str) -> dict[str, Any]:
        if self._want_ivf() or self.ivf is not None:
            return self._save_ivf(seg_dir, tag)
        if self.hnsw is None and self._want_hnsw():
            self.build_hnsw()
        if self.hnsw is None:
            return {}
        g = self.hnsw
        # never saved, or swept by another process: write anew
        if not (seg_dir / f"{self._hnsw_name}.{GRAPH_LIB}").is_file():
            g.graph_dirty = True
        if not (seg_dir / f"{self._ids_name}.ids.npy").is_file():
            g.ids_dirty = True
        if g.graph_dirty:
            self._hnsw_name = self._ids_name = f"graph-{tag}"
            g.save(seg_dir, self._hnsw_name)
        elif g.ids_dirty:  # deletes only: the graph file stays, a new id table is written
            self._ids_name = f"graph-ids-{tag}"
            g.save_ids(seg_dir, self._ids_name)
        return {
            "graph": GRAPH_LIB,
            "file_graph": f"{self._hnsw_name}.{GRAPH_LIB}",
            "file_graph_ids": f"{self._ids_name}.ids.npy",
        }

    def _save_ivf(self, seg_dir: Path, tag: str) -> dict[str, Any]:
        if self._want_ivf():
            self.build_ivf()
        if self.ivf is None:
            return {}
        if not self._ivf_name or not (seg_dir / f"{self._ivf_name}.vec.npy").is_file():
            self._ivf_name = f"ivf-{tag}"
            self.ivf.save(seg_dir, self._ivf_name)
        out: dict[str, Any] = {"ivf_max_id": self.ivf.max_id}
        for part in ("centroids", "offsets", "ids", "vec"):
            out[f"file_ivf_{part}"] = f"{self._ivf_name}.{part}.npy"
        return out

    def _load(self) -> bool:
        manifest = self._peek_manifest()
        if manifest is not None and "file_hnsw" in manifest:
            log.warning(
                "engram: the vector graph in %s was written by hnswlib; rebuilding the vector "
                "index from the store with %s (once)",
                self.directory,
                GRAPH_LIB,
            )
            return False
        return super()._load()

    def _peek_manifest(self) -> dict[str, Any] | None:
        try:
            name = (self.folder / "CURRENT").read_text().strip()
            return json.loads((self.folder / name).read_text())
        except (OSError, ValueError):
            return None  # the base class reports and rebuilds

    def _load_extra(self, seg_dir: Path, manifest: dict[str, Any]) -> None:
        if manifest.get("file_ivf_vec"):
            name = manifest["file_ivf_vec"].split(".")[0]
            self.ivf = IvfLists.load(seg_dir, name, manifest.get("ivf_max_id"))
            if self.ivf.centroids.shape[1] != self.dim:
                raise ValueError(f"inverted lists {name} do not have {self.dim} dims")
            self._ivf_name = name
        if manifest.get("file_graph"):
            if manifest.get("graph") != GRAPH_LIB:
                raise ValueError(f"graph written by {manifest.get('graph')}, not {GRAPH_LIB}")
            graph = manifest["file_graph"].split(".")[0]
            ids = manifest["file_graph_ids"].split(".")[0]
            self.hnsw = HnswGraph.load(
                seg_dir, graph, ids, self.hnsw_ef_construction, self.hnsw_ef_search
            )
            if self.hnsw.dim != self.dim:
                raise ValueError(f"graph {graph} has {self.hnsw.dim} dims, expected {self.dim}")
            self._hnsw_name, self._ids_name = graph, ids

    def _save_segment(self, seg: VectorSegment, stem: Path) -> None:
        """Write the segment, then read its vectors from the file, as a reopened index does:
        after a bulk load they leave the process's memory for the page cache."""
        np.save(str(stem) + ".ids.npy", seg.ids)
        np.save(str(stem) + ".vec.npy", np.asarray(seg.vectors))
        seg.vectors = np.load(str(stem) + ".vec.npy", mmap_mode="r")

    def _load_segment(self, stem: Path) -> VectorSegment:
        ids = np.load(str(stem) + ".ids.npy")
        vecs = np.load(str(stem) + ".vec.npy", mmap_mode="r")
        if vecs.shape != (len(ids), self.dim):
            raise ValueError(f"segment {stem.name} has shape {vecs.shape}")
        return VectorSegment(ids, vecs, np.ones(len(ids), dtype=bool))

    @staticmethod
    def _tail_of(seg: VectorSegment, min_id: int) -> VectorSegment | None:
        start = int(np.searchsorted(seg.ids, min_id, side="right"))
        if start >= len(seg.ids):
            return None
        if start == 0:
            return seg
        return VectorSegment(seg.ids[start:], seg.vectors[start:], seg.alive[start:])

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
        self,
        query: np.ndarray,
        k: int = 10,
        allowed: np.ndarray | None = None,
        exact: bool = False,
    ) -> list[tuple[int, float]]:
        """Top ``k`` ``(chunk_id, cosine)`` among ``allowed`` ids (sorted array) if given."""
        self.freeze()
        q = np.asarray(query, dtype=np.float32).ravel()
        if self.hnsw is None and self._want_hnsw():
            self.build_hnsw()
        use_graph = allowed is None or len(allowed) > self.exact_filter_max
        if self.ivf is not None and self.ann in ("auto", "ivf") and not exact and use_graph:
            return self._search_ivf(q, k, allowed)
        if self.hnsw is not None and not exact and use_graph:
            found = self._search_hnsw(q, k, allowed)
            if found is not None:
                return found
        return self._search_exact(q, k, allowed)

    def _search_hnsw(
        self, q: np.ndarray, k: int, allowed: np.ndarray | None
    ) -> list[tuple[int, float]] | None:
        graph = self.hnsw
        assert graph is not None  # called only when the graph is built
        live = len(graph)
        if live <= 0:
            return []
        share = 1.0 if allowed is None else min(1.0, len(allowed) / live)
        fetch = min(live, int(k / share * 1.5) + k)
        ids, scores = graph.search(q, fetch)
        if len(ids) < min(k, live):  # fewer reachable live rows than asked for
            return None
        if allowed is not None:
            keep = np.isin(ids, allowed, assume_unique=True)
            ids, scores = ids[keep], scores[keep]
        if len(ids) < k and len(ids) < live:
            return None  # the filter removed too many: answer exactly
        ids, scores = top_k(ids, scores, k)
        return [(int(i), float(s)) for i, s in zip(ids, scores, strict=True)]

    def _search_exact(
        self, q: np.ndarray, k: int, allowed: np.ndarray | None, min_id: int = -1
    ) -> list[tuple[int, float]]:
        """Exact top ``k`` among the rows with an id above ``min_id`` (all by default)."""
        found_ids, found_scores = [], []
        for seg in self.segments:
            if min_id >= 0:
                seg = self._tail_of(seg, min_id)
                if seg is None:
                    continue
            if allowed is not None:  # gather only the allowed rows
                pos = positions_of(seg.ids, allowed)
                pos = pos[seg.alive[pos]]
                if not len(pos):
                    continue
                scores, ids = np.asarray(seg.vectors[pos]) @ q, seg.ids[pos]
            elif seg.alive.all():
                scores, ids = np.asarray(seg.vectors) @ q, seg.ids
            else:
                pos = np.flatnonzero(seg.alive)
                if not len(pos):
                    continue
                scores, ids = (np.asarray(seg.vectors) @ q)[pos], seg.ids[pos]
            ids, scores = top_k(ids, scores, k)
            found_ids.append(ids)
            found_scores.append(scores)
        if not found_ids:
            return []
        ids, scores = top_k(np.concatenate(found_ids), np.concatenate(found_scores), k)
        return [(int(i), float(s)) for i, s in zip(ids, scores, strict=True)]
