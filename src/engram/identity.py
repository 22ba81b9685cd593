"""How a document is named and fingerprinted in the store: one key function for every
caller (the facade, agents, the server, export)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from engram.types import Document

_METADATA = json.JSONEncoder(sort_keys=True, ensure_ascii=False, default=str)
_MEMO: dict[tuple, str] = {}
_MEMO_MAX = 4096
_PLAIN = frozenset({str, int, bool, type(None)})


def metadata_json(metadata: dict) -> str:
    """A document's metadata as stored and hashed: JSON with sorted keys. Metadata of only
    strings, integers, booleans and nulls seen recently comes from a small memo (bulk loads
    repeat a few tenants or sources); floats and other values are encoded every time (equal
    values such as 0.0 and -0.0 would encode differently)."""
    key: list = []  # 1 == True == 1.0 as keys: the types are part of the key
    for k, v in metadata.items():
        if type(v) not in _PLAIN:
            return _METADATA.encode(metadata)
        key += (type(k), k, type(v), v)
    text = _MEMO.get(tuple(key))
    if text is None:
        if len(_MEMO) >= _MEMO_MAX:
            _MEMO.clear()
        text = _MEMO[tuple(key)] = _METADATA.encode(metadata)
    return text


def content_hash(*parts: str) -> str:
    return _fed(hashlib.sha256(), parts).hexdigest()


def _fed(h: Any, parts: tuple[str, ...]) -> Any:
    """``h`` with each part added, NUL-terminated (the content hash's framing)."""
    for p in parts:
        h.update(p.encode("utf-8", "surrogatepass"))
        h.update(b"\x00")
    return h


def document_key(doc: Document) -> str:
    """The document's key in its namespace: its id, else ``sha256:`` and a hash of its text
    (so adding the same text twice without an id stores it once)."""
    return _key(doc, content_hash(doc.text))


def _key(doc: Document, text_hash: str) -> str:
    return doc.id or f"sha256:{text_hash[:32]}"


def document_identity(doc: Document) -> tuple[str, str]:
    """``(key, digest)``: the document's key (``document_key``) and a hash of everything
    stored about it, so re-adding an unchanged document does nothing."""
    key, digest, _ = document_hashes(doc)
    return key, digest


def document_hashes(doc: Document) -> tuple[str, str, str]:
    """``document_identity`` and ``content_hash(doc.text)``, the text hashed once (the
    digest's hash starts as the text's: it is copied and continued)."""
    text = _fed(hashlib.sha256(), (doc.text,))
    text_hash = text.hexdigest()
    rest = _fed(text.copy(), (doc.title, doc.source, metadata_json(doc.metadata)))
    return _key(doc, text_hash), rest.hexdigest(), text_hash
