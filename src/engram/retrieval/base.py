"""The ``Retrieval`` protocol: keyword and vector candidates within a typed ``Scope``.

A retrieval backend answers the searches ``Memory`` runs and keeps itself current with the
store, which stays the one source of truth. Backends: ``local`` (derived index files beside a
SQLite store, fed from its changelog), ``postgres`` (full text and pgvector inside the
PostgreSQL store's own database). A new backend is one module implementing this protocol plus
one entry in ``engram.retrieval.BACKENDS`` keyed by its URL scheme.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

Candidates = list[tuple[int, float]]  # (chunk id, score), best first


@dataclass(frozen=True)
class Scope:
    """What one search may return: chunks of ``namespaces`` (None: every namespace) whose
    document matches ``where`` (a parsed filter, see ``engram.store.filters``).

    ``empty`` says nothing can match (skip retrieval); ``resolved`` is the backend's own
    form of the restriction, made once per search by ``Retrieval.scope`` (local: sorted
    allowed chunk ids; PostgreSQL: an SQL condition on ``documents d``); None when
    ``everything`` is in scope."""

    namespaces: tuple[str, ...] | None = None
    where: dict[str, Any] | None = None
    empty: bool = False
    resolved: Any = None

    @property
    def everything(self) -> bool:
        """No restriction: every chunk of the store may be returned."""
        return not self.empty and self.namespaces is None and not self.where


def net_changes(changes: Sequence[tuple[int, str, int]]) -> tuple[list[int], list[int]]:
    """A changelog batch ``(seq, op, chunk id)`` folded to ``(added, removed)`` chunk ids:
    a chunk added and then removed within the batch is in neither; ``added`` keeps the order
    of first addition."""
    pending: dict[int, None] = {}
    removed: list[int] = []
    for _, op, cid in changes:
        if op == "add":
            pending[cid] = None
        elif cid in pending:
            del pending[cid]
        else:
            removed.append(cid)
    return list(pending), removed


EVERYTHING = Scope()
NOTHING = Scope(empty=True)


@runtime_checkable
class Retrieval(Protocol):
    """Keyword and vector search over the store's chunks, kept current with its changelog."""

    name: str  # the backend's URL scheme: "local", "postgres", ...

    def scope(self, namespaces: Sequence[str] | None, where: dict[str, Any] | None) -> Scope:
        """The restriction for one search, resolved for this backend."""
        ...

    def keyword(self, query: str, n: int, scope: Scope) -> Candidates:
        """The top ``n`` chunks for the words of ``query`` (any term matches), in scope."""
        ...

    def vector(self, vector: np.ndarray, n: int, scope: Scope) -> Candidates:
        """The top ``n`` chunks by inner product with ``vector``, in scope."""
        ...

    def vectors_for(self, ids: Sequence[int]) -> dict[int, np.ndarray]:
        """Stored vectors of these chunks (those still present)."""
        ...

    def set_dim(self, dim: int) -> None:
        """Fix the vector dimension (called once the store's embedder is known)."""
        ...

    def sync(self, autosave: bool = True) -> int:
        """Catch up with the store's changelog; the number of changes applied."""
        ...

    def reindex(self) -> dict[str, int]:
        """Rebuild everything derived from the store; rows indexed per kind."""
        ...

    def save(self) -> None:
        """Persist what is derived (a no-op where the backend persists as it goes)."""
        ...

    def stats(self) -> dict[str, Any]:
        """Per kind (``keyword``, ``vector``): rows, deleted, last change applied, and more."""
        ...

    def close(self) -> None:
        """Release what the backend holds (connections, files); the store stays open."""
        ...
