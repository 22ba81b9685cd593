"""Embedders behind one protocol."""

from engram.embed.base import Embedder
from engram.embed.factory import create_embedder, register_embedder

__all__ = ["Embedder", "create_embedder", "register_embedder"]
