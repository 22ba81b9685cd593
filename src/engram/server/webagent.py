"""An agent's memory as the web UI shows it: a timeline with importance and recency, pinned
items, reflections with the memories they cite, and forgetting with its audit trail."""

from __future__ import annotations

from typing import Any

from engram.agents.forgetting import forget
from engram.agents.scoring import heuristic_importance, recency
from engram.server.service import MemoryService
from engram.stored import StoredDocument, iter_documents

AUDIT_ROWS = 200


def importance_of(doc: StoredDocument) -> tuple[int, str]:
    """The stored 1-10 rating (``"stored"``), else the heuristic estimate (``"heuristic"``)."""
    value = doc.metadata.get("importance")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return max(1, min(10, round(value))), "stored"
    return heuristic_importance(doc.text), "heuristic"


def chunk_ids(value: Any) -> list[int]:
    """The chunk ids a reflection cites (``metadata.sources``); anything else is ignored."""
    if not isinstance(value, list):
        return []
    return [int(v) for v in value if isinstance(v, int) and not isinstance(v, bool)]


def _memory_row(doc: StoredDocument, reference: float, half_life: float) -> dict[str, Any]:
    importance, how = importance_of(doc)
    meta = doc.metadata
    return {
        "id": doc.key,
        "text": doc.text,
        "kind": meta.get("kind") or "memory",
        "speaker": meta.get("speaker"),
        "session": meta.get("session"),
        "pinned": bool(meta.get("pinned")),
        "created_at": doc.created_at,
        "importance": importance,
        "importance_from": how,
        "recency": recency(reference - doc.created_at, half_life),
        "chunk_ids": [c.id for c in doc.chunks],
        "metadata": meta,
    }


def agent_view(
    service: MemoryService,
    namespace: str,
    reference: str,
    half_life: float,
    limit: int,
    *,
    now: float,
) -> dict[str, Any]:
    """Memories newest first (pinned and reflections among them, flagged), pinned items,
    reflections with their cited memories (``missing`` when forgotten), and the audit."""
    with service.lock:
        memory = service.memory
        docs = list(iter_documents(memory, namespace, newest_first=True, limit=limit))
        ref = now
        dated = [d.created_at for d in docs if not d.metadata.get("pinned")]
        if reference == "latest" and dated:  # replayed history: recency from its newest memory
            ref = max(dated)
        rows = [_memory_row(d, ref, half_life) for d in docs]
        by_chunk = {cid: row["id"] for row in rows for cid in row["chunk_ids"]}
        reflections = []
        for row in rows:
            if row["kind"] != "reflection":
                continue
            cited = chunk_ids(row["metadata"].get("sources"))
            hits = {h.id: h for h in memory.get(cited)}
            row["cites"] = [
                {
                    "chunk_id": cid,
                    "doc_id": hits[cid].doc_id if cid in hits else by_chunk.get(cid),
                    "text": hits[cid].text if cid in hits else None,
                    "missing": cid not in hits,
                }
                for cid in cited
            ]
            reflections.append(row)
        audit = memory.audit(namespace, limit=AUDIT_ROWS)
    return {
        "namespace": namespace,
        "reference": ref,
        "half_life": half_life,
        "memories": rows,
        "pinned": [r for r in rows if r["pinned"]],
        "reflections": reflections,
        "audit": audit,
    }


def forget_memories(
    service: MemoryService, namespace: str, ids: list[str], reason: str
) -> dict[str, Any]:
    """Forget ``ids`` (and reflections citing them) with ``reason``; the new audit rows."""
    with service.lock:
        memory = service.memory
        before = memory.audit(namespace, limit=1)
        chunks = forget(memory, namespace, ids, reason=reason)
        rows = memory.audit(namespace, limit=AUDIT_ROWS)
    last = before[0] if before else None
    new = []
    for row in rows:
        if row == last:
            break
        new.append(row)
    return {"forgotten_chunks": chunks, "audit": new}
