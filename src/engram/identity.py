"""How a document is named and fingerprinted in the store: one key function for every
caller (the facade, agents, the server, export)."""

from __future__ import annotations

import hashlib
import json

from engram.types import Document


def content_hash(*parts: str) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h.hexdigest()


def document_key(doc: Document) -> str:
    """The document's key in its namespace: its id, else ``sha256:`` and a hash of its text
    (so adding the same text twice without an id stores it once)."""
    return doc.id or f"sha256:{content_hash(doc.text)[:32]}"


def document_identity(doc: Document) -> tuple[str, str]:
    """``(key, digest)``: the document's key (``document_key``) and a hash of everything
    stored about it, so re-adding an unchanged document does nothing."""
    meta = json.dumps(doc.metadata, sort_keys=True, ensure_ascii=False, default=str)
    digest = content_hash(doc.text, doc.title, doc.source, meta)
    return document_key(doc), digest
