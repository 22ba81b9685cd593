"""Namespaces isolate agents, users, characters and sessions: list, export, import, copy, drop."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from engram.errors import EngramError, NamespaceError
from engram.memory import AddReport, Memory, check_namespace
from engram.stored import iter_documents
from engram.timeparse import to_epoch
from engram.types import Document


def list_namespaces(memory: Memory) -> list[dict[str, Any]]:
    """Every namespace with its document and chunk counts."""
    return memory.namespaces()


def export_namespace(memory: Memory, namespace: str, out: str | Path | IO[str]) -> int:
    """Write the documents of ``namespace`` as JSON lines (``id``, ``text``, ``source``,
    ``title``, ``metadata``, ``created_at``, ``updated_at``); returns how many."""
    _require(memory, namespace)
    if isinstance(out, str | Path):
        with open(out, "w", encoding="utf-8") as handle:
            return export_namespace(memory, namespace, handle)
    n = 0
    for doc in iter_documents(memory, namespace):
        out.write(json.dumps(doc.to_dict(), ensure_ascii=False) + "\n")
        n += 1
    return n


def _records(source: str | Path | IO[str] | Iterable[dict[str, Any]]) -> Iterator[dict]:
    if isinstance(source, str | Path):
        with open(source, encoding="utf-8") as f:
            yield from _records(f)
        return
    for n, item in enumerate(source, 1):
        if isinstance(item, str):
            if not item.strip():
                continue
            try:
                item = json.loads(item)
            except ValueError as exc:
                raise EngramError(f"line {n}: not JSON ({exc})") from exc
        if not isinstance(item, dict) or not isinstance(item.get("text"), str):
            raise EngramError(f"record {n}: expected an object with a 'text' string")
        yield item


def import_namespace(
    memory: Memory,
    namespace: str,
    source: str | Path | IO[str] | Iterable[dict[str, Any]],
) -> AddReport:
    """Add exported records (a JSONL file, an open file or dicts) into ``namespace``, keeping
    their ids, metadata and ``created_at``. Text already stored anywhere is not re-embedded."""
    check_namespace(namespace)

    def docs() -> Iterator[Document]:
        for rec in _records(source):
            created = rec.get("created_at")
            yield Document(
                text=rec["text"],
                id=rec.get("id"),
                source=rec.get("source") or "",
                title=rec.get("title") or "",
                metadata=dict(rec.get("metadata") or {}),
                created_at=to_epoch(created) if created is not None else None,
            )

    return memory.add_documents(docs(), namespace=namespace)


def copy_namespace(
    memory: Memory, source: str, target: str, *, where: Any = None, merge: bool = False
) -> int:
    """Fork ``source`` (or the documents matching ``where``) into ``target``; returns documents
    copied. Chunks and their stored vectors are copied as they are: nothing is re-embedded.
    ``target`` must not exist unless ``merge`` (then same-id documents are replaced)."""
    _require(memory, source)
    check_namespace(target)
    if target == source:
        raise NamespaceError("cannot copy a namespace onto itself")
    if memory.namespace_exists(target) and not merge:
        raise NamespaceError(f"namespace {target!r} exists; pass merge=True to copy into it")
    n = 0
    for doc in iter_documents(memory, source, where):
        memory.copy_document(doc, target)
        n += 1
    memory.sync()
    return n


def delete_namespace(memory: Memory, namespace: str, reason: str = "") -> int:
    """Drop ``namespace`` and everything in it; each document leaves an audit record.
    Returns chunks removed."""
    _require(memory, namespace)
    return memory.drop_namespace(namespace, reason=reason or "namespace deleted")


def _require(memory: Memory, namespace: str) -> None:
    check_namespace(namespace)
    if not memory.namespace_exists(namespace):
        known = ", ".join(n["name"] for n in memory.namespaces()) or "(none yet)"
        raise NamespaceError(f"unknown namespace {namespace!r}; known: {known}")
