"""The ``Embedder`` protocol: texts in, L2-normalised float32 vectors out."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Embedder(Protocol):
    model_id: str  # stored with every vector; a store refuses vectors of another model
    dim: int
    max_tokens: int  # the model's input limit; chunks are sized to fit it

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...
    def count_tokens(self, text: str) -> int: ...


def default_threads() -> int:
    """Threads for local models: ``ENGRAM_THREADS``, else 1 (fastest on shared small machines)."""
    try:
        return max(1, int(os.environ.get("ENGRAM_THREADS", "1")))
    except ValueError:
        return 1


def normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
