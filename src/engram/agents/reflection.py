"""Reflection (Park et al. 2023): cluster recent memories, ask the model for one higher-level
statement per cluster, and store it as a memory that cites its sources (chunk ids)."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from engram.agents.forgetting import NOT_PINNED
from engram.agents.scoring import hit_importance
from engram.answer.grounding import is_no_answer
from engram.cluster import cluster_hits
from engram.generate.base import Generator
from engram.memory import Memory
from engram.stored import chunk_vectors, iter_documents
from engram.types import Document, Hit

REFLECTION_PROMPT = (
    "Statements from memory:\n{statements}\n\n"
    "What is one high-level insight you can infer from these statements? "
    "Answer with one short sentence."
)
_LEAD = re.compile(r"^(?:(?:\d+[.)]|[-*•])\s*)?(?:(?:insight|answer|statement)\s*:\s*)?", re.I)
_QUOTES = "\"'“”"


def reflection_text(reply: str, limit: int = 300) -> str:
    """The statement in a model's reply: its first non-empty line, without a list marker,
    label or quotes, cut after the first sentence (empty when the model declined)."""
    for line in reply.strip().splitlines():
        line = _LEAD.sub("", line.strip().strip(_QUOTES).strip()).strip(_QUOTES).strip()
        if line:
            m = re.search(r"[.!?](?=\s|$)", line)
            text = (line[: m.end()] if m else line)[:limit].strip()
            return "" if is_no_answer(text) else text
    return ""


def reflection_key(sources: list[int]) -> str:
    digest = hashlib.sha256(",".join(map(str, sorted(sources))).encode()).hexdigest()
    return f"reflection-{digest[:16]}"


def reflect(
    memory: Memory,
    namespace: str,
    generator: Generator,
    *,
    n_recent: int = 30,
    now: float | None = None,
    cluster_threshold: float = 0.6,
    min_size: int = 2,
    max_reflections: int = 3,
    importance: Callable[[str], int] | None = None,
) -> list[Hit]:
    """Reflect on the ``n_recent`` newest memories (reflections and pinned ones excluded).

    Memories are grouped by average-linkage clustering of their stored vectors (cut at cosine
    distance ``cluster_threshold``); each group of at least ``min_size``, largest first, up to
    ``max_reflections``, yields one statement stored with ``kind="reflection"`` and
    ``sources`` (the chunk ids it was drawn from). A group already reflected on is skipped.
    Returns the new reflections as hits.
    """
    if not memory.namespace_exists(namespace):
        return []
    not_reflection = {"$or": [{"kind": {"$exists": False}}, {"kind": {"$ne": "reflection"}}]}
    docs = list(
        iter_documents(
            memory,
            namespace,
            {"$and": [NOT_PINNED, not_reflection]},
            newest_first=True,
            limit=n_recent,
        )
    )
    hits = memory.get([c.id for d in docs for c in d.chunks])
    vectors = chunk_vectors(memory, [h.id for h in hits])
    hits = [h for h in hits if h.id in vectors]
    if len(hits) < min_size:
        return []
    for h in hits:
        h.score = float(hit_importance(h))
    clusters = cluster_hits(
        hits, np.vstack([vectors[h.id] for h in hits]), threshold=cluster_threshold
    )
    done = [
        set(d.metadata.get("sources") or [])
        for d in iter_documents(memory, namespace, {"kind": "reflection"})
    ]
    groups = sorted(
        (c for c in clusters if len(c.hits) >= min_size), key=lambda c: (-len(c.hits), -c.score)
    )
    new: list[Document] = []
    now = time.time() if now is None else now
    for cluster in groups:
        if len(new) >= max_reflections:
            break
        sources = sorted(h.id for h in cluster.hits)
        if any(set(sources) <= seen for seen in done):
            continue
        ordered = sorted(cluster.hits, key=lambda h: (h.created_at, h.id))
        statements = "\n".join(f"{i}. {' '.join(h.text.split())}" for i, h in enumerate(ordered, 1))
        reply = generator.complete(
            [{"role": "user", "content": REFLECTION_PROMPT.format(statements=statements)}],
            max_tokens=60,
        )
        text = reflection_text(reply)
        if not text:
            continue
        meta: dict[str, Any] = {"kind": "reflection", "sources": sources}
        meta["importance"] = (
            importance(text) if importance else max(int(hit_importance(h)) for h in cluster.hits)
        )
        new.append(Document(text, reflection_key(sources), metadata=meta, created_at=now))
        done.append(set(sources))
    if not new:
        return []
    memory.add_documents(new, namespace=namespace)
    keys = [d.id for d in new]
    stored = iter_documents(memory, namespace, {"doc_id": {"$in": keys}})
    return memory.get([c.id for d in stored for c in d.chunks])


def reflection_sources(memory: Memory, hit: Hit) -> list[Hit]:
    """The memories a reflection was drawn from (those that still exist)."""
    return memory.get([int(i) for i in hit.metadata.get("sources") or []])
