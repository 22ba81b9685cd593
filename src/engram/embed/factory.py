"""Create embedders by name: ``onnx`` (default, no torch), ``local`` (torch), ``openai``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engram.embed.base import Embedder
from engram.errors import EngramError


def _local(**kw: Any) -> Embedder:
    from engram.embed.local import SentenceTransformerEmbedder

    return SentenceTransformerEmbedder(**kw)


def _onnx(**kw: Any) -> Embedder:
    from engram.embed.onnx import OnnxEmbedder

    return OnnxEmbedder(**kw)


def _openai(**kw: Any) -> Embedder:
    from engram.embed.openai import OpenAIEmbedder

    return OpenAIEmbedder(**kw)


EMBEDDERS: dict[str, Callable[..., Embedder]] = {"local": _local, "onnx": _onnx, "openai": _openai}


def register_embedder(name: str, factory: Callable[..., Embedder]) -> None:
    EMBEDDERS[name] = factory


# The embedder of a new store: the int8 ONNX all-MiniLM-L6-v2 in the base install (its
# retrieval quality matches the torch model's: docs/benchmarks.md).
DEFAULT_EMBEDDER = "onnx"
# Model ids of the bundled embedders -> their names, for stores that recorded only the model.
_NAME_OF_MODEL = {
    "sentence-transformers/all-MiniLM-L6-v2": "local",
    "sentence-transformers/all-MiniLM-L6-v2@onnx-int8": "onnx",
}


def embedder_name_for(model_id: str | None) -> str | None:
    """The registered name whose default model is ``model_id`` (None if not a bundled one)."""
    return _NAME_OF_MODEL.get(model_id or "")


def create_embedder(kind: str | Embedder = DEFAULT_EMBEDDER, **options: Any) -> Embedder:
    if not isinstance(kind, str):
        return kind
    try:
        factory = EMBEDDERS[kind]
    except KeyError:
        raise EngramError(f"unknown embedder {kind!r}; known: {', '.join(EMBEDDERS)}") from None
    return factory(**options)
