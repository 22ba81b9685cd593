"""Group hits by similarity: drop near-duplicates, then average-linkage clustering on cosine."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from engram.cluster.labels import label_clusters
from engram.config import Config
from engram.index.analyzer import analyze, tokenize
from engram.types import Hit


@dataclass
class Cluster:
    """A group of similar hits with a readable label; ``score`` is the best hit's score."""

    label: str
    keywords: list[str]
    hits: list[Hit]
    score: float

    @property
    def ids(self) -> list[int]:
        """Ids of the hits, best first."""
        return [h.id for h in self.hits]


def _normalise_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return vectors / norms


def tfidf_vectors(texts: list[str]) -> np.ndarray:
    """L2-normalised TF-IDF vectors (smoothed idf) over ``analyze`` terms; fallback embeddings."""
    docs = [Counter(analyze(t)) for t in texts]
    vocab = sorted({term for d in docs for term in d})
    if not vocab:
        return np.zeros((len(texts), 1))
    col = {term: j for j, term in enumerate(vocab)}
    tf = np.zeros((len(texts), len(vocab)))
    for i, d in enumerate(docs):
        for term, count in d.items():
            tf[i, col[term]] = count
    df = (tf > 0).sum(axis=0)
    idf = np.log((1 + len(texts)) / (1 + df)) + 1.0
    return _normalise_rows(tf * idf)


def _resolve_vectors(hits: list[Hit], vectors: np.ndarray | None) -> np.ndarray:
    if vectors is None:
        if hits and all(h.vector is not None for h in hits):
            vectors = np.vstack([np.asarray(h.vector, dtype=float).ravel() for h in hits])
        else:
            return tfidf_vectors([h.text for h in hits])
    vectors = np.asarray(vectors, dtype=float)
    if vectors.ndim != 2 or vectors.shape[0] != len(hits):
        raise ValueError(
            f"vectors must be a 2-D array with one row per hit; got shape {vectors.shape} "
            f"for {len(hits)} hits"
        )
    return _normalise_rows(vectors)


def _text_key(text: str) -> str:
    words = tokenize(text)
    return " ".join(words) if words else " ".join(text.lower().split())


def _dedup(hits: list[Hit], vectors: np.ndarray, threshold: float) -> list[int]:
    """Indices of the hits to keep (input is sorted best first), dropping near-duplicates."""
    kept: list[int] = []
    keys: set[str] = set()
    for i, hit in enumerate(hits):
        key = _text_key(hit.text)
        if key in keys:
            continue
        if kept and float(np.max(vectors[kept] @ vectors[i])) >= threshold:
            continue
        kept.append(i)
        keys.add(key)
    return kept


def _assign(vectors: np.ndarray, threshold: float) -> list[int]:
    """Cluster number per row: average linkage on cosine distance, cut at ``threshold``."""
    n = len(vectors)
    if n == 1:
        return [0]
    dist = np.clip(1.0 - vectors @ vectors.T, 0.0, 2.0)
    dist = (dist + dist.T) / 2.0
    np.fill_diagonal(dist, 0.0)
    tree = linkage(squareform(dist, checks=False), method="average")
    return [int(c) for c in fcluster(tree, t=threshold, criterion="distance")]


def cluster_hits(
    hits: list[Hit],
    vectors: np.ndarray | None = None,
    *,
    threshold: float = Config.cluster_threshold,
    dedup_threshold: float = 0.95,
    max_label_terms: int = 3,
) -> list[Cluster]:
    """Group ``hits`` into labelled clusters, best cluster first.

    ``vectors`` are embeddings aligned with ``hits`` (default: ``hit.vector``, else TF-IDF of the
    texts). Near-duplicates (cosine >= ``dedup_threshold`` or the same normalised text) are dropped,
    keeping the higher-scored hit. Clusters are cut at cosine distance ``threshold`` (default:
    ``Config.cluster_threshold``, as for answers).
    """
    if not hits:
        return []
    vecs = _resolve_vectors(hits, vectors)
    order = sorted(range(len(hits)), key=lambda i: (-_score(hits[i]), i))
    hits = [hits[i] for i in order]
    vecs = vecs[order]
    keep = _dedup(hits, vecs, dedup_threshold)
    hits = [hits[i] for i in keep]
    vecs = vecs[keep]

    groups: dict[int, list[Hit]] = {}
    for hit, number in zip(hits, _assign(vecs, threshold), strict=True):
        groups.setdefault(number, []).append(hit)  # hits arrive best first
    members = list(groups.values())  # first-seen order == best-score order
    labels = label_clusters([[h.text for h in m] for m in members], max_terms=max_label_terms)
    clusters = []
    for m, (label, keywords) in zip(members, labels, strict=True):
        clusters.append(Cluster(label or _fallback_label(m), keywords, m, m[0].score))
    return clusters


def _score(hit: Hit) -> float:
    s = float(hit.score)
    return s if not math.isnan(s) else -math.inf


def _fallback_label(hits: list[Hit]) -> str:
    return hits[0].title.strip() or "Other"
