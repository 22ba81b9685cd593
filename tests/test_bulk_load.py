"""Bulk loads (``Memory.import_vectors``): the SQLite store's batch inserts and the indexes
taking each batch from memory. Real SQLite files and the real default embedder."""

from __future__ import annotations

import numpy as np
import pytest

from engram.memory import Memory
from engram.types import Document


def vectors(embedder, docs):
    return embedder.embed([d.text for d in docs])


def keys(hits):
    return [h.doc_id for h in hits]


def test_ids_of_deleted_rows_are_never_given_again(make_memory, embedder):
    m = make_memory()
    docs = [Document(id=f"d{i}", text=f"Lanterns number {i} glow softly.") for i in range(3)]
    m.import_vectors(docs, vectors(embedder, docs))
    last = m.get_document("default", "d2")
    m.delete("d2")
    more = [Document(id=f"e{i}", text=f"Comets number {i} streak past.") for i in range(2)]
    m.import_vectors(more, vectors(embedder, more))
    old_chunk = last["chunks"][0]["id"]
    new_chunks = [m.get_document("default", f"e{i}")["chunks"][0]["id"] for i in range(2)]
    assert min(new_chunks) > old_chunk  # a derived index never sees a chunk id come back
    assert m.store.integrity_check() == "ok"
    assert keys(m.search("comets streak", k=2, mode="keyword")) in (["e0", "e1"], ["e1", "e0"])


def test_texts_and_times_are_stored_exactly(make_memory, embedder):
    m = make_memory()
    docs = [
        Document(id="nul", text="before\x00after the NUL", title="t\x00", source="s"),
        Document(id="dated", text="A dated note about herons.", created_at=1234.56789012345),
        Document(id="plain", text="Élan, naïve café: \u2028 line separator", metadata={"k": "ü"}),
    ]
    m.import_vectors(docs, vectors(embedder, docs))
    nul = m.get_document("default", "nul")
    assert (nul["chunks"][0]["text"], nul["title"]) == ("before\x00after the NUL", "t\x00")
    assert m.get_document("default", "dated")["created_at"] == 1234.56789012345
    plain = m.get_document("default", "plain")
    assert plain["chunks"][0]["text"] == docs[2].text and plain["metadata"] == {"k": "ü"}
    # a batch without NUL goes through the bulk statements: the same round trip
    batch = [
        Document(id=f"b{i}", text=f"Élan {i} \u2028 café", created_at=0.125 if i == 1 else None)
        for i in range(3)
    ]
    m.import_vectors(batch, vectors(embedder, batch))
    got = [m.get_document("default", f"b{i}") for i in range(3)]
    assert [g["chunks"][0]["text"] for g in got] == [d.text for d in batch]
    assert got[1]["created_at"] == 0.125 and got[0]["created_at"] == got[0]["updated_at"] > 1e9


def test_results_follow_the_rows(make_memory, embedder):
    m = make_memory()
    docs = [Document(id=f"d{i}", text=f"Otter fact {i}.") for i in range(3)]
    m.import_vectors(docs, vectors(embedder, docs))
    batch = [
        Document(id="new", text="Walruses sunbathe on ice."),
        docs[1],
        Document(id="d2", text="Otters hold hands while they sleep."),
    ]
    rows = next(iter(_rows(m, batch)))
    results = m.store.write_documents("default", rows, m.embedder.model_id)
    assert [r.status for r in results] == ["added", "unchanged", "updated"]
    assert [len(r.added) for r in results] == [1, 0, 1] and len(results[2].deleted) == 1


def test_another_writer_between_batches_is_caught_up(make_memory, embedder, tmp_path):
    first = make_memory()
    first.import_vectors([d := Document(id="a", text="Apples")], vectors(embedder, [d]))
    other = Memory(tmp_path / "m.db", embedder=embedder)
    other.add([Document(id="other", text="Quinces ripen late in autumn.")])
    other.close()
    docs = [Document(id=f"p{i}", text=f"Pears number {i}.") for i in range(3)]
    first.import_vectors(docs, vectors(embedder, docs))  # indexes lack the other write
    assert keys(first.search("quinces autumn", k=1, mode="keyword")) == ["other"]
    assert keys(first.search("pears number 2", k=1, mode="keyword")) == ["p2"]
    found = first.search("quinces", k=1, mode="vector")
    assert keys(found) == ["other"]
    stats = first.retrieval.stats()
    assert (
        stats["keyword"]["last_change"] == first.store.max_seq() == stats["vector"]["last_change"]
    )


def test_a_batch_is_indexed_as_written(make_memory, embedder):
    m = make_memory()
    docs = [Document(id=f"d{i}", text=f"Kestrel sighting {i} over the ridge.") for i in range(6)]
    vecs = vectors(embedder, docs)
    m.import_vectors(docs, vecs, batch=4)  # two batches, both indexed from memory
    ids = [m.get_document("default", f"d{i}")["chunks"][0]["id"] for i in range(6)]
    stored = m.chunk_vectors(ids)
    np.testing.assert_array_equal(np.vstack([stored[i] for i in ids]), vecs)
    assert m.retrieval.stats()["vector"]["rows"] == 6
    reopened = Memory(m.store.path, embedder=embedder)  # the saved indexes, no catching up
    try:
        assert reopened.retrieval.stats()["keyword"]["rows"] == 6
        assert keys(reopened.search("kestrel sighting 5", k=1, mode="keyword")) == ["d5"]
    finally:
        reopened.close()


def _rows(m, docs):
    from engram.ingest.writer import vector_rows

    return vector_rows(docs, vectors(m.embedder, docs), m.embedder, len(docs))


def _texts(n, seed):
    import random

    rng = random.Random(seed)
    words = ["heron", "otter", "kestrel", "walrus", "comet", "lantern", "quince", "pear"]
    words += ["ridge", "breeze", "tide", "moss"]
    extra = ["Ünïcödé", "a_b", "7", "x", "the", "running", "ran", "runs"]
    return [" ".join(rng.choices(words + extra, k=rng.randint(1, 30))) for _ in range(n)]


def _load(make_memory, embedder, name, batch, docs, more):
    m = make_memory(name)
    m.import_vectors(docs, vectors(embedder, docs), batch=batch)
    m.import_vectors(more, vectors(embedder, more), batch=batch)
    return m


def test_word_pool_indexes_as_the_main_process_does(make_memory, embedder, monkeypatch):
    from engram.ingest import bulk

    docs = [Document(id=f"d{i}", text=t) for i, t in enumerate(_texts(60, 1))]
    changed = [Document(id=f"d{i}", text=t) for i, t in enumerate(_texts(10, 2))]
    more = docs[10:30] + changed + [Document(id="n1", text="the pear ridge, running")]
    plain = _load(make_memory, embedder, "plain.db", 25, docs, more)
    monkeypatch.setattr(bulk, "WORD_POOL_ROWS", 2)  # every load here cuts words in a worker

    def refuse(rows):
        raise AssertionError("texts analysed in this process, not by the word worker")

    pooled = make_memory("pooled.db")
    indexes = [pooled.retrieval.keyword_index, pooled.retrieval.document_index]
    assert indexes[1] is not None  # the default keyword scope keeps whole documents too
    for index in indexes:
        monkeypatch.setattr(index, "add", refuse)  # titles are still analysed here
    pooled.import_vectors(docs, vectors(embedder, docs), batch=25)
    pooled.import_vectors(more, vectors(embedder, more), batch=25)
    monkeypatch.undo()
    for query in ("heron otter", "running ridge", "Ünïcödé a_b 7", "pear", "walrus tide moss"):
        got = [(h.doc_id, round(h.score, 5)) for h in pooled.search(query, k=15, mode="keyword")]
        want = [(h.doc_id, round(h.score, 5)) for h in plain.search(query, k=15, mode="keyword")]
        assert got == want and got
    assert pooled.retrieval.stats() == plain.retrieval.stats()


def test_indexes_fed_from_memory_equal_those_rebuilt_from_the_store(make_memory, embedder):
    from engram.ingest import bulk

    docs = [Document(id=f"d{i}", text=t, title=f"t{i % 7}") for i, t in enumerate(_texts(80, 4))]
    m = make_memory()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(bulk, "WORD_POOL_ROWS", 2)
        m.import_vectors(docs, vectors(embedder, docs), batch=30)
    queries = ("heron otter", "running ridge t3", "Ünïcödé a_b 7", "tide moss")
    before = [[(h.doc_id, round(h.score, 5)) for h in m.search(q, k=20)] for q in queries]
    m.reindex()  # every index rebuilt from the store
    after = [[(h.doc_id, round(h.score, 5)) for h in m.search(q, k=20)] for q in queries]
    assert before == after and all(before)


def test_a_dead_word_worker_is_survived(make_memory, embedder, monkeypatch):
    from engram.ingest import bulk
    from engram.retrieval.local import LocalRetrieval

    monkeypatch.setattr(bulk, "WORD_POOL_ROWS", 2)
    cut = LocalRetrieval.cut_words

    def cut_then_kill(self, rows):
        job = cut(self, rows)
        if self._words is not None:
            self._words._proc.kill()  # the worker dies with a batch in hand
        return job

    monkeypatch.setattr(LocalRetrieval, "cut_words", cut_then_kill)
    docs = [Document(id=f"d{i}", text=t) for i, t in enumerate(_texts(40, 3))]
    m = make_memory()
    m.import_vectors(docs, vectors(embedder, docs), batch=10)
    assert m.retrieval.stats()["keyword"]["rows"] == 40
    hits = m.search(docs[7].text, k=40, mode="keyword")
    assert "d7" in [h.doc_id for h in hits]


def test_metadata_json_memo_is_exact():
    """The memo of flat metadata must give json.dumps's text for values that compare equal
    but encode differently (1, True, 1.0; 0.0 and -0.0; Decimals)."""
    import decimal
    import json

    from engram.identity import metadata_json

    cases = [{"k": 1}, {"k": True}, {"k": 1.0}, {"k": 0.0}, {"k": -0.0}, {1: "a"}, {True: "a"}]
    cases += [{"d": decimal.Decimal("1.0")}, {"d": decimal.Decimal("1.00")}, {"x": [1, {"y": 2}]}]
    cases += [{"b": "é", "a": None}, {"a": None, "b": "é"}, {}]
    for _ in range(2):  # the second pass answers from the memo
        for meta in cases:
            assert metadata_json(meta) == json.dumps(
                meta, sort_keys=True, ensure_ascii=False, default=str
            )


def test_a_word_worker_that_cannot_start_is_done_without(make_memory, embedder, monkeypatch):
    import sys

    from engram.ingest import bulk

    monkeypatch.setattr(bulk, "WORD_POOL_ROWS", 2)
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")  # Popen fails to start it
    docs = [Document(id=f"d{i}", text=t) for i, t in enumerate(_texts(30, 5))]
    m = make_memory()
    assert m.import_vectors(docs, vectors(embedder, docs), batch=10) == 30
    monkeypatch.undo()
    assert keys(m.search(docs[3].text, k=30, mode="keyword")).count("d3") == 1
    assert m.retrieval.stats()["keyword"]["rows"] == 30


def test_one_word_worker_serves_successive_loads(make_memory, embedder, monkeypatch):
    """The worker outlives a load: the next one reuses it (no new process, its words known),
    also after the indexes were rebuilt in between (their term ids then differ from those the
    worker's terms had); the keyword segments the loads freeze are merged when ``optimize``
    stops it."""
    from engram.ingest import bulk

    blocks = [
        [Document(id=f"b{b}-{i}", text=t) for i, t in enumerate(_texts(30, 10 + b))]
        for b in range(3)
    ]
    blocks[2] += [Document(id="new", text="zebra quagga okapi running")]  # words new to all
    plain = make_memory("plain.db")
    monkeypatch.setattr(bulk, "WORD_POOL_ROWS", 2)
    pooled = make_memory("pooled.db")
    for m in (plain, pooled):
        m.retrieval.keyword_index.memtable_docs = 8  # a segment per 8 chunks
    for i, block in enumerate(blocks):
        plain.import_vectors(block, vectors(embedder, block), batch=len(block) + 1)  # no pool
        pooled.import_vectors(block, vectors(embedder, block), batch=10)
        if i == 0:
            pool = pooled.retrieval._words
            assert pool is not None
        else:
            assert pooled.retrieval._words is pool  # the same worker
        if i == 1:  # new vocabularies, numbered from the second block's words on
            for m in (pooled, plain):
                m.delete([d.id for d in blocks[0]])
                m.reindex()
    for query in ("heron otter", "zebra okapi", "running ridge", "Ünïcödé a_b 7", "moss tide"):
        got = [(h.doc_id, round(h.score, 5)) for h in pooled.search(query, k=15, mode="keyword")]
        want = [(h.doc_id, round(h.score, 5)) for h in plain.search(query, k=15, mode="keyword")]
        assert got == want and got
    held = len(pooled.retrieval.keyword_index.segments)
    assert held >= 4  # frozen while the loads ran, not merged yet (merged: at most 3)
    pooled.optimize()  # stops the worker and merges what the loads froze
    assert pooled.retrieval._words is None and pool._proc.poll() is not None
    assert len(pooled.retrieval.keyword_index.segments) == 1
    for query in ("heron otter", "zebra okapi", "running ridge"):
        got = [(h.doc_id, round(h.score, 5)) for h in pooled.search(query, k=15, mode="keyword")]
        want = [(h.doc_id, round(h.score, 5)) for h in plain.search(query, k=15, mode="keyword")]
        assert got == want and got


def test_word_pool_term_ids_follow_a_reset_index():
    """Term ids cached for an index hold only while it keeps its vocabulary: after a reset
    (a rebuild numbers terms afresh) they are looked up again."""
    from engram.index.keyword import KeywordIndex
    from engram.index.wordpool import WordPool

    pool, index = WordPool("english"), KeywordIndex(None)
    try:
        first = pool.take(pool.submit(["heron otter", "otters ran"]))
        ids = pool.term_ids(index, first.terms)
        names = {t: w for w, t in index.vocab.items()}
        assert [names[t] for t in ids] == ["heron", "otter", "otter", "ran"]
        index.reset()
        index.add([(1, "ran ran lantern", None)])  # "ran" and "lantern" numbered first now
        again = pool.take(pool.submit(["heron ran", "lantern"]))
        ids = pool.term_ids(index, again.terms)
        names = {t: w for w, t in index.vocab.items()}
        assert [names[t] for t in ids] == ["heron", "ran", "lantern"]
        assert index.vocab["ran"] == 0 and index.vocab["heron"] == 2
    finally:
        pool.close()


def test_word_pool_lets_go_of_batches_once_taken_and_dropped():
    """A pool outlives many loads: it keeps no batch's counted terms once the caller has
    taken the batch and let it go (a 1M-row load held about 800 MB of them before)."""
    import gc

    from engram.index.wordpool import WordPool

    pool = WordPool("english")
    try:
        first = pool.submit(["heron otter", "otters ran"])
        second = pool.submit(["lantern heron"])
        assert pool.take(first).terms.tolist() == pool.take(first).terms.tolist()  # again
        assert len(pool.take(second).new) == 1  # "lantern": numbered after the first batch
        assert len(pool._order) == 2
        del first, second
        gc.collect()
        assert len(pool._order) == 0
        third = pool.take(pool.submit(["otter lantern kestrel"]))
        assert third.new == ["kestrel"]  # numbering goes on after dropped batches
    finally:
        pool.close()


def test_bulk_insert_results_read_as_ranges():
    """``Inserted``: document ``doc0 + j`` with chunks ``starts[j]`` up to ``starts[j + 1]``,
    read like a list of ``WriteResult``."""
    from engram.store.base import Inserted, WriteResult

    got = Inserted(7, np.array([20, 21, 24, 25]))
    want = [
        WriteResult(7, "added", [20]),
        WriteResult(8, "added", [21, 22, 23]),
        WriteResult(9, "added", [24]),
    ]
    assert list(got) == want and len(got) == 3 and got[-1] == want[2] and got[1:] == want[1:]
    assert got.document_ids().tolist() == [7, 8, 9]
    assert got.chunk_ids().tolist() == [20, 21, 22, 23, 24]
    assert not got.one_chunk_each() and Inserted(1, np.array([5, 6, 7])).one_chunk_each()
    with pytest.raises(IndexError):
        got[3]
