"""A LlamaIndex retriever over an Engram ``Memory``: :class:`EngramRetriever`.

Each result is a ``NodeWithScore`` holding a ``TextNode`` (id ``engram:CHUNK_ID``, the chunk's
text, metadata from :func:`engram.integrations.hit_metadata`: ``score``, ``chunk_id``,
``doc_id``, ``source`` with its ``#page=N``/``#heading=...`` anchor, ``title``, ``namespace``...)
and a ``SOURCE`` relationship to the Engram document. The LLM sees ``title`` and ``source`` with
the text, so answers can cite them. Filters are an Engram ``where`` (``{"year": {"$gte": 2020}}``
or ``"year>=2020"``) and/or LlamaIndex ``MetadataFilters``. Needs ``llama-index-core`` (the
``llamaindex`` extra)::

    from engram import Memory
    from engram.integrations.llamaindex import EngramRetriever

    retriever = EngramRetriever(Memory("notes.db"), k=4, namespace="work")
    nodes = retriever.retrieve("on-call handover")
"""

from __future__ import annotations

from typing import Any

from engram.errors import FilterError
from engram.integrations import hit_metadata, install_hint
from engram.memory import Memory
from engram.store.filters import parse_where
from engram.types import Hit

try:
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.retrievers import BaseRetriever
    from llama_index.core.schema import (
        NodeRelationship,
        NodeWithScore,
        QueryBundle,
        RelatedNodeInfo,
        TextNode,
    )
    from llama_index.core.vector_stores.types import (
        FilterCondition,
        FilterOperator,
        MetadataFilter,
        MetadataFilters,
    )
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(install_hint("llamaindex", "llama-index-core", "llamaindex")) from exc

__all__ = ["EngramRetriever", "to_node", "where_from_filters"]

_HIDDEN = ["score", "chunk_id", "doc_id", "namespace", "created_at", "scores", "metadata"]
_OPS = {
    FilterOperator.EQ: "$eq",
    FilterOperator.NE: "$ne",
    FilterOperator.GT: "$gt",
    FilterOperator.GTE: "$gte",
    FilterOperator.LT: "$lt",
    FilterOperator.LTE: "$lte",
    FilterOperator.IN: "$in",
    FilterOperator.NIN: "$nin",
    FilterOperator.CONTAINS: "$contains",
    FilterOperator.TEXT_MATCH: "$contains",
}


def to_node(hit: Hit) -> NodeWithScore:
    """A hit as a scored LlamaIndex node (the LLM sees title and source, not the scores)."""
    node = TextNode(
        id_=f"engram:{hit.id}",
        text=hit.text,
        metadata=hit_metadata(hit),
        excluded_llm_metadata_keys=list(_HIDDEN),
        excluded_embed_metadata_keys=list(_HIDDEN),
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=hit.doc_id)},
    )
    return NodeWithScore(node=node, score=hit.score)


def _condition(f: MetadataFilter) -> dict[str, Any]:
    op = FilterOperator(f.operator)
    if op in _OPS:
        return {f.key: {_OPS[op]: f.value}}
    if op in (FilterOperator.ANY, FilterOperator.ALL):
        values = f.value if isinstance(f.value, list) else [f.value]
        parts = [{f.key: {"$contains": v}} for v in values]
        return {"$or" if op == FilterOperator.ANY else "$and": parts}
    if op == FilterOperator.IS_EMPTY:
        return {f.key: {"$exists": False}}
    raise FilterError(f"the {op.value!r} filter operator has no Engram equivalent")


def where_from_filters(filters: MetadataFilters) -> dict[str, Any]:
    """LlamaIndex ``MetadataFilters`` as an Engram ``where`` filter."""
    parts = [
        where_from_filters(f) if isinstance(f, MetadataFilters) else _condition(f)
        for f in filters.filters
    ]
    condition = FilterCondition(filters.condition or FilterCondition.AND)
    if condition == FilterCondition.OR:
        return {"$or": parts}
    if condition == FilterCondition.NOT:
        return {"$not": {"$and": parts}}
    return {"$and": parts}


class EngramRetriever(BaseRetriever):
    """Hybrid recall (or ``mode="keyword"``/``"vector"``) from a ``Memory``, ``k`` nodes a query,
    in ``namespace`` (a name, a list, or ``"*"``), filtered by ``where`` and ``filters``."""

    def __init__(
        self,
        memory: Memory,
        *,
        k: int = 4,
        namespace: str | list[str] | None = None,
        where: dict[str, Any] | str | None = None,
        filters: MetadataFilters | None = None,
        mode: str | None = None,
        callback_manager: CallbackManager | None = None,
        verbose: bool = False,
    ):
        super().__init__(callback_manager=callback_manager, verbose=verbose)
        self.memory = memory
        self.k = k
        self.namespace = namespace
        self.mode = mode
        parts = [p for p in (parse_where(where), filters and where_from_filters(filters)) if p]
        self.where = parts[0] if len(parts) == 1 else ({"$and": parts} if parts else None)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.memory.search(
            query_bundle.query_str,
            k=self.k,
            where=self.where,
            namespace=self.namespace,
            mode=self.mode,
        )
        return [to_node(h) for h in hits]
