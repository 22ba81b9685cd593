"""The optional recall stages around fusion, each off unless its config setting is set.

``Recaller.recall`` calls these in order: ``feedback`` (RM3 on the keyword leg, Rocchio on the
vector leg), ``query_alpha`` (per-query fusion weight), ``learned`` (in place of the fusion of
``recall/fusion.py`` when ``fusion`` is "learned"), ``documents`` (document pooling and
whole-document vectors) and, on the final hits, ``rerank`` (the local model as a scorer).
Every function returns its input unchanged when its setting is off, so the defaults in
``Config`` decide what runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from engram.recall.adaptive import adaptive_alpha
from engram.recall.documents import add_document_vectors, document_vectors, pool_documents
from engram.recall.feedback import add_rankings, expansion_terms, rocchio
from engram.recall.fusion import Ranking
from engram.recall.learned import cosines, learned_fuse
from engram.recall.rerank import rerank_hits
from engram.retrieval.base import Scope
from engram.types import Hit

if TYPE_CHECKING:
    from engram.config import Config
    from engram.generate.base import Generator
    from engram.retrieval.base import Retrieval
    from engram.store.base import Store

Legs = tuple[list[tuple[int, float]], list[tuple[int, float]]]


class Stages(Protocol):
    """What the stages read and write: a ``Memory`` (its config, store, retrieval and
    local model, and the time its last rerank took)."""

    config: Config
    store: Store
    retrieval: Retrieval
    last_rerank_seconds: float

    @property
    def generator(self) -> Generator: ...


def feedback(
    memory: Stages,
    query: str,
    query_vector: np.ndarray | None,
    kw: Ranking,
    vec: Ranking,
    n: int,
    scope: Scope,
    keywords: Callable[[str], Ranking] | None = None,
) -> Legs:
    """The legs after pseudo-relevance feedback (``rm3_terms``, ``rocchio_weight``);
    ``keywords`` runs the expansion query as the first keyword leg ran (its scope)."""
    c = memory.config
    kw_out, vec_out = list(kw), list(vec)
    if c.rm3_terms > 0 and kw_out:
        top = kw_out[: c.feedback_docs]
        texts = memory.store.chunk_texts([cid for cid, _ in top])
        passages = [(texts[cid], s) for cid, s in top if cid in texts]
        terms = expansion_terms(query, passages, c.rm3_terms, c.language)
        if terms:
            expansion = " ".join(terms)
            extra = (
                keywords(expansion) if keywords else memory.retrieval.keyword(expansion, n, scope)
            )
            kw_out = add_rankings(kw_out, extra, c.rm3_weight)[:n]
    if c.rocchio_weight and vec_out and query_vector is not None:
        ids = [cid for cid, _ in vec_out[: c.feedback_docs]]
        moved = rocchio(query_vector, memory.retrieval.vectors_for(ids), c.rocchio_weight)
        vec_out = list(memory.retrieval.vector(moved, n, scope))
    return kw_out, vec_out


def query_alpha(config: Config, kw: Ranking, vec: Ranking, alpha: float) -> float:
    """The blend's vector weight for this query (``adaptive_gain`` 0: ``alpha``)."""
    return adaptive_alpha(kw, vec, alpha, config.adaptive_gain)


def documents(
    memory: Stages, fused: dict[int, float], query_vector: np.ndarray | None, scope: Scope
) -> dict[int, float]:
    """Fused chunk scores with document pooling (``doc_pool_decay``) and whole-document
    vectors (``doc_vector_weight``) applied."""
    c = memory.config
    if not fused or not (c.doc_pool_decay or (c.doc_vector_weight and query_vector is not None)):
        return fused
    doc_of = _documents_of(memory, list(fused))
    fused = pool_documents(fused, doc_of, c.doc_pool_decay)
    if c.doc_vector_weight and query_vector is not None:
        siblings = _document_chunks(memory, doc_of, scope)
        vectors = memory.retrieval.vectors_for(list(siblings))
        doc_vecs = document_vectors(vectors, siblings)
        fused = add_document_vectors(fused, doc_of, doc_vecs, query_vector, c.doc_vector_weight)
    return fused


def learned(
    memory: Stages, kw: Ranking, vec: Ranking, query_vector: np.ndarray, scope: Scope
) -> dict[int, float]:
    """``fusion = "learned"`` (``recall/learned.py``): every candidate of either leg scored
    from its keyword z-score, its own cosine and its document's whole-document cosine."""
    c = memory.config
    ids = list(dict.fromkeys([cid for cid, _ in kw] + [cid for cid, _ in vec]))
    if not ids:
        return {}
    doc_of = _documents_of(memory, ids)
    siblings = _document_chunks(memory, doc_of, scope) if c.learned_document_weight else {}
    vectors = memory.retrieval.vectors_for(list(set(siblings) | set(doc_of)))
    chunk_cos = cosines({cid: vectors[cid] for cid in doc_of if cid in vectors}, query_vector)
    doc_vecs = document_vectors({cid: vectors[cid] for cid in siblings if cid in vectors}, siblings)
    return learned_fuse(
        kw,
        chunk_cos,
        doc_of,
        cosines(doc_vecs, query_vector),
        c.learned_cosine_weight,
        c.learned_document_weight,
    )


def _document_chunks(memory: Stages, doc_of: dict[int, Any], scope: Scope) -> dict[int, Any]:
    """Every stored chunk of the candidates' documents, mapped to its document."""
    by_namespace: dict[str, set[str]] = {}
    for namespace, key in doc_of.values():
        by_namespace.setdefault(namespace, set()).add(key)
    out: dict[int, Any] = {}
    for namespace, keys in by_namespace.items():
        ids = memory.store.allowed_ids([namespace], {"doc_id": {"$in": sorted(keys)}})
        if isinstance(scope.resolved, np.ndarray):  # local backend: the allowed chunk ids
            ids = np.intersect1d(ids, scope.resolved)
        out.update(_documents_of(memory, [int(i) for i in ids]))
    return out


def _documents_of(memory: Stages, ids: list[int]) -> dict[int, tuple[str, str]]:
    """The document, ``(namespace, key)``, of each stored chunk among ``ids``."""
    rows = memory.store.hit_rows(ids)
    return {cid: (r["namespace"], r["doc_id"]) for cid, r in rows.items()}


def rerank(memory: Stages, query: str, hits: list[Hit]) -> list[Hit]:
    """Hits with the top ``rerank_top`` reordered by the local model (0: unchanged)."""
    c = memory.config
    if c.rerank_top <= 1 or len(hits) < 2:
        return hits
    out, spent = rerank_hits(
        memory.generator, query, hits, c.rerank_top, c.rerank_weight, c.rerank_score
    )
    memory.last_rerank_seconds = spent
    return out
