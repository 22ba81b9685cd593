"""Create embedders by name: ``local`` (default), ``onnx``, ``openai``."""

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


def create_embedder(kind: str | Embedder = "local", **options: Any) -> Embedder:
    if not isinstance(kind, str):
        return kind
    try:
        factory = EMBEDDERS[kind]
    except KeyError:
        raise EngramError(f"unknown embedder {kind!r}; known: {', '.join(EMBEDDERS)}") from None
    return factory(**options)
