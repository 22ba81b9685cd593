"""BM25 keyword index: term-major sparse segments scored with live collection statistics.

Each segment is a CSR matrix (terms x documents) of raw term frequencies. Scores are computed
at query time from the current document frequencies and average length, so adding documents
never rewrites old segments. Deleted chunks stay in the statistics until the next rebuild, as
in Lucene; they are never returned.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from engram.index.analyzer import analyze
from engram.index.base import SegmentedIndex, mask_of


@dataclass
class KeywordSegment:
    ids: np.ndarray  # int64 chunk ids, ascending
    lengths: np.ndarray  # float32 terms per document
    postings: sp.csr_matrix  # (terms, docs) term frequencies
    alive: np.ndarray  # bool


class KeywordIndex(SegmentedIndex):
    """Okapi BM25 (Lucene idf) over analyzed terms, with filters applied before the top-k cut."""

    kind = "keyword"

    def __init__(
        self,
        directory: str | Path | None = None,
        k1: float = 0.9,
        b: float = 0.4,
        language: str = "english",
        memtable_docs: int = 50_000,
    ):
        super().__init__(directory)
        self.k1, self.b, self.language = k1, b, language
        self.memtable_docs = memtable_docs
        self.reset()

    def params(self) -> dict[str, Any]:
        return {"language": self.language, "analyzer": 1}

    def reset(self) -> None:
        super().reset()
        self.vocab: dict[str, int] = {}
        self.df = np.zeros(1024, dtype=np.int64)
        self.total_length = 0.0
        self.n_docs = 0
        self._mem_rows: list[int] = []
        self._mem_cols: list[int] = []
        self._mem_tfs: list[int] = []
        self._mem_ids: list[int] = []
        self._mem_lens: list[int] = []

    def size(self) -> int:
        return self.n_docs

    # -- writes ---------------------------------------------------------------------------
    def _term_id(self, term: str) -> int:
        tid = self.vocab.get(term)
        if tid is None:
            tid = self.vocab[term] = len(self.vocab)
            if tid >= len(self.df):
                self.df = np.concatenate([self.df, np.zeros(len(self.df), dtype=np.int64)])
        return tid

    def add(self, rows: Sequence[tuple[int, str, Any]]) -> None:
        for chunk_id, text, _ in rows:
            terms = analyze(text, self.language)
            col = len(self._mem_ids)
            for term, tf in Counter(terms).items():
                tid = self._term_id(term)
                self.df[tid] += 1
                self._mem_rows.append(tid)
                self._mem_cols.append(col)
                self._mem_tfs.append(tf)
            self._mem_ids.append(int(chunk_id))
            self._mem_lens.append(len(terms))
            self.total_length += len(terms)
            self.n_docs += 1
        self.dirty = True
        if len(self._mem_ids) >= self.memtable_docs:
            self.freeze()

    def freeze(self) -> None:
        if not self._mem_ids:
            return
        n = len(self._mem_ids)
        postings = sp.csr_matrix(
            (
                np.array(self._mem_tfs, dtype=np.float32),
                (
                    np.array(self._mem_rows, dtype=np.int64),
                    np.array(self._mem_cols, dtype=np.int64),
                ),
            ),
            shape=(len(self.vocab), n),
        )
        ids = np.array(self._mem_ids, dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        if not np.all(order == np.arange(n)):
            ids, postings = ids[order], postings[:, order].tocsr()
        lengths = np.array(self._mem_lens, dtype=np.float32)[order]
        alive = ~mask_of(ids, np.array(sorted(self.deleted), dtype=np.int64))
        self.segments.append(KeywordSegment(ids, lengths, postings, alive))
        self.segment_names.append(None)
        self._mem_rows, self._mem_cols, self._mem_tfs = [], [], []
        self._mem_ids, self._mem_lens = [], []
        # Log-structured merging: keep segment sizes decreasing by at least half, so each
        # document takes part in O(log n) merges and a query visits O(log n) segments.
        while len(self.segments) > 1 and 2 * len(self.segments[-1].ids) >= len(
            self.segments[-2].ids
        ):
            self._merge(len(self.segments) - 2)

    def _merge(self, start: int) -> None:
        """Merge ``segments[start:]`` into one."""
        vocab_size = len(self.vocab)
        tail = self.segments[start:]
        mats = []
        for s in tail:
            m = s.postings
            if m.shape[0] < vocab_size:
                m = sp.vstack([m, sp.csr_matrix((vocab_size - m.shape[0], m.shape[1]))]).tocsr()
            mats.append(m)
        ids = np.concatenate([s.ids for s in tail])
        postings = sp.hstack(mats).tocsr()
        lengths = np.concatenate([s.lengths for s in tail])
        alive = np.concatenate([s.alive for s in tail])
        order = np.argsort(ids, kind="stable")
        if not np.all(order[1:] > order[:-1]):
            ids, postings = ids[order], postings[:, order].tocsr()
            lengths, alive = lengths[order], alive[order]
        self.segments[start:] = [KeywordSegment(ids, lengths, postings, alive)]
        self.segment_names[start:] = [None]

    def _on_remove(self, ids: np.ndarray) -> None:
        for s in self.segments:
            s.alive &= ~mask_of(s.ids, ids)

    # -- persistence ----------------------------------------------------------------------
    def _save_segment(self, seg: KeywordSegment, stem: Path) -> None:
        m = seg.postings
        np.savez(
            str(stem) + ".npz",
            ids=seg.ids,
            lengths=seg.lengths,
            indptr=m.indptr,
            indices=m.indices,
            data=m.data,
            shape=np.array(m.shape),
        )

    def _load_segment(self, stem: Path) -> KeywordSegment:
        z = np.load(str(stem) + ".npz")
        m = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
        return KeywordSegment(z["ids"], z["lengths"], m, np.ones(len(z["ids"]), dtype=bool))

    def _save_extra(self, seg_dir: Path, tag: str) -> dict[str, Any]:
        name = f"vocab-{tag}.npz"
        terms = np.array(sorted(self.vocab, key=self.vocab.get), dtype=object)
        with open(seg_dir / name, "wb") as f:
            np.savez(
                f,
                df=self.df[: len(self.vocab)],
                terms=np.array(json.dumps(terms.tolist(), ensure_ascii=False)),
            )
        return {"file_vocab": name, "total_length": self.total_length, "n_docs": self.n_docs}

    def _load_extra(self, seg_dir: Path, manifest: dict[str, Any]) -> None:
        z = np.load(seg_dir / manifest["file_vocab"])
        terms = json.loads(str(z["terms"]))
        self.vocab = {t: i for i, t in enumerate(terms)}
        self.df = np.concatenate([z["df"], np.zeros(1024, dtype=np.int64)])
        self.total_length = float(manifest["total_length"])
        self.n_docs = int(manifest["n_docs"])

    # -- queries --------------------------------------------------------------------------
    def query_terms(self, query: str) -> list[str]:
        return [t for t in dict.fromkeys(analyze(query, self.language)) if t in self.vocab]

    def search(
        self, query: str, k: int = 10, allowed: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """Top ``k`` ``(chunk_id, score)`` among ``allowed`` ids (sorted array) if given."""
        self.freeze()
        terms = self.query_terms(query)
        if not terms or self.n_docs == 0 or k <= 0:
            return []
        tids = np.array([self.vocab[t] for t in terms])
        df = self.df[tids].astype(np.float64)
        idf = np.log(1.0 + (self.n_docs - df + 0.5) / (df + 0.5))
        avgdl = self.total_length / self.n_docs or 1.0
        k1, b = self.k1, self.b
        all_ids, all_scores = [], []
        for seg in self.segments:
            n = len(seg.ids)
            scores = np.zeros(n, dtype=np.float32)
            norm = k1 * (1.0 - b + b * seg.lengths / avgdl)
            rows = seg.postings.shape[0]
            for tid, w in zip(tids, idf, strict=True):
                if tid >= rows:
                    continue
                lo, hi = seg.postings.indptr[tid], seg.postings.indptr[tid + 1]
                if lo == hi:
                    continue
                docs = seg.postings.indices[lo:hi]
                tf = seg.postings.data[lo:hi]
                scores[docs] += w * tf * (k1 + 1.0) / (tf + norm[docs])
            keep = seg.alive if allowed is None else seg.alive & mask_of(seg.ids, allowed)
            cand = np.flatnonzero((scores > 0) & keep)
            if len(cand) > k:
                cand = cand[np.argpartition(-scores[cand], k - 1)[:k]]
            all_ids.append(seg.ids[cand])
            all_scores.append(scores[cand])
        if not all_ids:
            return []
        ids, scores = np.concatenate(all_ids), np.concatenate(all_scores)
        order = np.lexsort((ids, -scores))[:k]
        return [(int(ids[i]), float(scores[i])) for i in order]
