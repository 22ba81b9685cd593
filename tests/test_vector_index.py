"""The vector index: exact search, the HNSW graph at scale, deletes, filters, persistence."""

from __future__ import annotations

import numpy as np

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
