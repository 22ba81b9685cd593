"""LangChain adapters: ``EngramRetriever``, ``EngramVectorStore`` and ``EngramEmbeddings``.

Results are LangChain ``Document``s whose ``metadata`` holds Engram's cited-hit fields (``score``,
``chunk_id``, ``doc_id``, ``source`` with its ``#page=N``/``#heading=...`` anchor, ``title``,
``namespace``, ``created_at``, ``scores``) beside the document's own metadata; ``id`` is the
chunk id. Filters are Engram ``where`` filters (``{"year": {"$gte": 2020}}`` or
``"year>=2020"``), applied inside recall. Needs ``langchain-core`` (the ``langchain`` extra)::

    from engram import Memory
    from engram.integrations.langchain import EngramRetriever

    retriever = EngramRetriever(memory=Memory("notes.db"), k=4, namespace="work")
    docs = retriever.invoke("on-call handover", where={"topic": "work"})
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from engram.errors import EngramError
from engram.integrations import hit_metadata, install_hint
from engram.memory import DEFAULT_NAMESPACE, Memory, document_identity
from engram.types import Document, Hit

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForRetrieverRun,
        CallbackManagerForRetrieverRun,
    )
    from langchain_core.documents import Document as LCDocument
    from langchain_core.embeddings import Embeddings
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.runnables.config import run_in_executor
    from langchain_core.vectorstores import VectorStore
    from pydantic import ConfigDict
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(install_hint("langchain", "langchain-core", "langchain")) from exc

__all__ = ["EngramEmbeddings", "EngramRetriever", "EngramVectorStore", "to_document"]

Namespaces = str | list[str] | None


def to_document(hit: Hit) -> LCDocument:
    """A hit as a LangChain ``Document`` (id: the chunk id; metadata: :func:`hit_metadata`)."""
    return LCDocument(page_content=hit.text, metadata=hit_metadata(hit), id=str(hit.id))


class EngramRetriever(BaseRetriever):
    """Hybrid recall from an Engram ``Memory`` as a LangChain retriever.

    ``invoke(query, k=..., where=..., namespace=..., mode=...)`` overrides the fields for one
    call. ``namespace`` may be a list, or ``"*"`` for every namespace.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    memory: Memory
    k: int = 4
    namespace: Namespaces = None
    where: dict[str, Any] | str | None = None
    mode: str | None = None

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[LCDocument]:
        unknown = set(kwargs) - {"k", "where", "namespace", "mode"}
        if unknown:
            raise TypeError(f"unknown retriever options: {', '.join(sorted(unknown))}")
        hits = self.memory.search(
            query,
            k=kwargs.get("k", self.k),
            where=kwargs.get("where", self.where),
            namespace=kwargs.get("namespace", self.namespace),
            mode=kwargs.get("mode", self.mode),
        )
        return [to_document(h) for h in hits]

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[LCDocument]:
        sync = run_manager.get_sync()
        return await run_in_executor(
            None, self._get_relevant_documents, query, run_manager=sync, **kwargs
        )


class EngramEmbeddings(Embeddings):
    """The store's own embedder (normalised vectors) as LangChain ``Embeddings``."""

    def __init__(self, memory: Memory):
        self.memory = memory

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.memory.embedder.embed(texts).tolist() if texts else []

    def embed_query(self, text: str) -> list[float]:
        return self.memory.embed_query(text).tolist()


class EngramVectorStore(VectorStore):
    """An Engram namespace as a LangChain vector store (recall is hybrid by default).

    Texts added become Engram documents (chunked and indexed); ``ids`` are document ids, and
    adding the same id again replaces that document. ``filter`` in the search methods is an
    Engram ``where`` filter; ``namespace=`` in any call overrides the store's namespace.
    """

    def __init__(
        self, memory: Memory, *, namespace: str = DEFAULT_NAMESPACE, mode: str | None = None
    ):
        self.memory = memory
        self.namespace = namespace
        self.mode = mode

    @property
    def embeddings(self) -> Embeddings:
        return EngramEmbeddings(self.memory)

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        texts = list(texts)
        metas = list(metadatas) if metadatas is not None else [{} for _ in texts]
        keys = list(ids) if ids is not None else [None] * len(texts)
        if len(metas) != len(texts) or len(keys) != len(texts):
            raise ValueError("texts, metadatas and ids must have the same length")
        docs = [
            Document(text=t, id=i, metadata=dict(m or {}))
            for t, m, i in zip(texts, metas, keys, strict=True)
        ]
        namespace = kwargs.pop("namespace", self.namespace)
        if kwargs:
            raise TypeError(f"unknown add_texts options: {', '.join(sorted(kwargs))}")
        report = self.memory.add_documents(docs, namespace=namespace)
        if report.errors:
            raise EngramError("; ".join(report.errors))
        return [document_identity(d)[0] for d in docs if d.text.strip()]

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool:
        """Delete documents by id (or by ``where=``); True when something was deleted."""
        where = kwargs.pop("where", None)
        namespace = kwargs.pop("namespace", self.namespace)
        if kwargs:
            raise TypeError(f"unknown delete options: {', '.join(sorted(kwargs))}")
        if not ids and not where:
            raise ValueError("give ids or where= (nothing would be deleted)")
        return self.memory.delete(ids or None, where=where, namespace=namespace) > 0

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: dict[str, Any] | str | None = None, **kwargs: Any
    ) -> list[tuple[LCDocument, float]]:
        namespace = kwargs.pop("namespace", self.namespace)
        mode = kwargs.pop("mode", self.mode)
        if kwargs:
            raise TypeError(f"unknown search options: {', '.join(sorted(kwargs))}")
        hits = self.memory.search(query, k=k, where=filter, namespace=namespace, mode=mode)
        return [(to_document(h), h.score) for h in hits]

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[LCDocument]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, **kwargs)]

    def _select_relevance_score_fn(self) -> Any:
        # Hybrid scores (blend, the default) lie in [0, 1] already; keyword-only (BM25) and
        # vector-only (cosine) scores do not, and LangChain warns about those.
        return lambda score: score

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings | None = None,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        path: str = "engram.db",
        namespace: str = DEFAULT_NAMESPACE,
        **kwargs: Any,
    ) -> EngramVectorStore:
        """A store at ``path`` (``Memory(path, **kwargs)``) holding ``texts``. Engram embeds with
        its own embedder; ``embedding`` must be None or an :class:`EngramEmbeddings`."""
        if embedding is not None and not isinstance(embedding, EngramEmbeddings):
            raise EngramError(
                "EngramVectorStore embeds with the store's own embedder: pass embedding=None "
                "and choose the model with embedder= (e.g. embedder='onnx')"
            )
        store = cls(Memory(path, **kwargs), namespace=namespace)
        store.add_texts(texts, metadatas, ids=ids)
        return store
