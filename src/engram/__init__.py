"""Engram: an open memory store for foundation models."""

from engram.memory import AddReport, Memory
from engram.types import Chunk, Document, Hit

__version__ = "0.1.0"
__all__ = ["AddReport", "Chunk", "Document", "Hit", "Memory", "__version__"]
