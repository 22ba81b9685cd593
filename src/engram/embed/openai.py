"""Embeddings from any OpenAI-compatible ``/v1/embeddings`` endpoint (vLLM, Ollama, hosted)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import httpx
import numpy as np

from engram.embed.base import normalize
from engram.errors import EngramError


class OpenAIEmbedder:
    """Calls ``POST {base_url}/embeddings``; vectors are L2-normalised on arrival."""

    def __init__(
        self,
        model: str | None = None,
        base_url: str | None = None,
        api_key: str | None = None,
        dim: int | None = None,
        max_tokens: int = 512,
        timeout: float = 60.0,
        batch_size: int = 64,
    ):
        self.base_url = (
            base_url or os.environ.get("ENGRAM_EMBED_BASE_URL") or "https://api.openai.com/v1"
        ).rstrip("/")
        model = model or os.environ.get("ENGRAM_EMBED_MODEL")
        if not model:
            raise EngramError("the openai embedder needs a model name (or ENGRAM_EMBED_MODEL)")
        self.model = model
        self.model_id = f"openai:{model}"
        self.api_key = (
            api_key
            or os.environ.get("ENGRAM_EMBED_API_KEY")
            or os.environ.get("OPENAI_API_KEY", "")
        )
        self.max_tokens, self.timeout, self.batch_size = max_tokens, timeout, batch_size
        self.dim = dim or int(self.embed(["dimension probe"]).shape[1])

    def count_tokens(self, text: str) -> int:
        return max(1, len(text) // 4)  # an estimate; the server's tokenizer is unknown here

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        out = []
        url = f"{self.base_url}/embeddings"
        for i in range(0, len(texts), self.batch_size):
            batch = list(texts[i : i + self.batch_size])
            try:
                r = httpx.post(
                    url,
                    json={"model": self.model, "input": batch},
                    headers=headers,
                    timeout=self.timeout,
                )
            except httpx.HTTPError as exc:
                raise EngramError(f"embedding request to {url} failed: {exc}") from exc
            if r.status_code >= 400:
                raise EngramError(
                    f"embedding request to {url}: HTTP {r.status_code}: {r.text[:300]}"
                )
            try:
                data = sorted(r.json()["data"], key=lambda d: d["index"])
                out.append(np.array([d["embedding"] for d in data], dtype=np.float32))
            except (ValueError, KeyError, TypeError) as exc:
                raise EngramError(
                    f"unexpected embeddings reply from {url}: {r.text[:200]}"
                ) from exc
        return normalize(np.vstack(out)) if out else np.zeros((0, 0), dtype=np.float32)
