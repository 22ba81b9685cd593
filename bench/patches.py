"""Prototypes of proposed changes to ``src/engram``, applied at run time for before/after
measurements. Nothing here is imported by Engram itself.

Build-time patches change the process (``apply``); query-time patches change one ``Memory``
instance (``apply_instance``), so the stock and the patched code can answer the same queries,
interleaved, in one process, from one store. Names:

* ``analyzer`` (build): PyStemmer's word cache off (it costs more than it saves), plus a bounded
  memo of stems in front of it (``index/analyzer.py``).
* ``keyword_add`` (build): ``KeywordIndex.add`` counts terms with numpy instead of a Python
  loop per (document, term) (``index/keyword.py``).
* ``bulk_import`` (build): ``Memory.import_vectors`` saves the indexes once at the end instead
  of every ``save_every_changes`` (each save rewrote the whole HNSW file) (``memory.py``).
* ``maxscore`` (query): exact BM25 top-k with MaxScore pruning; cached length norms; a filter
  scores only the allowed documents (``index/keyword.py``).
* ``meta_index`` (query): a SQLite expression index on ``json_extract(metadata, '$."key"')``
  and a literal JSON path in the compiled filter so the planner can use it
  (``store/filters.py``, ``store/sqlite.py``, ``memory.py``).
* ``exact_gather`` (query): filtered exact vector search gathers only the allowed rows
  (``index/vector.py``).
* ``hits`` (query): ``Memory.search`` reads the rows of the best ``k`` hits first (then more
  only if some are gone) instead of ``4 k`` at once, and the store connection memory-maps the
  database (``PRAGMA mmap_size``) (``memory.py``, ``store/sqlite.py``).
* ``single_k`` (query): keyword-only and vector-only searches ask their retriever for ``k``
  candidates, not ``candidates`` (100): nothing is fused, so the extra 90 are discarded work
  (``memory.py``).
"""

from __future__ import annotations

import types
from collections import Counter  # noqa: F401 - kept for parity with keyword.py
from typing import Any

import numpy as np

BUILD = ("analyzer", "keyword_add", "bulk_import")
QUERY = ("maxscore", "meta_index", "exact_gather", "hits", "single_k")
_applied: set[str] = set()


def names(spec: str | list[str] | None) -> list[str]:
    if not spec:
        return []
    items = spec.split("+") if isinstance(spec, str) else list(spec)
    if items == ["all"]:
        return [*BUILD, *QUERY]
    unknown = set(items) - set(BUILD) - set(QUERY)
    if unknown:
        raise ValueError(f"unknown patch(es): {sorted(unknown)}")
    return items


def apply(spec: str | list[str] | None) -> None:
    """Process-wide (build-time) patches."""
    for name in names(spec):
        if name in BUILD and name not in _applied:
            globals()[f"_apply_{name}"]()
            _applied.add(name)


def apply_instance(spec: str | list[str] | None, mem: Any) -> None:
    """Per-Memory (query-time) patches."""
    for name in names(spec):
        if name in QUERY:
            globals()[f"_instance_{name}"](mem)


# -- analyzer ---------------------------------------------------------------------------------
_MEMO_MAX = 200_000


def _apply_analyzer() -> None:
    import engram.index.analyzer as an
    import engram.index.keyword as kw

    an._stemmer.cache_clear()
    memos: dict[str, dict[str, str]] = {}

    def analyze(text: str, language: str = "english") -> list[str]:
        words = [w for w in an._TOKEN.findall(text.lower()) if w not in an.STOPWORDS]
        if not words:
            return []
        memo = memos.setdefault(language, {})
        out = [memo.get(w) for w in words]
        if None in out:
            stem = an._stemmer(language)
            stem.maxCacheSize = 0  # PyStemmer's own cache is slower than no cache
            for i, w in enumerate(words):
                if out[i] is None:
                    s = out[i] = stem.stemWord(w)
                    if len(memo) < _MEMO_MAX:
                        memo[w] = s
        return out

    an.analyze = analyze
    kw.analyze = analyze


# -- keyword add ------------------------------------------------------------------------------
def _apply_keyword_add() -> None:
    from engram.index import keyword as kw

    orig_freeze = kw.KeywordIndex.freeze

    def add(self, rows):
        if not rows:
            return
        terms = [kw.analyze(text, self.language) for _, text, _ in rows]
        lens = np.fromiter((len(t) for t in terms), dtype=np.int64, count=len(terms))
        flat = [t for ts in terms for t in ts]
        get = self.vocab.get
        tids = [get(t) for t in flat]
        if None in tids:
            for i, t in enumerate(flat):
                if tids[i] is None:
                    tids[i] = self._term_id(t)
        v = len(self.vocab)
        col0 = len(self._mem_ids)
        cols = np.repeat(np.arange(col0, col0 + len(rows), dtype=np.int64), lens)
        key, tf = np.unique(cols * v + np.asarray(tids, dtype=np.int64), return_counts=True)
        u_cols, u_tids = np.divmod(key, v)
        self.df[:v] += np.bincount(u_tids, minlength=v)
        self._mem_rows.append(u_tids)
        self._mem_cols.append(u_cols)
        self._mem_tfs.append(tf)
        self._mem_ids.extend(int(r[0]) for r in rows)
        self._mem_lens.extend(lens.tolist())
        self.total_length += float(lens.sum())
        self.n_docs += len(rows)
        self.dirty = True
        if len(self._mem_ids) >= self.memtable_docs:
            self.freeze()

    def freeze(self):
        for name in ("_mem_rows", "_mem_cols", "_mem_tfs"):
            parts = getattr(self, name)
            if parts and isinstance(parts[0], np.ndarray):
                setattr(self, name, np.concatenate(parts))
        return orig_freeze(self)

    kw.KeywordIndex.add = add
    kw.KeywordIndex.freeze = freeze


# -- bulk import ------------------------------------------------------------------------------
def _apply_bulk_import() -> None:
    from engram import memory as m

    orig = m.Memory.import_vectors

    def import_vectors(self, docs, vectors, *, namespace=m.DEFAULT_NAMESPACE, batch=5000):
        saved = self.config.save_every_changes
        self.config.save_every_changes = 1 << 62  # one save at the end, not one per 20k rows
        try:
            return orig(self, docs, vectors, namespace=namespace, batch=batch)
        finally:
            self.config.save_every_changes = saved

    m.Memory.import_vectors = import_vectors


# -- MaxScore keyword search ------------------------------------------------------------------
def _norm(seg, k1: float, b: float, avgdl: float) -> np.ndarray:
    cached = getattr(seg, "_norm_cache", None)
    if cached is None or cached[0] != avgdl:
        norm = (k1 * (1.0 - b + b * seg.lengths / avgdl)).astype(np.float32)
        seg._norm_cache = cached = (avgdl, norm)
    return cached[1]


def _postings(seg):
    m = seg.postings
    if not getattr(seg, "_sorted", False):
        if not m.has_sorted_indices:
            m.sort_indices()
        seg._sorted = True
    return m.indptr, m.indices, m.data


def _union(arrays: list[np.ndarray], n: int, dense: np.ndarray) -> np.ndarray:
    """Sorted union of sorted posting lists (documents with a partial score)."""
    if len(arrays) == 1:
        return arrays[0]
    if sum(len(a) for a in arrays) > n // 16:
        return np.flatnonzero(dense)
    a = np.concatenate(arrays)
    a.sort()
    return a[np.concatenate(([True], a[1:] != a[:-1]))]


def maxscore_search(self, query: str, k: int = 10, allowed: np.ndarray | None = None):
    """Exact BM25 top ``k``: the same scores and order as ``KeywordIndex.search``.

    Terms are taken rarest first. Once the best possible score of a document that holds none
    of the terms taken so far (the sum of the other terms' upper bounds, idf * (k1 + 1)) is
    below the k-th best partial score, the remaining (frequent, long) posting lists are only
    probed for the candidates already found (binary search), never scanned. With a filter,
    only the allowed documents are scored.
    """
    from engram.index.base import mask_of

    self.freeze()
    terms = self.query_terms(query)
    if not terms or self.n_docs == 0 or k <= 0:
        return []
    tids = np.array([self.vocab[t] for t in terms])
    df = self.df[tids].astype(np.float64)
    idf = np.log(1.0 + (self.n_docs - df + 0.5) / (df + 0.5))
    avgdl = self.total_length / self.n_docs or 1.0
    k1, b = self.k1, self.b
    order = np.argsort(-idf, kind="stable")
    tids, idf = tids[order], idf[order]
    ub = idf * (k1 + 1.0)
    rest = np.concatenate([np.cumsum(ub[::-1])[::-1][1:], [0.0]])  # bound of terms after i
    all_ids, all_scores = [], []
    for seg in self.segments:
        n = len(seg.ids)
        indptr, indices, data = _postings(seg)
        rows = len(indptr) - 1
        norm = _norm(seg, k1, b, avgdl)
        w32 = (idf * (k1 + 1.0)).astype(np.float32)
        if allowed is not None:
            keep = seg.alive & mask_of(seg.ids, allowed)
            cand = np.flatnonzero(keep)
            acc = np.zeros(len(cand), dtype=np.float32)
            for j, tid in enumerate(tids):
                if tid >= rows or not len(cand):
                    continue
                lo, hi = indptr[tid], indptr[tid + 1]
                if lo == hi:
                    continue
                docs = indices[lo:hi]
                pos = np.searchsorted(docs, cand)
                pos[pos == len(docs)] = 0
                hit = docs[pos] == cand
                tf = data[lo:hi][pos[hit]]
                acc[hit] += w32[j] * tf / (tf + norm[cand[hit]])
            good = acc > 0
            cand, acc = cand[good], acc[good]
        else:
            alive_all = bool(seg.alive.all())
            dense = np.zeros(n, dtype=np.float32)
            touched: list[np.ndarray] = []
            cand = None
            bound_done = 0.0  # best possible partial score so far
            j = 0
            while j < len(tids):
                tid = tids[j]
                if tid < rows and indptr[tid] < indptr[tid + 1]:
                    lo, hi = indptr[tid], indptr[tid + 1]
                    docs = indices[lo:hi]
                    tf = data[lo:hi]
                    dense[docs] += w32[j] * tf / (tf + norm[docs])
                    touched.append(docs)
                    bound_done += ub[j]
                j += 1
                # Pruning needs: bound of the terms left < k-th best partial score (<= bound_done)
                if j < len(tids) and touched and rest[j - 1] < bound_done:
                    c = _union(touched, n, dense)
                    if not alive_all:
                        c = c[seg.alive[c]]
                    if len(c) >= k:
                        theta = np.partition(dense[c], len(c) - k)[len(c) - k]
                        if rest[j - 1] < theta:
                            cand = c
                            break
            if cand is None:  # every term was scanned
                cand = _union(touched, n, dense) if touched else np.zeros(0, dtype=np.int64)
                if not alive_all:
                    cand = cand[seg.alive[cand]]
            else:
                for jj in range(j, len(tids)):
                    tid = tids[jj]
                    if tid >= rows or indptr[tid] == indptr[tid + 1]:
                        continue
                    lo, hi = indptr[tid], indptr[tid + 1]
                    docs = indices[lo:hi]
                    pos = np.searchsorted(docs, cand)
                    pos[pos == len(docs)] = 0
                    hit = docs[pos] == cand
                    tf = data[lo:hi][pos[hit]]
                    dense[cand[hit]] += w32[jj] * tf / (tf + norm[cand[hit]])
            acc = dense[cand]
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


def _instance_maxscore(mem) -> None:
    mem.keyword.search = types.MethodType(maxscore_search, mem.keyword)


# -- metadata expression index ----------------------------------------------------------------
def _literal_path(key: str) -> str:
    from engram.store.filters import _KEY, _json_path

    if not _KEY.match(key):
        raise ValueError(key)
    return "'" + _json_path(key).replace("'", "''") + "'"


def create_metadata_index(mem, key: str) -> None:
    """Proposed ``Memory.index_metadata(key)``: an expression index the planner can use."""
    name = "meta_" + "".join(c if c.isalnum() else "_" for c in key)
    with mem.store.transaction() as conn:
        conn.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON documents(json_extract(metadata, "
            f"{_literal_path(key)}))"
        )


def _instance_meta_index(mem, keys: tuple[str, ...] = ("tenant",)) -> None:
    """Filters compiled with literal JSON paths (so SQLite can match the expression index),
    the join driven from ``documents``."""
    import engram.store.filters as f

    for key in keys:
        create_metadata_index(mem, key)

    def field_sql(key, params, ph):
        if key in f.COLUMNS:
            return f.COLUMNS[key]
        if not f._KEY.match(key) or len(key) > 200:
            raise f.FilterError(f"invalid metadata key {key!r}")
        return f"json_extract(d.metadata, {_literal_path(key)})"

    def compile_literal(where):
        orig = f._field_sql
        f._field_sql = field_sql
        try:
            return f.compile_where(where)
        finally:
            f._field_sql = orig

    def allowed_ids(self, namespaces, where):
        cond, params = compile_literal(where)
        sql = "SELECT c.id FROM documents d JOIN chunks c ON c.document_id=d.id WHERE " + cond
        if namespaces is not None:
            sql += f" AND d.namespace IN ({','.join('?' * len(namespaces))})"
            params += list(namespaces)
        rows = self.conn.execute(sql + " ORDER BY c.id", params).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    mem.store.allowed_ids = types.MethodType(allowed_ids, mem.store)


# -- filtered exact vector search -------------------------------------------------------------
def exact_gather(self, q: np.ndarray, k: int, allowed: np.ndarray | None):
    """``_search_exact`` that, with a filter, locates allowed ids by binary search and reads
    only those rows (no full-segment masks)."""
    from engram.index.vector import top_k

    found_ids, found_scores = [], []
    for seg in self.segments:
        if allowed is None:
            keep = seg.alive
            if keep.all():
                scores, ids = np.asarray(seg.vectors) @ q, seg.ids
            else:
                pos = np.flatnonzero(keep)
                scores, ids = np.asarray(seg.vectors[pos]) @ q, seg.ids[pos]
        else:
            pos = np.searchsorted(seg.ids, allowed)
            ok = pos < len(seg.ids)
            pos = pos[ok][seg.ids[pos[ok]] == allowed[ok]]
            pos = pos[seg.alive[pos]]
            if not len(pos):
                continue
            scores, ids = np.asarray(seg.vectors[pos]) @ q, seg.ids[pos]
        ids, scores = top_k(ids, scores, k)
        found_ids.append(ids)
        found_scores.append(scores)
    if not found_ids:
        return []
    ids, scores = top_k(np.concatenate(found_ids), np.concatenate(found_scores), k)
    return [(int(i), float(s)) for i, s in zip(ids, scores, strict=True)]


def _instance_exact_gather(mem) -> None:
    mem.vector._search_exact = types.MethodType(exact_gather, mem.vector)


# -- hit rows ---------------------------------------------------------------------------------
MMAP_BYTES = 1 << 34  # address space only; pages come from the OS page cache


class _LazyRows:
    """What ``hit_rows`` returns, read ``block`` ids at a time in the order asked for."""

    def __init__(self, fetch, ids, block: int):
        self.fetch, self.ids, self.block = fetch, list(ids), block
        self.pos = {cid: i for i, cid in enumerate(self.ids)}
        self.rows: dict = {}
        self.done: set[int] = set()

    def get(self, cid, default=None):
        i = self.pos.get(cid)
        if i is None:
            return default
        b = i // self.block
        if b not in self.done:
            self.done.add(b)
            self.rows.update(self.fetch(self.ids[b * self.block : (b + 1) * self.block]))
        return self.rows.get(cid, default)

    def __getitem__(self, cid):
        row = self.get(cid)
        if row is None:
            raise KeyError(cid)
        return row

    def __contains__(self, cid):
        return self.get(cid) is not None


def _instance_hits(mem, block: int = 10) -> None:
    """Emulates the proposed loop in ``Memory.search``: rows for the first ``k`` ranked ids,
    then the next ``k``..., instead of ``4 k`` rows per read (``block`` = the benchmark's k)."""
    fetch = mem.store.hit_rows
    mem.store.conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
    mem.store.hit_rows = lambda ids: _LazyRows(fetch, ids, block)


def _instance_single_k(mem) -> None:
    search = mem.search

    def single(query, k=10, mode=None, *args, candidates=None, **kw):
        if (mode or mem.config.mode) != "hybrid" and candidates is None:
            candidates = k
        return search(query, k, mode, *args, candidates=candidates, **kw)

    mem.search = single
