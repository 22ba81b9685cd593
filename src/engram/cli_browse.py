"""``engram list`` (the documents in memory) and ``engram show DOC_ID`` (one document, whole).

Both read the store only (no model is loaded) and work on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from engram.errors import EngramError


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def _summary(doc: dict[str, Any], namespace: str) -> dict[str, Any]:
    return {
        "id": doc["id"],
        "namespace": namespace,
        "title": doc["title"],
        "source": doc["source"],
        "chunks": len(doc["chunks"]),
        "chars": sum(len(c[2]) for c in doc["chunks"]),
        "metadata": doc["metadata"],
        "created_at": doc["created_at"],
        "updated_at": doc["updated_at"],
    }


def _namespaces(mem: Any, namespace: str) -> list[str]:
    if namespace == "*":
        return [ns["name"] for ns in mem.namespaces()]
    if not mem.namespace_exists(namespace):
        raise EngramError(f"no namespace {namespace!r} (engram namespaces lists them)")
    return [namespace]


def cmd_list(args: argparse.Namespace) -> int:
    from engram.cli import _memory, _print_json, _where

    where = _where(args.where)
    rows: list[dict[str, Any]] = []
    with _memory(args) as mem:
        for ns in _namespaces(mem, args.namespace):
            left = None if args.limit is None else args.limit - len(rows)
            if left is not None and left <= 0:
                break
            docs = mem.store.select_documents(ns, where, newest_first=args.newest, limit=left)
            rows.extend(_summary(d, ns) for d in docs)
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("no documents")
        return 0
    for r in rows:
        label = r["title"] or r["source"] or "(untitled)"
        print(
            f"{r['id']}\t{r['namespace']}\t{r['chunks']} chunks\t{_when(r['updated_at'])}\t{label}"
        )
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from engram.cli import _memory, _print_json

    with _memory(args) as mem:
        found: list[tuple[str, dict[str, Any]]] = []
        for ns in _namespaces(mem, args.namespace):
            docs = mem.store.select_documents(ns, {"doc_id": args.doc_id})
            found.extend((ns, d) for d in docs)
    if not found:
        raise EngramError(
            f"no document {args.doc_id!r} in namespace {args.namespace!r} "
            "(engram list shows the ids; --namespace '*' searches all)"
        )
    out = []
    for ns, doc in found:
        item = _summary(doc, ns)
        item["content_hash"] = doc["content_hash"]
        item["chunks"] = [
            {"id": c[0], "position": c[1], "start_char": c[3], "end_char": c[4], "text": c[2]}
            for c in doc["chunks"]
        ]
        out.append(item)
    if args.json:
        _print_json(out[0] if len(out) == 1 else out)
        return 0
    for item in out:
        _print_document(item)
    return 0


def _print_document(item: dict[str, Any]) -> None:
    write = sys.stdout.write
    write(f"id: {item['id']}\nnamespace: {item['namespace']}\n")
    for key in ("title", "source"):
        if item[key]:
            write(f"{key}: {item[key]}\n")
    if item["metadata"]:
        write(f"metadata: {json.dumps(item['metadata'], ensure_ascii=False)}\n")
    write(f"created: {_when(item['created_at'])}  updated: {_when(item['updated_at'])}\n")
    write(f"chunks: {len(item['chunks'])}\n")
    for c in item["chunks"]:
        write(f"\n-- chunk {c['id']} (#{c['position']}, chars {c['start_char']}-{c['end_char']})\n")
        write(c["text"].rstrip() + "\n")


def add_browse_parsers(sub: Any) -> None:
    """Register ``list`` and ``show`` on the ``engram`` command's subparsers."""
    ls = sub.add_parser("list", help="list the documents in memory (no model is loaded)")
    ls.add_argument("--namespace", default="default", help="namespace; '*' for all")
    ls.add_argument(
        "--where",
        action="append",
        metavar="FILTER",
        help="filter: JSON, or key=value / key>=n / key~text joined by 'and' (default: none)",
    )
    ls.add_argument("--limit", type=int, help="at most N documents (default: all)")
    ls.add_argument("--newest", action="store_true", help="newest first (else oldest first)")
    ls.add_argument("--json", action="store_true", help="print a JSON list of documents")
    ls.set_defaults(func=cmd_list)

    sh = sub.add_parser("show", help="print one document: metadata and every chunk")
    sh.add_argument("doc_id", metavar="DOC_ID", help="the document's id (engram list shows it)")
    sh.add_argument("--namespace", default="default", help="namespace; '*' for all")
    sh.add_argument("--json", action="store_true", help="print the document as JSON")
    sh.set_defaults(func=cmd_show)
