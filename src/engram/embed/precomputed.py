"""For stores fed with vectors computed elsewhere: no model, queries bring their own vector."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from engram.errors import EngramError


class PrecomputedEmbedder:
    """Names the model and dimension of vectors the caller supplies; embeds nothing itself."""

    max_tokens = 1 << 20

    def __init__(self, dim: int, model_id: str = "precomputed"):
        self.dim, self.model_id = int(dim), model_id

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        raise EngramError(
            f"this store holds precomputed {self.model_id} vectors: pass vectors to "
            "import_vectors() and query_vector= to search()"
        )
