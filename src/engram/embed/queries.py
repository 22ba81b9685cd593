"""The last few query vectors, kept so that one question is embedded once per ``ask``: recall
embeds it, and the reader reuses that vector to compare evidence sentences with it."""

from __future__ import annotations

import threading

import numpy as np

from engram.embed.base import Embedder


class QueryVectors:
    """A small thread-safe cache of query vectors per embedder (oldest dropped first)."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self._vectors: dict[tuple[int, str], np.ndarray] = {}
        self._lock = threading.Lock()

    def get(self, embedder: Embedder, query: str) -> np.ndarray:
        """``query``'s vector from ``embedder``, embedded only when not cached."""
        key = (id(embedder), query)
        with self._lock:
            cached = self._vectors.get(key)
        if cached is not None:
            return cached
        vector = embedder.embed([query])[0]
        with self._lock:
            self._vectors[key] = vector
            while len(self._vectors) > self.size:
                self._vectors.pop(next(iter(self._vectors)))
        return vector
