"""The Milvus retrieval backend beyond the shared contract (tests/test_contract.py): URLs and
their errors, the watermark and crash catch-up, stores that must not share a collection, the
two ways a filter reaches Milvus, and the embedded form (``milvus-lite:PATH``).

Needs ``ENGRAM_TEST_MILVUS_URL`` (``eval "$(bash scripts/milvus)"``); skips without it, fails
under CI.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from milvus import fresh_collection, milvus_url
from pg import HashEmbedder

from corpus import corpus
from engram.errors import EngramError
from engram.memory import Memory
from engram.retrieval.milvus import parse_url
from engram.types import Document

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def collection():
    with fresh_collection("m") as url:
        yield url


def doc_ids(hits) -> list[str]:
    return [h.doc_id for h in hits]


@pytest.mark.parametrize(
    "url,message",
    [
        ("milvus://", "no host|name the collection"),
        ("milvus://localhost:19530", "name the collection"),
        ("milvus://localhost:19530/9lives", "name the collection"),
        ("milvus://localhost:port/x", "bad port"),
        ("milvus:/localhost/x", "write milvus://HOST:PORT/NAME"),
        ("milvus-lite:", "milvus-lite:PATH"),
        ("weaviate://h/x", "unknown retrieval"),
    ],
)
def test_bad_urls_get_one_line_errors(tmp_path, url, message):
    with pytest.raises(EngramError, match=message) as err:
        Memory(tmp_path / "kb.db", retrieval=url, embedder=HashEmbedder())
    assert "\n" not in str(err.value)


def test_url_forms():
    t = parse_url("milvus://alice:s%40cret@db.example:19531/kb_main")
    assert (t.uri, t.collection, t.token) == ("http://db.example:19531", "kb_main", "alice:s@cret")
    assert parse_url("milvus+https://h/x").uri == "https://h:19530"
    assert parse_url("milvus-lite:kb.milvus").lite_path == "kb.milvus"


def test_unreachable_server_is_a_clear_error(tmp_path):
    started = time.monotonic()
    with pytest.raises(EngramError, match="cannot reach Milvus at http://127.0.0.1:9/kb"):
        Memory(tmp_path / "kb.db", retrieval="milvus://127.0.0.1:9/kb", embedder=HashEmbedder())
    assert time.monotonic() - started < 30


def test_environment_variable_chooses_the_retrieval(tmp_path, collection, monkeypatch):
    monkeypatch.setenv("ENGRAM_RETRIEVAL", collection)
    with Memory(tmp_path / "kb.db", embedder=HashEmbedder()) as mem:
        mem.add(corpus(12))
        assert mem.retrieval.name == "milvus"
        assert mem.stats()["indexes"]["vector"]["rows"] == 12
    monkeypatch.setenv("ENGRAM_RETRIEVAL", "local")
    with Memory(tmp_path / "kb.db", embedder=HashEmbedder()) as mem:
        assert mem.retrieval.name == "local"


CRASHING_WRITER = textwrap.dedent("""
    import os, sys
    from engram.memory import Memory
    from engram.types import Document
    from pg import HashEmbedder

    path, url, what = sys.argv[1:4]
    mem = Memory(path, retrieval=url, embedder=HashEmbedder())
    # the process dies right after the SQL commit, before Milvus hears of the change
    setattr(mem.retrieval.client, what, lambda *a, **k: os._exit(9))
    if what == "upsert":
        mem.add(Document(id="late", text="A late note about a heron named Quillon."))
    else:
        mem.delete("doc-3")
""")


@pytest.mark.parametrize("what", ["upsert", "delete"])
def test_crash_between_sql_commit_and_milvus_write_is_caught_up(tmp_path, collection, what):
    path = str(tmp_path / "kb.db")
    with Memory(path, retrieval=collection, embedder=HashEmbedder()) as mem:
        mem.add(corpus(20))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    proc = subprocess.run(
        [sys.executable, "-c", CRASHING_WRITER, path, collection, what], env=env, timeout=120
    )
    assert proc.returncode == 9
    with Memory(path, retrieval=collection, embedder=HashEmbedder()) as mem:
        indexes = mem.stats()["indexes"]["vector"]
        assert indexes["last_change"] == mem.store.max_seq()  # caught up on open
        assert indexes["rows"] == mem.stats()["chunks"] == (21 if what == "upsert" else 19)
        if what == "upsert":
            assert doc_ids(mem.search("Quillon heron", k=1, mode="keyword")) == ["late"]
            assert doc_ids(mem.search("Quillon heron", k=1, mode="vector")) == ["late"]
        else:
            assert "doc-3" not in doc_ids(mem.search("uniq3", k=20, mode="keyword"))


def test_two_stores_never_share_a_collection(tmp_path, collection):
    with Memory(tmp_path / "a.db", retrieval=collection, embedder=HashEmbedder()) as mem:
        mem.add("Alpha note.")
    with pytest.raises(EngramError, match="holds the index of another store"):
        Memory(tmp_path / "b.db", retrieval=collection, embedder=HashEmbedder())


def test_a_replaced_store_is_rebuilt(tmp_path, collection):
    path = tmp_path / "kb.db"
    with Memory(path, retrieval=collection, embedder=HashEmbedder()) as mem:
        mem.add(corpus(12))
        sid = mem.store.get_setting("store_id")
    for leftover in tmp_path.glob("kb.db*"):
        leftover.unlink()
    with Memory(path, embedder=HashEmbedder()) as fresh:  # a new store at the same place ...
        fresh.store.set_setting("store_id", sid)  # ... restored from the same lineage
        fresh.add(Document(id="only", text="The only note about lanterns."))
    with Memory(path, retrieval=collection, embedder=HashEmbedder()) as mem:
        assert mem.stats()["indexes"]["vector"]["rows"] == 1
        assert doc_ids(mem.search("lanterns", k=5)) == ["only"]


def test_reindex_rebuilds_from_sql(tmp_path, collection):
    with Memory(tmp_path / "kb.db", retrieval=collection, embedder=HashEmbedder()) as mem:
        mem.add(corpus(15))
        mem.retrieval.client.drop_collection(mem.retrieval.collection)  # Milvus lost it all
        assert mem.reindex() == {"keyword": 15, "vector": 15}
        assert doc_ids(mem.search("uniq7 reference", k=1, mode="keyword")) == ["doc-7"]


@pytest.mark.parametrize(
    "where",
    [{"topic": "cooking"}, {"year": {"$gte": 2005}}, {"tags": {"$contains": "even"}}, "rank<5"],
)
def test_id_lists_and_compiled_filters_agree(tmp_path, collection, where):
    """Few matches go to Milvus as a primary-key list, many as the compiled expression."""
    with Memory(tmp_path / "kb.db", retrieval=collection, embedder=HashEmbedder()) as mem:
        mem.add(corpus(40))
        by_ids = mem.retrieval.scope(None, mem_where(where))
        assert by_ids.resolved.expr.startswith("id in [") and by_ids.resolved.ids is not None
        mem.config.exact_filter_max = 0
        compiled = mem.retrieval.scope(None, mem_where(where))
        assert "mv[" in compiled.resolved.expr or "ma_s[" in compiled.resolved.expr
        assert compiled.resolved.ids is None
        for mode in ("keyword", "vector", "hybrid"):
            mem.config.exact_filter_max = 20_000
            a = doc_ids(mem.search("summary report", k=40, mode=mode, where=where))
            mem.config.exact_filter_max = 0
            b = doc_ids(mem.search("summary report", k=40, mode=mode, where=where))
            assert a and sorted(a) == sorted(b), (mode, where)


def test_a_listed_scope_is_searched_exactly(tmp_path, collection, monkeypatch):
    """A filter SQL lists (``exact_filter_max``) is scored over its vectors from SQL: every
    chunk of the scope ranked by inner product, as brute force ranks it, no graph walked."""
    import numpy as np

    with Memory(tmp_path / "kb.db", retrieval=collection, embedder=HashEmbedder()) as mem:
        mem.add(corpus(60))
        scope = mem.retrieval.scope(None, mem_where({"topic": "cooking"}))
        ids = scope.resolved.ids
        assert ids is not None and 0 < len(ids) < 60
        q = mem.embedder.embed(["summary report"])[0]
        found, mat = mem.store.chunk_vectors(ids.tolist())
        scores = mat @ q
        want = [int(found[i]) for i in np.argsort(-scores, kind="stable")]
        searched = []
        real = mem.retrieval.client.search
        monkeypatch.setattr(
            mem.retrieval.client,
            "search",
            lambda *a, **kw: searched.append(kw["anns_field"]) or real(*a, **kw),
        )
        got = mem.retrieval.vector(q, 1000, scope)
        assert [i for i, _ in got] == want
        assert np.allclose([s for _, s in got], np.sort(scores)[::-1], atol=1e-6)
        assert searched == []
        mem.retrieval.keyword("summary report", 10, scope)
        assert searched == ["sparse"]  # keywords still go to Milvus, the listed ids as filter


def mem_where(where):
    from engram.store.filters import parse_where

    return parse_where(where)


def test_embedded_milvus_lite(tmp_path):
    milvus_url()  # the same packages as the server; runs where the Milvus tests run
    url = f"milvus-lite:{tmp_path / 'kb.milvus'}"
    with Memory(tmp_path / "kb.db", retrieval=url, embedder=HashEmbedder()) as mem:
        mem.add(corpus(10))
        mem.add(Document(id="n1", text="Kestrels hover over the meadow."), namespace="birds")
        hits = mem.search("kestrels hover", k=3, namespace="birds")
        assert doc_ids(hits) == ["n1"] and hits[0].namespace == "birds"
        assert mem.stats()["indexes"]["keyword"]["at"] == url
    with Memory(tmp_path / "kb.db", retrieval=url, embedder=HashEmbedder()) as mem:
        assert doc_ids(mem.search("kestrels", k=1, namespace="*", mode="keyword")) == ["n1"]
    # another process opens the folder afresh: the collection is loaded again before searching
    reader = textwrap.dedent("""
        import sys
        from engram.memory import Memory
        from pg import HashEmbedder
        with Memory(sys.argv[1], retrieval=sys.argv[2], embedder=HashEmbedder()) as mem:
            print(*[h.doc_id for h in mem.search("kestrels hover", k=1, namespace="*")])
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path])}
    out = subprocess.run(
        [sys.executable, "-c", reader, str(tmp_path / "kb.db"), url],
        env=env,
        timeout=120,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["n1"]


def test_postgres_store_with_milvus_retrieval(collection):
    """``--store postgresql://... --retrieval milvus://...``: rows in PostgreSQL, search in
    Milvus."""
    from pg import pg_url, store_location

    pg_url()
    with store_location("postgres", None, "pgmilvus") as url:
        with Memory(url, retrieval=collection, embedder=HashEmbedder()) as mem:
            mem.add(corpus(20))
            mem.add(Document(id="n1", text="Kestrels hover over the meadow."), namespace="birds")
            assert mem.retrieval.name == "milvus" and mem.store.kind == "postgresql"
            assert doc_ids(mem.search("kestrels hover", k=2, namespace="birds")) == ["n1"]
            hits = mem.search("summary report", k=3, where={"topic": "cooking"})
            assert len(hits) == 3 and {h.metadata["topic"] for h in hits} == {"cooking"}
            mem.delete("doc-4")
            assert "doc-4" not in doc_ids(mem.search("uniq4", k=20, mode="keyword"))
        with Memory(url, retrieval=collection, embedder=HashEmbedder()) as mem:
            assert mem.stats()["indexes"]["vector"]["rows"] == 20
