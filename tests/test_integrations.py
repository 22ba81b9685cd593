"""The LangChain and LlamaIndex adapters, with the real ``langchain-core`` and ``llama-index-core``
over a real store (the 60-note corpus, plus the sample PDF in its own namespace)."""

from __future__ import annotations

import asyncio

import pytest
from langchain_core.documents import Document as LCDocument
from langchain_core.runnables import RunnableLambda
from llama_index.core.schema import MetadataMode, NodeRelationship, NodeWithScore
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from engram.errors import EngramError, FilterError
from engram.integrations import HIT_FIELDS
from engram.integrations.langchain import EngramRetriever, EngramVectorStore
from engram.integrations.llamaindex import EngramRetriever as LlamaRetriever
from engram.integrations.llamaindex import where_from_filters
from engram.samples import SAMPLES_DIR

PDF = SAMPLES_DIR / "makerspace-handbook.pdf"


@pytest.fixture
def memory(mem):
    """The 60-note corpus in ``default`` and the sample PDF's pages in ``manuals``."""
    mem.add(PDF, namespace="manuals")
    return mem


# -- LangChain ----------------------------------------------------------------------------------
def test_langchain_retriever_returns_cited_hits(memory):
    retriever = EngramRetriever(memory=memory, k=3)
    docs = retriever.invoke("prune the roses in spring")
    assert len(docs) == 3 and all(isinstance(d, LCDocument) for d in docs)
    top = docs[0]
    assert top.metadata["topic"] == "gardening" and "roses" in top.page_content
    assert set(HIT_FIELDS) <= set(top.metadata)
    assert top.id == str(top.metadata["chunk_id"])
    assert top.metadata["source"].startswith("notes/gardening/")
    assert top.metadata["doc_id"].startswith("doc-") and top.metadata["namespace"] == "default"
    assert top.metadata["metadata"]["tags"][1] == "gardening"
    scores = [d.metadata["score"] for d in docs]
    assert scores == sorted(scores, reverse=True)
    hits = memory.search("prune the roses in spring", k=3)
    assert [d.metadata["chunk_id"] for d in docs] == [h.id for h in hits]


def test_langchain_retriever_filters_and_namespaces(memory):
    retriever = EngramRetriever(memory=memory, k=5, where={"year": {"$gte": 2008}})
    docs = retriever.invoke("roses")
    assert docs and all(d.metadata["year"] >= 2008 for d in docs)
    docs = retriever.invoke("roses", where="topic=sailing", k=2)  # per-call overrides
    assert len(docs) == 2 and {d.metadata["topic"] for d in docs} == {"sailing"}
    pdf = retriever.invoke("What gas does PVC release?", namespace="manuals", where=None)
    assert pdf[0].metadata["source"].endswith("makerspace-handbook.pdf#page=2")
    assert pdf[0].metadata["page"] == 2 and {d.metadata["namespace"] for d in pdf} == {"manuals"}
    both = retriever.invoke("chlorine gas laser", namespace=["default", "manuals"], where=None)
    assert both[0].metadata["namespace"] == "manuals"
    with pytest.raises(TypeError, match="unknown retriever options: fetch_k"):
        retriever.invoke("roses", fetch_k=10)
    with pytest.raises(FilterError):
        retriever.invoke("roses", where={"year; drop": 1})
    # A retriever is a Runnable: it composes, and runs async.
    chain = EngramRetriever(memory=memory, k=2) | RunnableLambda(
        lambda ds: [d.metadata["topic"] for d in ds]
    )
    assert chain.invoke("reef the mainsail") == ["sailing", "sailing"]
    adocs = asyncio.run(retriever.ainvoke("reef the mainsail", k=1, where=None))
    assert adocs[0].metadata["topic"] == "sailing"


def test_langchain_vector_store(memory, tmp_path):
    store = EngramVectorStore(memory, namespace="kb")
    ids = store.add_texts(
        ["The ferry to Skerry leaves at 07:40.", "The library closes at 18:00 on Fridays."],
        metadatas=[{"kind": "travel"}, {"kind": "hours"}],
        ids=["ferry", "library"],
    )
    assert ids == ["ferry", "library"]
    assert store.add_documents([LCDocument(page_content="Bins go out on Tuesday.", id="bins")]) == [
        "bins"
    ]
    found = store.similarity_search_with_score("when does the ferry leave", k=1)
    doc, score = found[0]
    assert doc.metadata["doc_id"] == "ferry" and doc.metadata["namespace"] == "kb"
    assert score == doc.metadata["score"] and 0 < score <= 1
    hours = store.similarity_search("when does it leave or close", k=3, filter={"kind": "hours"})
    assert [d.metadata["doc_id"] for d in hours] == ["library"]
    retriever = store.as_retriever(search_kwargs={"k": 2, "filter": "kind=travel"})
    assert [d.metadata["doc_id"] for d in retriever.invoke("timetable")] == ["ferry"]
    relevant = store.similarity_search_with_relevance_scores("ferry to Skerry", k=1)
    assert relevant[0][0].metadata["doc_id"] == "ferry"
    assert store.delete(["ferry"]) is True
    assert "ferry" not in [d.metadata["doc_id"] for d in store.similarity_search("ferry", k=5)]
    assert store.delete(["ferry"]) is False
    # The notes in ``default`` never showed up in ``kb``; another namespace per call:
    assert store.similarity_search("roses", k=1, namespace="default")[0].metadata["topic"]
    vector = store.embeddings.embed_query("ferry")
    assert len(vector) == memory.embedder.dim == len(store.embeddings.embed_documents(["a"])[0])
    fresh = EngramVectorStore.from_texts(
        ["Otters hold hands while they sleep."],
        path=str(tmp_path / "lc.db"),
        embedder=memory.embedder,
    )
    try:
        assert fresh.similarity_search("sea otters", k=1)[0].page_content.startswith("Otters")
    finally:
        fresh.memory.close()
    with pytest.raises(EngramError, match="own embedder"):
        EngramVectorStore.from_texts(["x"], embedding=object(), path=str(tmp_path / "x.db"))


# -- LlamaIndex ---------------------------------------------------------------------------------
def test_llamaindex_retriever_returns_cited_nodes(memory):
    retriever = LlamaRetriever(memory, k=3, namespace="manuals")
    nodes = retriever.retrieve("What gas does PVC release on the laser cutter?")
    assert nodes and all(isinstance(n, NodeWithScore) for n in nodes)
    top = nodes[0]
    assert top.node.metadata["source"].endswith("makerspace-handbook.pdf#page=2")
    assert set(HIT_FIELDS) <= set(top.node.metadata)
    assert top.node.node_id == f"engram:{top.node.metadata['chunk_id']}"
    assert top.score == top.node.metadata["score"]
    assert top.node.relationships[NodeRelationship.SOURCE].node_id == top.node.metadata["doc_id"]
    llm_view = top.node.get_content(metadata_mode=MetadataMode.LLM)
    assert "makerspace-handbook.pdf#page=2" in llm_view and "chlorine" in llm_view
    assert "scores" not in llm_view and "chunk_id" not in llm_view
    anodes = asyncio.run(retriever.aretrieve("PVC chlorine"))
    assert anodes[0].node.node_id == top.node.node_id


def test_llamaindex_filters(memory):
    filters = MetadataFilters(
        filters=[
            MetadataFilter(key="topic", value=["cooking", "sailing"], operator=FilterOperator.IN),
            MetadataFilter(key="year", value=2005, operator=FilterOperator.GTE),
        ]
    )
    nodes = LlamaRetriever(memory, k=10, filters=filters).retrieve("twenty minutes")
    assert nodes
    assert all(
        n.node.metadata["topic"] in ("cooking", "sailing") and n.node.metadata["year"] >= 2005
        for n in nodes
    )
    either = MetadataFilters(
        filters=[MetadataFilter(key="rank", value=3), MetadataFilter(key="rank", value=4)],
        condition=FilterCondition.OR,
    )
    nodes = LlamaRetriever(memory, k=10, filters=either, where="year>=2004").retrieve("note")
    assert [n.node.metadata["rank"] for n in nodes] == [4]  # rank 3 has year 2003
    tagged = MetadataFilter(key="tags", value=["even"], operator=FilterOperator.ANY)
    nodes = LlamaRetriever(memory, k=5, filters=MetadataFilters(filters=[tagged])).retrieve("note")
    assert nodes and all(n.node.metadata["rank"] % 2 == 0 for n in nodes)
    nested = MetadataFilters(filters=[either], condition=FilterCondition.NOT)
    assert where_from_filters(nested) == {
        "$not": {"$and": [{"$or": [{"rank": {"$eq": 3}}, {"rank": {"$eq": 4}}]}]}
    }
    nodes = LlamaRetriever(memory, k=60, filters=nested).retrieve("note")
    assert len(nodes) == 58 and {3, 4}.isdisjoint(n.node.metadata["rank"] for n in nodes)
    odd = MetadataFilter(key="topic", value="x", operator=FilterOperator.TEXT_MATCH_INSENSITIVE)
    with pytest.raises(FilterError, match="text_match_insensitive"):
        LlamaRetriever(memory, filters=MetadataFilters(filters=[odd]))
    # Namespaces: the PDF is not among the notes, and "*" reaches both.
    notes = LlamaRetriever(memory, k=5).retrieve("chlorine gas laser cutter")
    assert {n.node.metadata["namespace"] for n in notes} == {"default"}
    every = LlamaRetriever(memory, k=1, namespace="*").retrieve("chlorine gas laser cutter")
    assert every[0].node.metadata["namespace"] == "manuals"
