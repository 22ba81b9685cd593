"""Which embedder a store uses: recorded in the store's settings on first use, and every
later use checked against it (a different model or dimension is refused before it embeds)."""

from __future__ import annotations

from typing import Any

from engram.embed.base import Embedder
from engram.embed.factory import DEFAULT_EMBEDDER, embedder_name_for
from engram.errors import EmbeddingMismatchError


def recorded_embedder(store: Any) -> str | None:
    """The embedder name ``store`` was made with (None for a new or custom one)."""
    return store.get_setting("embedder") or embedder_name_for(store.get_setting("embedding_model"))


def resolve_embedder(store: Any, path: str, spec: str | Embedder | None) -> str | Embedder:
    """The embedder named, else the store's, else the default; a name that differs from the
    one the store was made with is refused before anything is embedded."""
    recorded = recorded_embedder(store)
    if spec is None:
        return recorded or DEFAULT_EMBEDDER
    if isinstance(spec, str) and recorded and spec != recorded:
        raise EmbeddingMismatchError(
            f"{path} was made with the {recorded!r} embedder "
            f"({store.get_setting('embedding_model')}); it cannot use {spec!r}. "
            "Leave the embedder out (the store's own is used) or add into a new store."
        )
    return spec


def bind_embedder(store: Any, retrieval: Any, emb: Embedder, spec: str | Embedder) -> Embedder:
    """``emb``, recorded as the store's embedder if it has none yet, else checked against it."""
    model = store.get_setting("embedding_model")
    if model is None:
        # the dimension first: a process that sees the model also sees its dimension
        store.set_setting("embedding_dim", str(emb.dim))
        store.set_setting("embedding_model", emb.model_id)
        name = spec if isinstance(spec, str) else embedder_name_for(emb.model_id)
        if name:
            store.set_setting("embedder", name)
        retrieval.set_dim(emb.dim)
    elif model != emb.model_id or int(store.get_setting("embedding_dim")) != emb.dim:
        raise EmbeddingMismatchError(
            f"{store.path} holds vectors of {model} "
            f"({store.get_setting('embedding_dim')} dims), but this Memory embeds with "
            f"{emb.model_id} ({emb.dim} dims). Open it with the same embedder, or add into a "
            "new store."
        )
    return emb
