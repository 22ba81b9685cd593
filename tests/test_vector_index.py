"""The vector index: exact search, the HNSW graph at scale, deletes, filters, persistence."""

from __future__ import annotations

import numpy as np

from engram.index.ivf import default_nlist
from engram.index.vector import FlatVectorIndex


def clustered(n: int, dim: int = 32, centers: int = 50, seed: int = 0) -> np.ndarray:
    """Unit vectors around random centres (embeddings are clustered, not uniform)."""
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centers, dim))
    x = c[rng.integers(0, centers, n)] + 0.35 * rng.standard_normal((n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_exact_search_matches_brute_force():
    x = clustered(2000)
    idx = FlatVectorIndex(None, dim=32, memtable_rows=300, ann="exact")
    idx.add([(i + 1, "", v) for i, v in enumerate(x)])
    q = x[17]
    expected = np.argsort(-(x @ q), kind="stable")[:10] + 1
    assert [i for i, _ in idx.search(q, 10)] == expected.tolist()


def test_deleted_ids_follow_every_change_of_the_tombstones(tmp_path):
    x = clustered(50)
    idx = FlatVectorIndex(tmp_path / "v", dim=32, ann="exact")
    idx.add([(i + 1, "", v) for i, v in enumerate(x)])
    idx.remove([9, 3])
    assert idx.deleted_ids().tolist() == [3, 9]
    idx.remove([5])
    assert idx.deleted_ids().tolist() == [3, 5, 9]
    idx.last_seq = 1
    idx.save()
    idx.reset()
    assert idx.deleted_ids().tolist() == []
    idx.add([(i + 1, "", v) for i, v in enumerate(x)])
    idx.remove([7, 8, 1])  # as many as before the reset: a cache keyed by size would go stale
    assert idx.deleted_ids().tolist() == [1, 7, 8]
    assert {7, 8, 1}.isdisjoint(i for i, _ in idx.search(x[7], 50))
    assert idx.load() and idx.deleted_ids().tolist() == [3, 5, 9]


def test_hnsw_recall_deletes_and_filters(tmp_path):
    x = clustered(6000)
    idx = FlatVectorIndex(tmp_path / "v", dim=32, ann="hnsw", exact_filter_max=500)
    idx.add([(i + 1, "", v) for i, v in enumerate(x)])
    queries = clustered(40, seed=1)
    recall = np.mean(
        [
            len({i for i, _ in idx.search(q, 10)} & {i for i, _ in idx.search(q, 10, exact=True)})
            / 10
            for q in queries
        ]
    )
    assert recall >= 0.95
    top = idx.search(queries[0], 3)[0][0]
    idx.remove([top])
    assert top not in {i for i, _ in idx.search(queries[0], 50)}
    # a broad filter goes through the graph, a narrow one is answered exactly; both give k
    broad = np.arange(2, 6001, 2, dtype=np.int64)
    narrow = np.arange(5, 6001, 50, dtype=np.int64)
    for allowed in (broad, narrow):
        got = idx.search(queries[1], 10, allowed=allowed)
        assert len(got) == 10 and set(i for i, _ in got) <= set(allowed.tolist())
    idx.last_seq = 1
    idx.save()
    again = FlatVectorIndex(tmp_path / "v", dim=32, ann="hnsw")
    assert again.load() and again.hnsw is not None
    assert top not in {i for i, _ in again.search(queries[0], 50)}
    assert again.search(queries[2], 5) == idx.search(queries[2], 5)


def test_graph_settings_are_configurable_and_updates_replace(tmp_path):
    x = clustered(800)
    idx = FlatVectorIndex(
        tmp_path / "v", dim=32, ann="hnsw", hnsw_m=12, hnsw_ef_construction=60, hnsw_ef_search=40
    )
    idx.add([(i + 1, "", v) for i, v in enumerate(x)])
    idx.build_hnsw()
    assert (idx.hnsw.index.hnsw.efConstruction, idx.hnsw.index.hnsw.nb_neighbors(1)) == (60, 12)
    # the same id added again (an updated chunk) replaces its vector in the graph
    idx.add([(1, "", x[500])])
    assert len(idx.hnsw) == 800
    assert 1 in {i for i, _ in idx.search(x[500], 2)}
    idx.last_seq = 1
    idx.save()
    again = FlatVectorIndex(
        tmp_path / "v", dim=32, ann="hnsw", hnsw_m=12, hnsw_ef_construction=60, hnsw_ef_search=40
    )
    assert again.load() and len(again.hnsw) == 800
    assert (again.hnsw.m, again.hnsw.ef_search) == (12, 40)


def test_an_hnswlib_graph_from_before_is_rebuilt_from_the_store(tmp_path, caplog):
    """Stores written while hnswlib built the graph: the file is not read; the index is
    rebuilt from SQL once, with a one-line notice, and answers as before."""
    import json

    from engram.embed.precomputed import PrecomputedEmbedder
    from engram.memory import Memory
    from engram.types import Document

    x = clustered(300)
    path = tmp_path / "old.db"
    emb = PrecomputedEmbedder(32, "synthetic-32")
    docs = [Document(text=f"row {i}", id=f"d{i}") for i in range(300)]
    with Memory(path, embedder=emb, ann="hnsw") as mem:
        mem.import_vectors(docs, x)
        before = mem.search("", query_vector=x[7], mode="vector", k=5)
    folder = mem.vector.directory
    current = folder / (folder / "CURRENT").read_text().strip()
    manifest = json.loads(current.read_text())
    assert manifest["graph"] == "faiss"
    graph = manifest.pop("file_graph")
    del manifest["graph"], manifest["file_graph_ids"]
    (folder / "segments" / graph).rename(folder / "segments" / "hnsw-0001.bin")
    manifest["file_hnsw"] = "hnsw-0001.bin"  # what an hnswlib-era manifest names
    current.write_text(json.dumps(manifest))
    with caplog.at_level("WARNING"), Memory(path, embedder=emb, ann="hnsw") as mem:
        after = mem.search("", query_vector=x[7], mode="vector", k=5)
        assert mem.vector.hnsw is not None
    notices = [r.getMessage() for r in caplog.records if "hnswlib" in r.getMessage()]
    assert len(notices) == 1 and "\n" not in notices[0]
    assert [h.id for h in after] == [h.id for h in before]
    fresh = json.loads((folder / (folder / "CURRENT").read_text().strip()).read_text())
    assert "file_hnsw" not in fresh and fresh["graph"] == "faiss"


def _recall(idx: FlatVectorIndex, queries: np.ndarray) -> float:
    hits = [
        len({i for i, _ in idx.search(q, 10)} & {i for i, _ in idx.search(q, 10, exact=True)})
        for q in queries
    ]
    return float(np.mean(hits)) / 10


def test_inverted_lists_build_in_bulk_and_every_row_is_searchable_at_once(tmp_path):
    x = clustered(8000)
    idx = FlatVectorIndex(tmp_path / "v", dim=32, ann="auto", ann_threshold=3000, ivf_nprobe=8)
    idx.add([(i + 1, "", v) for i, v in enumerate(x[:6000])])
    assert idx.ivf is None  # nothing built on add: exact search until the save
    idx.last_seq = 1
    idx.save()
    assert idx.ivf is not None and len(idx.ivf) == 6000 and idx.ivf.nlist == default_nlist(6000)
    # rows added after the build are found at once (exact search over the tail)
    idx.add([(i + 1, "", v) for i, v in enumerate(x[6000:6200], start=6000)])
    assert idx.tail_rows() == 200
    assert idx.search(x[6100], 1)[0][0] == 6101
    assert _recall(idx, x[100:140] + 0.05 * clustered(40, seed=1)) >= 0.95
    # deletes and filters
    top = idx.search(x[10], 1)[0][0]
    idx.remove([top])
    assert top not in {i for i, _ in idx.search(x[10], 50)}
    broad = np.arange(2, 6201, 2, dtype=np.int64)
    got = idx.search(x[11], 10, allowed=broad)
    assert len(got) == 10 and {i for i, _ in got} <= set(broad.tolist())
    # a tenth more rows: the lists are extended (same centroids) at the next save
    idx.add([(i + 1, "", v) for i, v in enumerate(x[6200:], start=6200)])
    centroids = idx.ivf.centroids
    idx.save()
    assert len(idx.ivf) == 8000 - 1 and idx.tail_rows() == 0
    assert np.array_equal(idx.ivf.centroids, centroids)
    again = FlatVectorIndex(tmp_path / "v", dim=32, ann="auto", ann_threshold=3000, ivf_nprobe=8)
    assert again.load() and isinstance(again.ivf.vectors, np.memmap)
    assert again.search(x[7000], 5) == idx.search(x[7000], 5)
    assert top not in {i for i, _ in again.search(x[10], 50)}
    exact_only = FlatVectorIndex(tmp_path / "v", dim=32, ann="exact")  # the lists go unused
    assert exact_only.load() and exact_only.search(x[5], 10) == again.search(x[5], 10, exact=True)


def test_an_id_the_lists_may_hold_coming_back_drops_them_until_the_next_save(tmp_path):
    x = clustered(4000)
    idx = FlatVectorIndex(tmp_path / "v", dim=32, ann="ivf", ann_threshold=1000)
    idx.add([(i + 1, "", v) for i, v in enumerate(x)])
    idx.save()
    idx.remove([5])
    idx.add([(5, "", x[0])])
    assert idx.ivf is None and idx.search(x[0], 2)[0][0] in (1, 5)
    idx.save()
    assert idx.ivf is not None and idx.tail_rows() == 0


def test_equality_filters_use_posting_lists_that_follow_the_changelog(tmp_path):
    from engram.embed.precomputed import PrecomputedEmbedder
    from engram.memory import Memory
    from engram.types import Document

    x = clustered(300)
    docs = [Document(text=f"doc {i}", id=str(i), metadata={"t": f"v{i % 3}"}) for i in range(300)]
    with Memory(tmp_path / "m.db", embedder=PrecomputedEmbedder(32, "p")) as mem:
        mem.import_vectors(docs, x)
        scope = mem.retrieval.scope(None, {"t": "v1"}).resolved
        sql = mem.store.allowed_ids(None, {"t": "v1"})
        assert np.array_equal(scope, sql) and len(scope) == 100
        assert "t" in mem.retrieval.postings.lists  # answered from the posting lists
        # a deleted document and a moved one (its metadata rewritten) are followed
        mem.delete("1")
        mem.import_vectors([Document(text="doc 3", id="3", metadata={"t": "v1"})], x[3:4])
        for value in ("v0", "v1", "v2"):
            assert np.array_equal(
                mem.retrieval.scope(None, {"t": value}).resolved,
                mem.store.allowed_ids(None, {"t": value}),
            )
        assert len(mem.retrieval.scope(None, {"t": "v1"}).resolved) == 100  # -1 deleted, +1 moved
        # built-in fields are document columns, not metadata: SQL as before
        assert mem.retrieval.postings.lookup({"doc_id": "7"}) is None
        assert len(mem.retrieval.scope(None, {"doc_id": "7"}).resolved) == 1
        # an operator filter goes through SQL as before
        assert len(mem.retrieval.scope(None, {"t": {"$in": ["v0", "v2"]}}).resolved) == 199


def test_keyword_segments_are_mapped_and_the_older_single_file_format_still_loads(tmp_path):
    from engram.index.keyword import KeywordIndex

    k = KeywordIndex(tmp_path / "kw")
    k.add([(i + 1, f"alpha beta gamma{i % 7} delta{i}", None) for i in range(500)])
    k.last_seq = 1
    k.save()
    again = KeywordIndex(tmp_path / "kw")
    assert again.load() and again.segments[0].postings.indices.base is not None  # a mapped view
    assert again.search("gamma3 delta5", 3) == k.search("gamma3 delta5", 3)
    seg = next((tmp_path / "kw" / "segments").glob("keyword-*.ids.npy")).name.split(".")[0]
    stem = tmp_path / "kw" / "segments" / seg
    old = {p: np.load(f"{stem}.{p}.npy") for p in ("ids", "lengths", "indptr", "indices", "data")}
    np.savez(f"{stem}.npz", shape=np.load(f"{stem}.shape.npy"), **old)
    assert again._load_segment(stem).postings.nnz == k.segments[0].postings.nnz


def test_inverted_lists_place_every_row_once_by_its_nearest_centroid():
    from engram.index.ivf import IvfLists, assign

    x = clustered(3000)
    ids = np.arange(1, 3001, dtype=np.int64) * 3
    centroids = x[::300].copy()
    parts = [(ids[:1000], x[:1000]), (ids[1000:2500], x[1000:2500]), (ids[2500:], x[2500:])]
    lists = IvfLists.build(centroids, parts)
    nearest = assign(centroids, x)
    for lst in range(len(centroids)):
        a, b = int(lists.offsets[lst]), int(lists.offsets[lst + 1])
        got = lists.ids[a:b]
        assert got.tolist() == ids[nearest == lst].tolist()  # ascending within a list
        assert np.array_equal(lists.vectors[a:b], x[nearest == lst])
    assert lists.offsets[-1] == len(ids) and lists.max_id == int(ids[-1])


def test_frozen_segments_keep_each_vector_with_its_id_in_any_arrival_order():
    """Blocks arrive with ids out of order, within and across segments; freezing and merging
    sort the rows by id and keep every vector with its own id."""
    x = clustered(400)
    idx = FlatVectorIndex(None, dim=32, ann="exact")
    arrival = [np.arange(200, 300), np.arange(0, 100)[::-1], np.arange(300, 400)]
    arrival.append(np.arange(100, 200))
    for block in arrival:
        idx.add_block(block + 1, x[block])
        idx.freeze()
    held = {}
    for seg in idx.segments:
        assert np.all(seg.ids[1:] > seg.ids[:-1])
        held.update({int(i): np.asarray(v) for i, v in zip(seg.ids, seg.vectors, strict=True)})
    assert sorted(held) == list(range(1, 401))
    assert all(np.array_equal(held[i + 1], x[i]) for i in range(400))
    q = x[123]
    want = (np.argsort(-(x @ q), kind="stable")[:10] + 1).tolist()
    assert [i for i, _ in idx.search(q, 10)] == want


def test_a_save_leaves_the_vectors_in_their_files(tmp_path):
    """After a save the segments and the inverted lists read their vectors from the files
    written (as a reopened index does), so a bulk load's vectors leave the process's memory;
    answers do not change."""
    x = clustered(5000)
    idx = FlatVectorIndex(tmp_path / "v", dim=32, ann="auto", ann_threshold=3000, ivf_nprobe=8)
    idx.add([(i + 1, "", v) for i, v in enumerate(x[:4000])])
    idx.freeze()
    assert not any(isinstance(s.vectors, np.memmap) for s in idx.segments)
    before = [idx.search(q, 10, exact=True) for q in x[:20]]
    idx.last_seq = 1
    idx.save()
    assert idx.ivf is not None and isinstance(idx.ivf.vectors, np.memmap)
    assert all(isinstance(s.vectors, np.memmap) for s in idx.segments)
    assert [idx.search(q, 10, exact=True) for q in x[:20]] == before
    idx.add([(i + 1, "", v) for i, v in enumerate(x[4000:], start=4000)])
    idx.last_seq = 2
    idx.save()  # extends the lists from the mapped ones
    assert len(idx.ivf) == 5000 and idx.search(x[4500], 1)[0][0] == 4501
