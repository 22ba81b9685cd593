"""Engram: an open memory store for foundation models.

The names below are imported on first use, so a process that needs one module of the package
(the bulk loads' word worker, ``engram.index.wordworker``) does not load all of it.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engram.memory import AddReport, Memory
    from engram.types import Chunk, Document, Hit

__version__ = "0.1.0"
__all__ = ["AddReport", "Chunk", "Document", "Hit", "Memory", "__version__"]
_HOMES = {"AddReport": "engram.memory", "Memory": "engram.memory", "Chunk": "engram.types",
          "Document": "engram.types", "Hit": "engram.types"}  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'engram' has no attribute {name!r}")
