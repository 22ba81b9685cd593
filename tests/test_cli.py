"""The engram command line, run in-process against real store files."""

from __future__ import annotations

import gzip
import json

import pytest

from engram.cli import main


@pytest.fixture
def store(tmp_path, monkeypatch, embedder):
    monkeypatch.setenv("ENGRAM_STORE", str(tmp_path / "cli.db"))
    return tmp_path / "cli.db"


def run(capsys, *argv):
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_add_search_delete_stats_reindex(tmp_path, store, capsys):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.md").write_text(
        "---\nyear: 2024\n---\n# Herons\nHerons hunt fish in shallow water."
    )
    (folder / "b.jsonl").write_text(
        json.dumps({"id": "owl", "text": "Owls hunt mice at night.", "metadata": {"year": 2020}})
        + "\n"
    )
    code, out, _ = run(capsys, "add", str(folder), "--meta", "team=birds", "--json")
    assert code == 0 and json.loads(out)["added"] == 2
    code, out, _ = run(capsys, "add", str(folder), "--meta", "team=birds")
    assert code == 0 and "unchanged 2" in out

    code, out, _ = run(capsys, "search", "hunting at night", "--json", "--k", "5")
    hits = json.loads(out)
    assert code == 0 and hits[0]["doc_id"] == "owl"
    assert {"id", "score", "text", "metadata", "source"} <= hits[0].keys()
    assert hits[0]["metadata"] == {"team": "birds", "year": 2020}

    code, out, _ = run(capsys, "search", "hunt", "--where", "year>=2024", "--json", "--explain")
    hits = json.loads(out)
    assert [h["title"] for h in hits] == ["Herons"] and "keyword" in hits[0]["scores"]

    code, out, _ = run(capsys, "search", "hunt", "--clusters")
    assert code == 0 and out.startswith("== ")

    code, out, _ = run(capsys, "delete", "owl", "--reason", "test")
    assert code == 0 and "deleted 1" in out
    code, out, _ = run(capsys, "search", "owls mice night", "--json")
    assert all(h["doc_id"] != "owl" for h in json.loads(out))

    code, out, _ = run(capsys, "stats", "--json")
    stats = json.loads(out)
    assert stats["documents"] == 1 and stats["embedding_dim"] == 384
    code, out, _ = run(capsys, "reindex")
    assert code == 0 and "keyword: 1 chunks" in out


def test_clear_errors(tmp_path, store, capsys):
    code, _, err = run(capsys, "search", "x", "--namespace", "nobody")
    assert code == 1 and "engram: error:" in err
    (tmp_path / "n.txt").write_text("Some text about kites.")
    assert run(capsys, "add", str(tmp_path / "n.txt"))[0] == 0
    code, _, err = run(capsys, "search", "kites", "--where", "year >> 3")
    assert code == 1 and "filter" in err
    code, _, err = run(capsys, "add", str(tmp_path / "missing.txt"))
    assert code == 1 and "no such file" in err


def test_eval_beir_json(tmp_path, store, capsys):
    folder = tmp_path / "tiny"
    (folder / "qrels").mkdir(parents=True)
    docs = [
        ("d1", "Glaciers", "Glaciers are slow rivers of ice."),
        ("d2", "Deserts", "Deserts receive very little rain."),
        ("d3", "Reefs", "Coral reefs grow in warm shallow seas."),
    ]
    with gzip.open(folder / "corpus.jsonl.gz", "wt") as f:
        for i, t, x in docs:
            f.write(json.dumps({"_id": i, "title": t, "text": x}) + "\n")
    (folder / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "rivers of ice"})
        + "\n"
        + json.dumps({"_id": "q2", "text": "little rain"})
        + "\n"
    )
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\n")
    code, out, _ = run(capsys, "eval", "beir", str(folder), "--mode", "keyword", "--json")
    result = json.loads(out)
    assert code == 0
    assert {"ndcg@10", "recall@10", "recall@100", "mrr@10", "mode", "queries"} <= result.keys()
    assert result["ndcg@10"] == 1.0 and result["queries"] == 2 and result["mode"] == "keyword"


def test_optimize_builds_the_inverted_lists_now(tmp_path, store, capsys):
    from engram.retrieval.local import LocalRetrieval

    notes = tmp_path / "n.jsonl"
    notes.write_text(
        "".join(
            json.dumps({"id": f"d{i}", "text": f"note {i} about herons"}) + "\n" for i in range(5)
        )
    )
    assert run(capsys, "add", str(notes))[0] == 0
    code, out, _ = run(capsys, "optimize")
    assert code == 0 and "in_lists: 5" in out and "searched_exactly: 0" in out
    from engram.memory import Memory

    with Memory(store) as mem:  # the lists were saved: a fresh open maps them
        assert (
            isinstance(mem.retrieval, LocalRetrieval) and len(mem.retrieval.vector_index.ivf) == 5
        )
        assert mem.search("herons", 3)
