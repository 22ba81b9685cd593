"""BM25 keyword index: term-major sparse segments scored with live collection statistics.

Each segment is a CSR matrix (terms x documents) of raw term frequencies. Scores are computed
at query time from the current document frequencies and average length, so adding documents
never rewrites old segments. Deleted chunks stay in the statistics until the next rebuild, as
in Lucene; they are never returned.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from engram.index.analyzer import analyze, term_of, word_runs
from engram.index.base import SegmentedIndex, ascending_order, mask_of, positions_of

Counted = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # add_counted's arrays
_WORD_MEMO = 1_000_000  # distinct tokens memoised (term ids), about 100 MB at most


@dataclass
class KeywordSegment:
    ids: np.ndarray  # int64 chunk ids, ascending
    lengths: np.ndarray  # float32 terms per document
    postings: sp.csr_matrix  # (terms, docs) term frequencies, documents ascending per term
    alive: np.ndarray  # bool
    norm: tuple[float, np.ndarray] | None = field(default=None, repr=False)  # (avgdl, norms)

    def __post_init__(self) -> None:
        if not self.postings.has_sorted_indices:  # searches binary-search the posting lists
            self.postings.sort_indices()


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
        self._held: int | None = 0 if getattr(self, "_held", None) is not None else None
        self.vocab: dict[str, int] = {}
        self._word_ids: dict[str, int] = {}  # token -> term id (-1: stopword), a memo
        self.df = np.zeros(1024, dtype=np.int64)
        self.total_length = 0.0
        self.n_docs = 0
        self._mem_rows: list[np.ndarray] = []  # term ids, one array per add()
        self._mem_cols: list[np.ndarray] = []  # memtable columns
        self._mem_tfs: list[np.ndarray] = []  # term frequencies
        self._mem_ids: list[int] = []
        self._mem_lens: list[int] = []

    def size(self) -> int:
        return self.n_docs

    # -- writes ---------------------------------------------------------------------------
    def _term_id(self, term: str) -> int:
        tid = self.vocab.get(term)
        if tid is None:
            tid = self.vocab[term] = len(self.vocab)
            self._fit_df()
        return tid

    def _fit_df(self) -> None:
        """Room in ``df`` for every term of the vocabulary (grown by doubling)."""
        if len(self.vocab) > len(self.df):
            grown = max(len(self.vocab), 2 * len(self.df))
            self.df = np.concatenate([self.df, np.zeros(grown - len(self.df), dtype=np.int64)])

    def _term_ids(self, words: list[str]) -> np.ndarray:
        """Term ids of lowercase tokens, -1 for stopwords: ``analyze`` through a memo of
        word -> term id (one dictionary lookup per token; the stemmer runs once per word)."""
        memo = self._word_ids
        found = list(map(memo.get, words))
        if None in found:
            missing: dict[str, int] = {}
            for w, t in zip(words, found, strict=True):
                if t is None and w not in missing:
                    missing[w] = self.term_id_of_word(w)
            if len(memo) + len(missing) <= _WORD_MEMO:
                memo.update(missing)
                found = list(map(memo.get, words))
            else:
                found = [missing[w] if t is None else t for w, t in zip(words, found, strict=True)]
        return np.array(found, dtype=np.int64)

    def add(self, rows: Sequence[tuple[int, str, Any]]) -> None:
        if not rows:
            return
        tokens = [word_runs(text) for _, text, _ in rows]
        counts = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
        tids = self._term_ids(list(chain.from_iterable(tokens)))
        self.add_terms([r[0] for r in rows], counts, tids)

    def term_id_of_word(self, word: str) -> int:
        """The term id of one word run (``analyzer.word_runs``), -1 where it has no term."""
        term = term_of(word, self.language)
        return -1 if term is None else self._term_id(term)

    def term_ids_of(self, terms: Sequence[str]) -> np.ndarray:
        """The ids of analysed terms (``analyzer.term_of``), new ones added."""
        vocab = self.vocab
        ids = np.fromiter((vocab.setdefault(t, len(vocab)) for t in terms), np.int64, len(terms))
        self._fit_df()
        return ids

    def add_terms(self, ids: Sequence[int], counts: np.ndarray, tids: np.ndarray) -> None:
        """Add documents ``ids`` given as the term ids of their word runs, in order, -1 for
        runs without a term: ``counts[i]`` of them for document ``ids[i]``."""
        n = len(ids)
        cols = np.repeat(np.arange(n, dtype=np.int64), counts)
        kept = tids >= 0  # stopwords are -1
        cols, tids = cols[kept], tids[kept]
        v = max(len(self.vocab), 1)
        # (document, term) pairs counted at once: key = column * vocabulary size + term id
        key, tfs = np.unique(cols * v + tids, return_counts=True)
        u_cols, u_tids = np.divmod(key, v)
        self.add_counted(ids, np.bincount(cols, minlength=n), u_cols, u_tids, tfs)

    def add_counted(
        self,
        ids: Sequence[int] | np.ndarray,
        lengths: np.ndarray,
        cols: np.ndarray,
        tids: np.ndarray,
        tfs: np.ndarray,
    ) -> None:
        """Add documents ``ids`` given as counted terms: document ``ids[cols[i]]`` holds term
        ``tids[i]`` ``tfs[i]`` times, each (document, term) pair once, pairs in document
        order; ``lengths``: the terms of each document."""
        v = len(self.vocab)
        self.df[:v] += np.bincount(tids, minlength=v)
        self._mem_rows.append(tids)
        self._mem_cols.append(cols + len(self._mem_ids))
        self._mem_tfs.append(tfs)
        self._mem_ids.extend(np.asarray(ids, dtype=np.int64).tolist())
        self._mem_lens.extend(lengths.tolist())
        self.total_length += float(lengths.sum())
        self.n_docs += len(ids)
        self.dirty = True
        if len(self._mem_ids) >= self.memtable_docs:
            self.freeze()

    def freeze(self) -> None:
        if not self._mem_ids:
            return
        n = len(self._mem_ids)
        postings = sp.csr_matrix(
            (
                np.concatenate(self._mem_tfs).astype(np.float32),
                (np.concatenate(self._mem_rows), np.concatenate(self._mem_cols)),
            ),
            shape=(len(self.vocab), n),
        )
        ids = np.array(self._mem_ids, dtype=np.int64)
        lengths = np.array(self._mem_lens, dtype=np.float32)
        order = ascending_order(ids)
        if order is not None:
            ids, postings, lengths = ids[order], postings[:, order].tocsr(), lengths[order]
        alive = ~mask_of(ids, self.deleted_ids())
        self.segments.append(KeywordSegment(ids, lengths, postings, alive))
        self.segment_names.append(None)
        self._mem_rows, self._mem_cols, self._mem_tfs = [], [], []
        self._mem_ids, self._mem_lens = [], []
        if self._held is None:
            self._merge_tail()

    def _merge_tail(self) -> None:
        # Log-structured merging: keep segment sizes decreasing by at least half, so each
        # document takes part in O(log n) merges and a query visits O(log n) segments.
        while len(self.segments) > 1 and 2 * len(self.segments[-1].ids) >= len(
            self.segments[-2].ids
        ):
            self._merge(len(self.segments) - 2)

    def hold_merges(self) -> None:
        """Leave the segments frozen from now on unmerged until ``release_merges``: a bulk
        load's segments are then merged once, at its end, instead of about log2(rows /
        memtable_docs) times while it runs (queries meanwhile visit each segment)."""
        if self._held is None:
            self._held = len(self.segments)

    def release_merges(self) -> None:
        """Merge the segments frozen since ``hold_merges`` into one, then as after any freeze."""
        if self._held is None:
            return
        self.freeze()
        start, self._held = self._held, None
        if len(self.segments) - start > 1:
            self._merge(start)
        self._merge_tail()

    def _merge(self, start: int) -> None:
        """Merge ``segments[start:]`` into one."""
        vocab_size = len(self.vocab)
        tail = self.segments[start:]
        mats = []
        for s in tail:
            m = s.postings
            if m.shape[0] < vocab_size:  # terms added since: empty rows at the end
                indptr = np.concatenate([m.indptr, np.full(vocab_size - m.shape[0], m.indptr[-1])])
                m = sp.csr_matrix((m.data, m.indices, indptr), shape=(vocab_size, m.shape[1]))
            mats.append(m)
        ids = np.concatenate([s.ids for s in tail])
        postings = sp.hstack(mats).tocsr()
        lengths = np.concatenate([s.lengths for s in tail])
        alive = np.concatenate([s.alive for s in tail])
        order = ascending_order(ids)
        if order is not None:
            ids, postings = ids[order], postings[:, order].tocsr()
            lengths, alive = lengths[order], alive[order]
        self.segments[start:] = [KeywordSegment(ids, lengths, postings, alive)]
        self.segment_names[start:] = [None]

    def _on_remove(self, ids: np.ndarray) -> None:
        for s in self.segments:
            s.alive &= ~mask_of(s.ids, ids)

    # -- persistence ----------------------------------------------------------------------
    def _save_segment(self, seg: KeywordSegment, stem: Path) -> None:
        """One ``.npy`` file per array, so that opening maps them instead of reading them."""
        m = seg.postings
        arrays = {
            "ids": seg.ids,
            "lengths": seg.lengths,
            "indptr": m.indptr,
            "indices": m.indices,
            "data": m.data,
            "shape": np.array(m.shape),
        }
        for part, arr in arrays.items():
            np.save(f"{stem}.{part}.npy", np.asarray(arr))

    def _load_segment(self, stem: Path) -> KeywordSegment:
        if Path(str(stem) + ".npz").is_file():  # written before segments were mapped
            z: Any = np.load(str(stem) + ".npz")
        else:
            z = {
                part: np.load(f"{stem}.{part}.npy", mmap_mode=None if part == "shape" else "r")
                for part in ("ids", "lengths", "indptr", "indices", "data", "shape")
            }
        m = sp.csr_matrix(
            (z["data"], z["indices"], z["indptr"]), shape=tuple(int(x) for x in z["shape"])
        )
        ids = np.asarray(z["ids"])
        return KeywordSegment(ids, z["lengths"], m, np.ones(len(ids), dtype=bool))

    def _save_extra(self, seg_dir: Path, tag: str) -> dict[str, Any]:
        name = f"vocab-{tag}.npz"
        terms = np.array(sorted(self.vocab, key=lambda t: self.vocab[t]), dtype=object)
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
        self._word_ids = {}
        self.df = np.concatenate([z["df"], np.zeros(1024, dtype=np.int64)])
        self.total_length = float(manifest["total_length"])
        self.n_docs = int(manifest["n_docs"])

    # -- queries --------------------------------------------------------------------------
    def query_terms(self, query: str) -> list[str]:
        return [t for t in dict.fromkeys(analyze(query, self.language)) if t in self.vocab]

    def search(
        self, query: str, k: int = 10, allowed: np.ndarray | None = None
    ) -> list[tuple[int, float]]:
        """Exact BM25 top ``k`` ``(chunk_id, score)`` among ``allowed`` ids (sorted) if given.

        MaxScore: terms are taken rarest first; once no document holding none of the terms
        taken so far could reach the k-th best partial score (the other terms' upper bounds,
        idf * (k1 + 1), sum below it), the remaining long posting lists are only probed for
        the candidates found (binary search), never scanned. With a filter only the allowed
        documents are scored. Scores and order are those of scoring every posting.
        """
        self.freeze()
        terms = self.query_terms(query)
        if not terms or self.n_docs == 0 or k <= 0:
            return []
        tids = np.array([self.vocab[t] for t in terms])
        df = self.df[tids].astype(np.float64)
        idf = np.log(1.0 + (self.n_docs - df + 0.5) / (df + 0.5))
        order = np.argsort(-idf, kind="stable")
        tids, idf = tids[order], idf[order]
        weights = idf * (self.k1 + 1.0)
        avgdl = self.total_length / self.n_docs or 1.0
        all_ids, all_scores = [], []
        for seg in self.segments:
            norm = _length_norm(seg, self.k1, self.b, avgdl)
            if allowed is None:
                cand, acc = _score_maxscore(seg, tids, weights, norm, k)
            else:
                cand = positions_of(seg.ids, allowed)
                cand = cand[seg.alive[cand]]
                acc = _score_candidates(seg, tids, weights, norm, cand)
                good = acc > 0
                cand, acc = cand[good], acc[good]
            if len(cand) > k:
                part = np.argpartition(-acc, k - 1)[:k]
                cand, acc = cand[part], acc[part]
            all_ids.append(seg.ids[cand])
            all_scores.append(acc)
        if not all_ids:
            return []
        ids, scores = np.concatenate(all_ids), np.concatenate(all_scores)
        order = np.lexsort((ids, -scores))[:k]
        return [(int(ids[i]), float(scores[i])) for i in order]


def _length_norm(seg: KeywordSegment, k1: float, b: float, avgdl: float) -> np.ndarray:
    """``k1 * (1 - b + b * len / avgdl)`` per document, cached while ``avgdl`` holds."""
    if seg.norm is None or seg.norm[0] != avgdl:
        seg.norm = (avgdl, k1 * (1.0 - b + b * seg.lengths.astype(np.float64) / avgdl))
    return seg.norm[1]


def _postings(seg: KeywordSegment, tid: int) -> tuple[np.ndarray, np.ndarray]:
    """Documents (ascending positions) and term frequencies of term ``tid`` in ``seg``."""
    m = seg.postings
    if tid >= m.shape[0]:
        return _EMPTY_I, _EMPTY_F
    lo, hi = m.indptr[tid], m.indptr[tid + 1]
    return m.indices[lo:hi], m.data[lo:hi]


_EMPTY_I = np.zeros(0, dtype=np.int32)
_EMPTY_F = np.zeros(0, dtype=np.float32)


def _score_candidates(
    seg: KeywordSegment,
    tids: np.ndarray,
    weights: np.ndarray,
    norm: np.ndarray,
    cand: np.ndarray,
    acc: np.ndarray | None = None,
) -> np.ndarray:
    """BM25 of the documents at positions ``cand`` (ascending), added to ``acc``."""
    acc = np.zeros(len(cand), dtype=np.float32) if acc is None else acc
    for tid, w in zip(tids, weights, strict=True):
        docs, tfs = _postings(seg, int(tid))
        if not len(docs) or not len(cand):
            continue
        pos = np.searchsorted(docs, cand)
        pos[pos == len(docs)] = 0
        hit = docs[pos] == cand
        tf = tfs[pos[hit]]
        acc[hit] += w * tf / (tf + norm[cand[hit]])
    return acc


def _union(arrays: list[np.ndarray], n: int, dense: np.ndarray) -> np.ndarray:
    """Sorted union of sorted posting lists (the documents with a partial score)."""
    if len(arrays) == 1:
        return arrays[0]
    if sum(len(a) for a in arrays) > n // 16:
        return np.flatnonzero(dense)
    a = np.concatenate(arrays)
    a.sort()
    return a[np.concatenate(([True], a[1:] != a[:-1]))]


def _score_maxscore(
    seg: KeywordSegment, tids: np.ndarray, weights: np.ndarray, norm: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """Positions and scores of the live documents that can be in the top ``k`` of ``seg``
    (a superset of it), terms ordered rarest first."""
    n = len(seg.ids)
    bounds = weights  # a term adds at most idf * (k1 + 1)
    rest = np.concatenate([np.cumsum(bounds[::-1])[::-1][1:], [0.0]])  # bound after term j
    dense = np.zeros(n, dtype=np.float32)
    touched: list[np.ndarray] = []
    everyone = bool(seg.alive.all())
    done = 0.0
    cand = None
    j = 0
    while j < len(tids):
        docs, tf = _postings(seg, int(tids[j]))
        if len(docs):
            dense[docs] += weights[j] * tf / (tf + norm[docs])
            touched.append(docs)
            done += bounds[j]
        j += 1
        if j < len(tids) and touched and rest[j - 1] < done:
            c = _union(touched, n, dense)
            if not everyone:
                c = c[seg.alive[c]]
            if len(c) >= k:
                theta = np.partition(dense[c], len(c) - k)[len(c) - k]
                if rest[j - 1] < theta:  # no unseen document can reach the top k
                    cand = c
                    break
    if cand is None:
        cand = _union(touched, n, dense) if touched else _EMPTY_I.astype(np.int64)
        if not everyone:
            cand = cand[seg.alive[cand]]
        return cand, dense[cand]
    acc = _score_candidates(seg, tids[j:], weights[j:], norm, cand, dense[cand])
    return cand, acc
