"""Adapters for other frameworks: :mod:`engram.integrations.langchain` (a retriever and a vector
store for ``langchain-core``) and :mod:`engram.integrations.llamaindex` (a retriever for
``llama-index-core``). Each module imports its framework when imported; Engram itself never does.
"""

from __future__ import annotations

from typing import Any

from engram.types import Hit

HIT_FIELDS = ("score", "chunk_id", "doc_id", "source", "title", "namespace", "created_at")
"""The keys every adapter puts in a result's metadata, besides the document's own metadata."""


def hit_metadata(hit: Hit) -> dict[str, Any]:
    """A hit's metadata for a framework's document: the document's metadata keys, then
    Engram's fields (``score``, ``chunk_id``, ``doc_id``, ``source`` with its ``#page=``/
    ``#heading=`` anchor, ``title``, ``namespace``, ``created_at``, per-stage ``scores``).
    Engram's fields win a name clash; the document's own metadata stays whole under
    ``metadata``."""
    return {
        **hit.metadata,
        "score": hit.score,
        "chunk_id": hit.id,
        "doc_id": hit.doc_id,
        "source": hit.source,
        "title": hit.title,
        "namespace": hit.namespace,
        "created_at": hit.created_at,
        "scores": dict(hit.scores),
        "metadata": dict(hit.metadata),
    }


def install_hint(module: str, package: str, extra: str) -> str:
    return (
        f"engram.integrations.{module} needs {package}: pip install {package} "
        f"(or Engram's '{extra}' extra)"
    )
