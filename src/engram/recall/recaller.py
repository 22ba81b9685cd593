"""The recall pipeline: query -> embedding (once) -> retrievers -> fusion -> re-read rows ->
explained hits; for answers, the similarity floor on top.

``Memory.search`` and the answer path (``Memory.recall_evidence`` / ``Memory.ask``) both run
through ``Recaller``; the retrievers are reached only through ``memory.retrieval``'s
``scope`` / ``keyword`` / ``vector`` / ``vectors_for``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from engram.errors import EmbeddingMismatchError, EngramError
from engram.recall import refine
from engram.recall.explain import Explainer
from engram.recall.floor import apply_floor
from engram.recall.fusion import fuse
from engram.recall.refine import Stages
from engram.recall.settings import EvidenceFloor, RecallSettings
from engram.retrieval.base import Retrieval, Scope
from engram.types import Hit
from engram.validate import check_query

Rows = Callable[[Sequence[int]], dict[int, dict[str, Any]]]


class Recaller:
    """Runs one recall against ``retrieval``.

    Args:
        retrieval: the retrievers (``memory.retrieval``).
        rows: reads stored rows of chunk ids (``store.hit_rows``); a chunk deleted after an
            index saw it is missing there and so never returned.
        embed: embeds one query (checking the store's embedder).
        dim: the store's vector dimension (a given query vector must match it).
        scope: ``(namespace, where) -> scope`` of the backend (names checked, indexes synced).
        stages: the memory whose config turns on the optional stages around fusion
            (``recall/refine.py``: feedback, per-query alpha, documents, rerank); ``None``
            runs plain fusion.
    """

    def __init__(
        self,
        retrieval: Retrieval,
        *,
        rows: Rows,
        embed: Callable[[str], np.ndarray],
        dim: Callable[[], int],
        scope: Callable[[Any, Any], Scope],
        stages: Stages | None = None,
    ):
        self.retrieval = retrieval
        self._rows, self._embed, self._dim, self._scope = rows, embed, dim, scope
        self.stages = stages

    def recall(
        self,
        query: str,
        settings: RecallSettings,
        namespace: Any = None,
        where: Any = None,
        *,
        query_vector: np.ndarray | None = None,
        with_vectors: bool = False,
    ) -> list[Hit]:
        """The best ``settings.k`` hits for ``query``, each with its scores explained in
        ``hit.scores``. ``query_vector`` replaces embedding the query."""
        if not (settings.mode == "vector" and query_vector is not None):  # a vector needs no words
            check_query(query)
        scope = self._scope(namespace, where)
        if scope.empty:
            return []
        n = settings.candidates
        kw = self._keywords(query, n, scope, settings) if settings.uses_keywords else []
        vec: list[tuple[int, float]] = []
        if settings.uses_vectors:
            query_vector = self._query_vector(query, query_vector)
            vec = self.retrieval.vector(query_vector, n, scope)
        alpha = settings.alpha
        if self.stages is not None:
            kw, vec = refine.feedback(
                self.stages,
                query,
                query_vector,
                kw,
                vec,
                n,
                scope,
                keywords=lambda q: self._keywords(q, n, scope, settings),
            )
            if settings.mode == "hybrid":
                alpha = refine.query_alpha(self.stages.config, kw, vec, alpha)
        if settings.fusion == "learned" and settings.mode == "hybrid":
            if self.stages is None or query_vector is None:
                raise EngramError("fusion 'learned' needs a memory and a query vector")
            fused = refine.learned(self.stages, kw, vec, query_vector, scope)
        else:
            fused = fuse(
                kw,
                vec,
                mode=settings.mode,
                fusion=settings.fusion,
                alpha=alpha,
                rrf_k=settings.rrf_k,
            )
        if self.stages is not None:
            fused = refine.documents(self.stages, fused, query_vector, scope)
        ranked = sorted(fused.items(), key=lambda x: (-x[1], x[0]))
        hits = self._read(ranked, settings.k, Explainer(kw, vec))
        if self.stages is not None:
            hits = refine.rerank(self.stages, query, hits)
        if with_vectors and hits:
            vectors = self.retrieval.vectors_for([h.id for h in hits])
            for h in hits:
                h.vector = vectors.get(h.id)
        return hits

    def evidence(
        self,
        question: str,
        settings: RecallSettings,
        floor: EvidenceFloor,
        namespace: Any = None,
        where: Any = None,
    ) -> list[Hit]:
        """Hits for answering ``question``: recalled with the question embedded once (that
        vector also scores each hit's similarity), then cut at the evidence ``floor``."""
        vector = self._embed(question)
        hits = self.recall(
            question,
            settings,
            namespace,
            where,
            query_vector=vector if settings.uses_vectors else None,
            with_vectors=True,
        )
        return apply_floor(question, hits, vector, floor)

    def _keywords(
        self, query: str, n: int, scope: Scope, settings: RecallSettings
    ) -> list[tuple[int, float]]:
        """The keyword leg: chunks by their own BM25, or by their document's."""
        search = getattr(self.retrieval, "document_keyword", None)
        if settings.keyword_scope == "chunk" or (settings.keyword_scope == "auto" and not search):
            return self.retrieval.keyword(query, n, scope)
        if search is None:
            raise EngramError(
                f"keyword_scope 'document' needs the local retrieval backend; the "
                f"{self.retrieval.name} backend scores chunks (set keyword_scope = 'chunk')"
            )
        return list(search(query, n, scope, settings.title_weight))

    def _query_vector(self, query: str, given: np.ndarray | None) -> np.ndarray:
        if given is None:
            return self._embed(query)
        dim = self._dim()
        if np.shape(given) != (dim,):
            raise EmbeddingMismatchError(
                f"query_vector has shape {np.shape(given)}, the store holds {dim}-dim vectors"
            )
        return given

    def _read(self, ranked: list[tuple[int, float]], k: int, explain: Explainer) -> list[Hit]:
        """Stored rows of the best ``k``; more are read only when some of those were deleted
        meanwhile."""
        hits: list[Hit] = []
        for start in range(0, len(ranked), k):
            part = ranked[start : start + k]
            rows = self._rows([cid for cid, _ in part])
            for cid, score in part:
                row = rows.get(cid)
                if row is None:
                    continue
                hits.append(Hit(id=cid, score=score, scores=explain.scores(cid, score), **row))
                if len(hits) == k:
                    return hits
        return hits
