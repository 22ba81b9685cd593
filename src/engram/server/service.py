"""One ``Memory`` shared by a server process, with the locking and input checks around it.

Both the HTTP API and the MCP server go through ``MemoryService``. Every call into the
``Memory`` holds one lock (searches also advance the derived indexes, so reads are not
read-only); answer generation runs outside it under a lock of its own, so a slow model does
not block searches and writes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from engram.errors import EngramError, FilterError, NamespaceError
from engram.identity import document_key
from engram.memory import DEFAULT_NAMESPACE, AddReport, Memory, check_namespace
from engram.store.filters import compile_where, parse_where, to_timestamp
from engram.turns import Turn
from engram.types import Document, Hit

MAX_FILTER_DEPTH = 12
MAX_FILTER_NODES = 256

MemoryFactory = Callable[[], Memory]


class NotFoundError(EngramError):
    """An unknown namespace or document (HTTP 404)."""


def _measure(value: Any, depth: int, counter: list[int]) -> None:
    counter[0] += 1
    if counter[0] > MAX_FILTER_NODES:
        raise FilterError(f"filter too large: more than {MAX_FILTER_NODES} terms")
    if depth > MAX_FILTER_DEPTH:
        raise FilterError(f"filter nested too deeply: more than {MAX_FILTER_DEPTH} levels")
    if isinstance(value, dict):
        for item in value.values():
            _measure(item, depth + 1, counter)
    elif isinstance(value, list | tuple):
        for item in value:
            _measure(item, depth + 1, counter)


def check_where(where: Any) -> dict[str, Any] | None:
    """Parse a filter (object or short text form), bound its size, and compile it once so
    that a bad filter fails before anything runs (``FilterError``)."""
    if where is not None and not isinstance(where, dict | str):
        raise FilterError(
            f"a filter must be an object (or the short text form), got {type(where).__name__}"
        )
    parsed = parse_where(where)
    if parsed is None:
        return None
    _measure(parsed, 0, [0])
    compile_where(parsed)
    return parsed


def turn_document(
    text: str,
    speaker: str,
    *,
    time_: float | str | None = None,
    session: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Document:
    """A conversation turn (``engram.turns.Turn``) posted to the server, dated ``time_``
    (default now); keyed ``turn:<hash>``, so posting it again stores it once."""
    at = to_timestamp(time_) if time_ is not None else time.time()
    if not isinstance(text, str) or not text.strip():
        return Document(text="", created_at=at)  # counted as empty by ``add``, like any blank
    return Turn(speaker, text, at, session=session, metadata=dict(metadata or {})).document()


class MemoryService:
    """Thread-safe access to one ``Memory`` (created on first use from ``factory``)."""

    def __init__(self, memory: Memory | MemoryFactory):
        self._memory: Memory | None = memory if isinstance(memory, Memory) else None
        self._factory: MemoryFactory | None = None if self._memory else memory  # type: ignore[assignment]
        self.owns_memory = self._memory is None
        self.lock = threading.RLock()
        self.generate_lock = threading.Lock()

    @property
    def memory(self) -> Memory:
        if self._memory is None:
            with self.lock:
                if self._memory is None:
                    assert self._factory is not None
                    self._memory = self._factory()
        return self._memory

    def close(self) -> None:
        with self.lock:
            if self._memory is not None and self.owns_memory:
                self._memory.close()
                self._memory = None

    # -- namespaces -----------------------------------------------------------------------
    def exists(self, namespace: str) -> bool:
        with self.lock:
            return self.memory.namespace_exists(namespace)

    def require(self, namespace: str) -> str:
        """A valid namespace that exists (``NotFoundError`` otherwise)."""
        check_namespace(namespace)
        if not self.exists(namespace):
            raise NotFoundError(f"unknown namespace {namespace!r}")
        return namespace

    def namespaces(self) -> list[dict[str, Any]]:
        with self.lock:
            return self.memory.namespaces()

    def namespace_stats(self, namespace: str) -> dict[str, Any]:
        with self.lock:
            stats = self.memory.namespace_stats(namespace)
        if stats is None:
            raise NotFoundError(f"unknown namespace {namespace!r}")
        return {"namespace": namespace, **stats}

    def drop_namespace(self, namespace: str, reason: str = "") -> int:
        with self.lock:
            return self.memory.drop_namespace(namespace, reason=reason)

    def audit(self, namespace: str, limit: int) -> list[dict[str, Any]]:
        with self.lock:
            return self.memory.audit(namespace, limit=limit)

    # -- documents ------------------------------------------------------------------------
    def add(self, docs: list[Document], namespace: str) -> dict[str, Any]:
        check_namespace(namespace)
        keys = [document_key(d) for d in docs if d.text and d.text.strip()]
        with self.lock:
            report: AddReport = self.memory.add_documents(docs, namespace=namespace)
        out = report.to_dict()
        out.pop("ignored", None)  # only folder walks fill it
        out["ids"] = keys
        return out

    def list_documents(self, namespace: str, limit: int, offset: int) -> dict[str, Any]:
        with self.lock:
            total, docs = self.memory.list_documents(namespace, limit, offset)
        nxt = offset + len(docs)
        return {
            "documents": docs,
            "total": total,
            "limit": limit,
            "offset": offset,
            "next_offset": nxt if nxt < total else None,
        }

    def get_document(self, namespace: str, doc_id: str) -> dict[str, Any]:
        with self.lock:
            doc = self.memory.get_document(namespace, doc_id)
        if doc is None:
            raise NotFoundError(f"no document {doc_id!r} in namespace {namespace!r}")
        return doc

    def delete(
        self,
        namespace: str,
        *,
        ids: list[str] | None = None,
        where: Any = None,
        reason: str = "",
        missing_ok: bool = True,
    ) -> dict[str, Any]:
        """Delete documents by id and/or filter; refuses an empty request (use drop)."""
        parsed = check_where(where)
        if not ids and not parsed:
            raise EngramError(
                "nothing to delete: give document ids or a non-empty filter "
                "(to delete a whole namespace, delete the namespace)"
            )
        with self.lock:
            mem = self.memory
            n_docs = mem.count_documents(namespace, ids or None, parsed)
            if not n_docs and not missing_ok:
                raise NotFoundError(f"no document {(ids or [''])[0]!r} in namespace {namespace!r}")
            chunks = mem.delete(ids or None, where=parsed, namespace=namespace, reason=reason)
        return {"deleted_documents": n_docs, "deleted_chunks": chunks}

    # -- recall and answers ---------------------------------------------------------------
    def search(
        self,
        query: str,
        *,
        namespaces: str | list[str] | None,
        k: int = 10,
        mode: str | None = None,
        where: Any = None,
        alpha: float | None = None,
        fusion: str | None = None,
        with_vectors: bool = False,
    ) -> list[Hit]:
        parsed = check_where(where)
        if isinstance(namespaces, list) and not namespaces:
            return []
        with self.lock:
            return self.memory.search(
                query,
                k=k,
                mode=mode,
                where=parsed,
                namespace=namespaces,
                alpha=alpha,
                fusion=fusion,
                with_vectors=with_vectors,
            )

    def ask(
        self,
        question: str,
        *,
        namespaces: str | list[str] | None,
        k: int | None = None,
        where: Any = None,
        on_token: Callable[[str], None] | None = None,
        prompt_only: bool = False,
    ) -> Any:
        """Recall under the memory lock, then generate under the generator lock
        (``prompt_only``: build the exact prompt, do not call the model)."""
        parsed = check_where(where)
        with self.lock:
            mem = self.memory
            if isinstance(namespaces, list) and not namespaces:
                hits: list[Hit] = []
            else:
                hits = mem.recall_evidence(question, k=k, namespace=namespaces, where=parsed)
        with self.generate_lock:
            return mem.answer(question, hits, on_token=on_token, prompt_only=prompt_only)

    def ask_memory(
        self,
        question: str,
        *,
        namespaces: str | list[str],
        k: int | None = None,
        where: Any = None,
        on_token: Callable[[str], None] | None = None,
    ) -> Any:
        """``Memory.ask`` whole (recall and answer) under both locks.

        The generator lock is taken first, so a request queued behind another answer does not
        hold the memory lock while it waits; while it generates, searches and writes wait.
        (``ask`` above splits recall from generation to avoid that, through the lower-level
        ``recall_evidence``/``answer``; the chat endpoint uses the public ``Memory.ask``.)"""
        parsed = check_where(where)
        with self.generate_lock, self.lock:
            return self.memory.ask(
                question, k=k, namespace=namespaces, where=parsed, on_token=on_token
            )


def resolve_namespace(namespace: str | None) -> str:
    """``None`` -> the default namespace; otherwise a valid name (``NamespaceError``)."""
    return check_namespace(namespace or DEFAULT_NAMESPACE)


__all__ = [
    "MemoryService",
    "NamespaceError",
    "NotFoundError",
    "check_where",
    "document_key",
    "resolve_namespace",
    "turn_document",
]
