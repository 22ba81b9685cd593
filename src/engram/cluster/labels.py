"""Cluster labels by class-based TF-IDF (c-TF-IDF, as in BERTopic), shown as real words."""

from __future__ import annotations

import math
from collections import Counter
from functools import lru_cache

import Stemmer

from engram.index.analyzer import STOPWORDS, analyze, tokenize

MAX_KEYWORDS = 10


@lru_cache(maxsize=1)
def _stemmer() -> Stemmer.Stemmer:
    return Stemmer.Stemmer("english")


def surface_forms(texts: list[str]) -> dict[str, str]:
    """Map each stem to its most frequent surface word in ``texts`` (ties: first seen)."""
    counts: dict[str, Counter[str]] = {}
    for text in texts:
        words = [w for w in tokenize(text) if w not in STOPWORDS]
        for word, stem in zip(words, _stemmer().stemWords(words), strict=True):
            counts.setdefault(stem, Counter())[word] += 1
    # Counter.most_common keeps insertion order among equal counts.
    return {stem: c.most_common(1)[0][0] for stem, c in counts.items()}


def c_tf_idf(term_counts: list[Counter[str]]) -> list[dict[str, float]]:
    """Weight of each term per class: ``tf * log(1 + A / f)``.

    ``tf`` is the term's count in the class, ``A`` the average number of terms per class and
    ``f`` the term's count over all classes. With a single class the weight is plain ``tf``.
    """
    if len(term_counts) == 1:
        return [{t: float(c) for t, c in term_counts[0].items()}]
    total: Counter[str] = Counter()
    for counts in term_counts:
        total.update(counts)
    avg = sum(total.values()) / len(term_counts)
    return [
        {t: c * math.log(1 + avg / total[t]) for t, c in counts.items()} for counts in term_counts
    ]


def label_clusters(
    clusters: list[list[str]], *, max_terms: int = 3, max_keywords: int = MAX_KEYWORDS
) -> list[tuple[str, list[str]]]:
    """``(label, keywords)`` for each cluster of texts (texts best first).

    Keywords are the top c-TF-IDF terms displayed as their most frequent surface word; the label
    joins the first ``max_terms`` with ", ". Pure numbers are used only when nothing else is left.
    Ties go to the term seen first (in the cluster's best text first), so output is deterministic.
    """
    term_counts = []
    first_seen: list[dict[str, int]] = []
    for texts in clusters:
        terms = [t for text in texts for t in analyze(text)]
        term_counts.append(Counter(terms))
        seen: dict[str, int] = {}
        for pos, term in enumerate(terms):
            seen.setdefault(term, pos)
        first_seen.append(seen)
    out = []
    for texts, weights, seen in zip(clusters, c_tf_idf(term_counts), first_seen, strict=True):
        ranked = sorted(weights, key=lambda t: (t.isdigit(), -weights[t], seen[t]))
        surface = surface_forms(texts)
        keywords: list[str] = []
        for term in ranked[: max(max_keywords, max_terms)]:
            word = surface.get(term, term)
            if word not in keywords:
                keywords.append(word)
        out.append((", ".join(keywords[:max_terms]), keywords))
    return out
