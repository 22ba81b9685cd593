"""The ``Embedder`` protocol: texts in, L2-normalised float32 vectors out."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from engram.errors import EngramError


@runtime_checkable
class Embedder(Protocol):
    model_id: str  # stored with every vector; a store refuses vectors of another model
    dim: int
    max_tokens: int  # the model's input limit; chunks are sized to fit it

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...
    def count_tokens(self, text: str) -> int: ...


def default_threads() -> int:
    """Threads for embedders and index builds: ``ENGRAM_THREADS``, else the cores this
    process may run on (``--threads N`` and ``Config.threads`` override both)."""
    return threads_from_env(cpu_count())


def threads_from_env(default: int) -> int:
    """``ENGRAM_THREADS`` if set (a positive integer, else a one-line error), else ``default``."""
    value = os.environ.get("ENGRAM_THREADS", "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise EngramError(f"ENGRAM_THREADS must be a positive integer, got {value!r}")
    return int(value)


def cpu_count() -> int:
    """Cores this process may run on (its CPU affinity where the system tells it)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
