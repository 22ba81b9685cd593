"""Smoke runs of the benchmark scripts in ``bench/`` at a tiny scale (not the benchmarks).

Each script's code path runs once on a few hundred synthetic rows: data generation, every
engine's build/open/queries, the scale driver (child processes included), the report, the
keyword quality script and the LanceDB tuning script. LanceDB parts are skipped when
``lancedb`` is not installed.
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import data as datamod  # noqa: E402
from bench.engines import K, make  # noqa: E402

ROWS, QUERIES = 1000, 20


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return datamod.generate(ROWS, tmp_path_factory.mktemp("data"), queries=QUERIES)


def test_data_is_deterministic(folder, tmp_path):
    again = datamod.generate(ROWS, tmp_path, queries=QUERIES)
    assert (folder / "texts.txt").read_bytes() == (again / "texts.txt").read_bytes()
    assert np.array_equal(np.load(folder / "vectors.npy"), np.load(again / "vectors.npy"))
    d = datamod.load(folder)
    assert d["vectors"].shape == (ROWS, 384)
    assert np.allclose(np.linalg.norm(d["vectors"], axis=1), 1.0, atol=1e-4)
    assert len(d["q_text"]) == QUERIES and d["truth"].shape == (QUERIES, K)
    stats = datamod.describe(folder)
    assert stats["cos_same_subtopic_mean"] > stats["cos_random_mean"]


def _check_engine(engine, d):
    tenants = d["tenants"]
    for i in range(4):
        text, vec, tenant = d["q_text"][i], d["qvecs"][i], d["q_tenant"][i]
        for op in engine.ops:
            rows = engine.run(op, text, vec, tenant)
            assert 0 < len(rows) <= K, (engine.name, op)
            assert all(0 <= r < ROWS for r in rows)
            if op.endswith("filtered"):
                assert len(rows) == min(K, int(np.sum(tenants == tenant)))  # k when k exist
                assert all(tenants[r] == tenant for r in rows)
            if op == "vector":
                assert rows[0] == d["truth"][i][0]  # exact at this size


@pytest.mark.parametrize("name", ["engram", "postgres", "fts5", "bm25s", "lancedb"])
def test_engine_build_open_query(name, folder, tmp_path, monkeypatch):
    if name == "lancedb":
        pytest.importorskip("lancedb")
    if name == "postgres":
        from pg import pg_url

        monkeypatch.setenv("ENGRAM_BENCH_PG_URL", pg_url())  # skips locally without a server
    d = datamod.load(folder)
    engine = make(name, tmp_path / name)
    built = engine.build(folder)
    assert built["build_s"] > 0
    engine.open()
    try:
        _check_engine(engine, d)
    finally:
        engine.close()


def test_scale_driver_and_report(folder, tmp_path):
    from bench import report, scale

    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    (work / "data" / folder.name).symlink_to(folder)
    scale.main(
        [
            "--scale", str(ROWS), "--queries", str(QUERIES), "--warmup", "2",
            "--work", str(work), "--engines", "engram,engram@p,fts5",
            "--variant", 'p={"hnsw_ef_search": 64}',
        ]
    )  # fmt: skip
    result = json.loads((work / "results" / f"scale-{ROWS}.json").read_text())
    assert set(result["build"]) == {"engram", "fts5"}
    assert set(result["reopen"]) == {"engram", "engram@p", "fts5"}
    q = result["query"]["engram"]
    assert q["vector"]["recall@10"] == 1.0
    assert q["hybrid_filtered"]["full_k_share"] == 1.0
    md = tmp_path / "b.md"
    md.write_text("# x\n<!-- tables:start -->\nold\n<!-- tables:end -->\ntail\n")
    sys.argv = [
        "report", "--results", str(work / "results"), "--json", str(tmp_path / "b.json"),
        "--img", str(tmp_path / "img"), "--md", str(md),
    ]  # fmt: skip
    report.main()
    all_rows = json.loads((tmp_path / "b.json").read_text())
    rows = [r for r in all_rows if r["op"] not in ("build", "open")]
    assert rows and all(
        set(r) == {"engine", "scale", "op", "p50_ms", "p99_ms", "recall@10", "date"} for r in rows
    )
    assert {r["op"] for r in rows} == {"keyword", "vector", "hybrid", "hybrid_filtered"}
    assert all((r["recall@10"] is None) == (r["op"] != "vector") for r in rows)
    # build (engines that built a store) and open (every engine), wall time in seconds
    walls = {(r["engine"], r["op"]): r["seconds"] for r in all_rows if "seconds" in r}
    assert set(walls) == {
        ("engram", "build"), ("fts5", "build"), ("engram", "open"), ("engram@p", "open"),
        ("fts5", "open"),
    }  # fmt: skip
    assert all(s > 0 for s in walls.values())
    engram_build = next(r for r in all_rows if (r["engine"], r["op"]) == ("engram", "build"))
    assert engram_build["store_keyword_s"] <= engram_build["seconds"]
    assert (tmp_path / "img" / "bench-latency.png").stat().st_size > 10_000
    text = md.read_text()
    assert "old" not in text and text.endswith("tail\n") and "| engram | hybrid |" in text


def _tiny_beir(path: Path) -> Path:
    docs = [
        ("d1", "Aspirin lowers the risk of heart attack"),
        ("d2", "Vitamin D and bone density in older adults"),
        ("d3", "Heart disease risk factors include smoking"),
        ("d4", "Sleep duration and memory consolidation"),
    ]
    (path / "qrels").mkdir(parents=True)
    with gzip.open(path / "corpus.jsonl.gz", "wt") as f:
        for i, t in docs:
            f.write(json.dumps({"_id": i, "title": "", "text": t}) + "\n")
    (path / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "heart attack risk"})
        + "\n"
        + json.dumps({"_id": "q2", "text": "memory and sleep"})
        + "\n"
    )
    (path / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td4\t1\n")
    return path


@pytest.mark.parametrize("name", ["engram", "bm25s", "fts5", "lancedb"])
def test_quality_keyword(name, tmp_path):
    if name == "lancedb":
        pytest.importorskip("lancedb")
    from bench import quality

    docs, queries, qrels = quality.load(str(_tiny_beir(tmp_path / "beir")))
    work = tmp_path / "w"
    work.mkdir()
    rankings, speed = quality.run_engine(name, docs, queries, work)
    scores = quality.score(rankings, qrels)
    assert scores["ndcg@10"] > 0.9, (name, rankings)
    assert speed["n"] == 2


def test_lance_tune(folder, tmp_path, monkeypatch):
    pytest.importorskip("lancedb")
    from bench import lance_tune

    monkeypatch.setattr(
        sys, "argv",
        ["lance_tune", "--data", str(folder), "--work", str(tmp_path), "--types", "IVF_FLAT",
         "--grid", '{"nprobes": [4], "ef": [16], "refine_factor": [null]}', "--queries", "5"],
    )  # fmt: skip
    lance_tune.main()
    rows = json.loads((tmp_path / "tune.json").read_text())
    assert rows[0]["recall@10"] > 0.5


@pytest.mark.slow
def test_ingest_e2e(tmp_path, embedder):
    from bench import ingest_e2e, quality

    docs, _, _ = quality.load(str(_tiny_beir(tmp_path / "beir")))
    engines = ["engram", "fts5"]
    try:
        import lancedb  # noqa: F401

        engines.append("lancedb")
    except ImportError:
        pass
    rows = ingest_e2e.run(docs, engines, embedder)
    assert [r["engine"] for r in rows] == engines
    assert all(r["chunks"] >= len(docs) and r["seconds"] > 0 for r in rows)
