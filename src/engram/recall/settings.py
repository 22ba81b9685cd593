"""Typed recall settings: how many hits, which retrievers, how they are fused, and the
evidence floor of the answer path. Built from ``Config``; every default lives there."""

from __future__ import annotations

import math
from dataclasses import dataclass

from engram.config import Config
from engram.errors import EngramError
from engram.recall.fusion import FUSIONS
from engram.recall.rerank import check_rerank_score

MODES = ("hybrid", "keyword", "vector")
KEYWORD_SCOPES = ("auto", "chunk", "document")


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise EngramError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    return mode


def check_keyword_scope(scope: str, title_weight: float) -> tuple[str, float]:
    """``(keyword_scope, title_weight)`` checked, with a one-line error for a bad value."""
    if scope not in KEYWORD_SCOPES:
        raise EngramError(
            f"unknown keyword_scope {scope!r}; use one of {', '.join(KEYWORD_SCOPES)}"
        )
    number = isinstance(title_weight, int | float) and not isinstance(title_weight, bool)
    if not number or not 0.0 <= title_weight < float("inf"):
        raise EngramError(f"title_weight must be a number >= 0, got {title_weight!r}")
    return scope, float(title_weight)


def check_recall_config(config: Config) -> None:
    """``config``'s recall settings checked, with a one-line error for a bad value."""
    check_mode(config.mode)
    check_keyword_scope(config.keyword_scope, config.title_weight)
    check_rerank_score(config.rerank_score)


def check_learned_weights(config: Config) -> None:
    """The weights of ``fusion = "learned"``: finite numbers (a clear error otherwise)."""
    for name in ("learned_cosine_weight", "learned_document_weight"):
        value = getattr(config, name)
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not number or not math.isfinite(value):
            raise EngramError(f"{name} must be a finite number, got {value!r}")


@dataclass(frozen=True)
class RecallSettings:
    """One recall: ``k`` hits by ``mode``; hybrid fuses ``candidates`` per retriever with
    ``fusion`` (``blend`` weighted by ``alpha``, ``rrf`` with constant ``rrf_k``, or ``learned``:
    ``recall/learned.py``, its weights in ``Config``). The
    keyword retriever scores chunks, or with ``keyword_scope`` "document" each chunk's whole
    document (plus ``title_weight`` times its title's BM25); "auto" is "document" where the
    retrieval backend can score documents, else "chunk"."""

    k: int
    mode: str
    fusion: str
    alpha: float
    rrf_k: int
    candidates: int
    keyword_scope: str = "auto"
    title_weight: float = 0.1

    @classmethod
    def from_config(
        cls,
        config: Config,
        *,
        k: int,
        mode: str | None = None,
        fusion: str | None = None,
        alpha: float | None = None,
        candidates: int | None = None,
    ) -> RecallSettings:
        """The config's settings with these overrides, checked (a clear error for each)."""
        mode = check_mode(mode or config.mode)
        fusion = fusion or config.fusion
        if fusion not in FUSIONS:
            raise EngramError(f"unknown fusion {fusion!r}; use one of {', '.join(FUSIONS)}")
        if fusion == "learned":
            check_learned_weights(config)
        alpha = config.alpha if alpha is None else alpha
        if not 0.0 <= alpha <= 1.0:
            raise EngramError(f"alpha must be between 0 and 1, got {alpha}")
        if not isinstance(k, int) or k < 1:
            raise EngramError(f"k must be a positive integer, got {k!r}")
        # Single-retriever modes fuse nothing, so k candidates are enough.
        pool = max(k, candidates or (config.candidates if mode == "hybrid" else k))
        scope, weight = check_keyword_scope(config.keyword_scope, config.title_weight)
        return cls(k, mode, fusion, alpha, config.rrf_k, pool, scope, weight)

    @property
    def uses_keywords(self) -> bool:
        return self.mode in ("hybrid", "keyword")

    @property
    def uses_vectors(self) -> bool:
        return self.mode in ("hybrid", "vector")


@dataclass(frozen=True)
class EvidenceFloor:
    """When a recalled hit counts as evidence for an answer: its cosine to the question
    reaches ``min_similarity``, or it holds ``min_term_coverage`` of the question's terms."""

    min_similarity: float
    min_term_coverage: float
    language: str

    @classmethod
    def from_config(cls, config: Config) -> EvidenceFloor:
        return cls(config.min_similarity, config.min_term_coverage, config.language)
