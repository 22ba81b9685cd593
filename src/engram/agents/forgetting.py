"""Forgetting: explicit, by time-to-live or age, and by decay; always audited, never half-done.

Each forgotten document leaves an audit record (``store.audit()``: when, what, why) and no
trace in the indexes: SQLite overwrites what a delete frees with zeros (``secure_delete``);
with ``purge`` (the default) the keyword and vector indexes are rebuilt from the store (old
index files are removed) and the store purges its files (SQLite truncates its write-ahead log,
PostgreSQL runs ``VACUUM``). Reflections that cite a forgotten
memory are forgotten with it, since they may restate it.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from engram.agents.scoring import DEFAULT_HALF_LIFE, heuristic_importance, recency
from engram.memory import Memory
from engram.store.filters import parse_where
from engram.stored import iter_documents

NOT_PINNED = {"$or": [{"pinned": {"$exists": False}}, {"pinned": False}]}


def forget(
    memory: Memory,
    namespace: str,
    ids: str | Sequence[str] | None = None,
    *,
    where: Any = None,
    reason: str = "",
    action: str = "forget",
    purge: bool = True,
) -> int:
    """Forget documents of ``namespace`` by id and/or filter; returns chunks removed."""
    if isinstance(ids, str):
        ids = [ids]
    if ids is None and where is None:
        raise ValueError("forget needs document ids or a filter")
    if not memory.namespace_exists(namespace):
        return 0
    where = parse_where(where)
    if ids is not None:
        key_filter = {"doc_id": {"$in": list(ids)}} if ids else None
        if key_filter is None:
            return 0
        where = {"$and": [where, key_filter]} if where else key_filter
    targets = list(iter_documents(memory, namespace, where))
    if not targets:
        return 0
    n = memory.delete(
        [d.key for d in targets],
        namespace=namespace,
        reason=reason or "forgotten on request",
        action=action,
    )
    chunk_ids = {c.id for d in targets for c in d.chunks}
    derived = [
        d.key
        for d in iter_documents(memory, namespace, {"kind": "reflection"})
        if chunk_ids & set(d.metadata.get("sources") or [])
    ]
    if derived:
        n += forget(
            memory,
            namespace,
            derived,
            reason=f"cites a forgotten memory ({reason or action})",
            action=action,
            purge=False,
        )
    memory.sync()
    if purge:
        purge_indexes(memory)
    return n


def purge_indexes(memory: Memory) -> None:
    """Rebuild the derived indexes from the store and purge the store's files (SQLite:
    truncate the write-ahead log; PostgreSQL: ``VACUUM``), so no deleted text or vector
    survives in any index file or log."""
    memory.purge()


def expire(memory: Memory, namespace: str, *, now: float | None = None, purge: bool = True) -> int:
    """Forget memories whose ``metadata.expires_at`` (seconds since the epoch) has passed."""
    now = time.time() if now is None else now
    return forget(
        memory,
        namespace,
        where={"expires_at": {"$lte": now}},
        reason="time to live ran out (expires_at passed)",
        action="expire",
        purge=purge,
    )


def forget_older_than(
    memory: Memory,
    namespace: str,
    age: float,
    *,
    now: float | None = None,
    purge: bool = True,
) -> int:
    """Forget unpinned memories created more than ``age`` seconds before ``now``."""
    now = time.time() if now is None else now
    return forget(
        memory,
        namespace,
        where={"$and": [{"created_at": {"$lt": now - age}}, NOT_PINNED]},
        reason=f"older than {age:g} s (forget_older_than policy)",
        action="expire",
        purge=purge,
    )


def decay_score(doc_created_at: float, importance: int, now: float, half_life: float) -> float:
    """``recency * importance / 10``: what a memory is still worth."""
    return recency(now - doc_created_at, half_life) * importance / 10


def decay(
    memory: Memory,
    namespace: str,
    threshold: float,
    *,
    half_life: float = DEFAULT_HALF_LIFE,
    now: float | None = None,
    purge: bool = True,
) -> int:
    """Forget unpinned memories whose ``recency * importance / 10`` fell below ``threshold``."""
    now = time.time() if now is None else now
    if not memory.namespace_exists(namespace):
        return 0
    weak: dict[str, float] = {}
    for doc in iter_documents(memory, namespace, NOT_PINNED):
        value = doc.metadata.get("importance")
        importance = (
            int(value)
            if isinstance(value, int | float) and not isinstance(value, bool)
            else heuristic_importance(doc.text)
        )
        score = decay_score(doc.created_at, importance, now, half_life)
        if score < threshold:
            weak[doc.key] = score
    if not weak:
        return 0
    return forget(
        memory,
        namespace,
        list(weak),
        reason=f"decayed below {threshold:g} (recency x importance, half-life {half_life:g} s)",
        action="decay",
        purge=purge,
    )
