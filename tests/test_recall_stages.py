"""The recall stages beside fusion (engram.recall.refine): each off by default, each changing
the ranking in the way it claims, on real stores with the real embedder."""

from __future__ import annotations

import numpy as np
import pytest

from engram.cli_help import config_pairs
from engram.errors import EngramError
from engram.recall.adaptive import adaptive_alpha, confidence
from engram.recall.documents import add_document_vectors, document_vectors, pool_documents
from engram.recall.feedback import add_rankings, expansion_terms, rocchio


def test_pool_documents_adds_a_documents_other_chunks():
    fused = {1: 0.9, 2: 0.8, 3: 0.7, 4: 0.1}
    doc_of = {1: "a", 2: "b", 3: "b", 4: "a"}
    assert pool_documents(fused, doc_of, 0.0) == fused
    pooled = pool_documents(fused, doc_of, 0.5)
    assert pooled[2] == pytest.approx(0.8 + 0.35)  # b: 0.8 + 0.5 * 0.7 beats a: 0.9 + 0.05
    assert pooled[1] == pytest.approx(0.95)
    assert pooled[2] > pooled[1] and pooled[2] > pooled[3]  # order within b is kept


def test_document_vectors_are_normalised_means():
    vecs = {1: np.array([1.0, 0.0]), 2: np.array([0.0, 1.0]), 3: np.array([1.0, 0.0])}
    docs = document_vectors(vecs, {1: "a", 2: "a", 3: "b"})
    assert np.allclose(docs["a"], [2**-0.5, 2**-0.5]) and np.allclose(docs["b"], [1, 0])
    out = add_document_vectors({1: 0.5, 3: 0.5}, {1: "a", 3: "b"}, docs, np.array([1.0, 0]), 1.0)
    assert out[3] == pytest.approx(1.5) and out[1] == pytest.approx(0.5)


def test_adaptive_alpha_leans_on_the_confident_leg():
    sharp = [(1, 10.0), (2, 1.0), (3, 0.9), (4, 0.8)]
    flat = [(5, 1.0), (6, 0.99), (7, 0.98), (8, 0.0)]
    assert confidence(sharp) > 0.8 > confidence(flat)
    assert adaptive_alpha(flat, sharp, 0.5, 0.5) > 0.7  # vectors confident: more vector
    assert adaptive_alpha(sharp, flat, 0.5, 0.5) < 0.3
    assert adaptive_alpha(sharp, flat, 0.5, 0.0) == 0.5
    assert adaptive_alpha([], flat, 0.4, 0.5) == 0.4


def test_rm3_terms_come_from_the_feedback_passages_not_the_query():
    passages = [("glaciers carve valleys; glaciers move ice", 3.0), ("ice sheets melt", 1.0)]
    terms = expansion_terms("glacier", passages, 2)
    assert "glacier" not in terms and terms[0] == "ice"
    assert expansion_terms("glacier", [], 5) == []
    assert add_rankings([(1, 2.0)], [(2, 4.0), (1, 1.0)], 0.5) == [(1, 2.5), (2, 2.0)]


def test_rocchio_moves_the_query_towards_the_feedback():
    q = np.array([1.0, 0.0], dtype=np.float32)
    moved = rocchio(q, [np.array([0.0, 1.0])], 1.0)
    assert np.isclose(np.linalg.norm(moved), 1.0) and moved[1] > 0.5
    assert rocchio(q, [], 1.0) is q


DOCS = [
    {"id": "purr1", "text": "The cat will purr when its whiskers are stroked."},
    {"id": "purr2", "text": "A purring cat has relaxed whiskers and soft paws."},
    {"id": "feline", "text": "Whiskers help a cat judge narrow gaps in the dark."},
    {"id": "rocks", "text": "Granite forms when magma cools slowly underground."},
]


def test_rm3_finds_a_passage_without_the_query_word(make_memory):
    mem = make_memory()
    mem.add(DOCS)
    plain = [h.doc_id for h in mem.search("purr", k=4, mode="keyword")]
    assert "feline" not in plain
    mem.config = mem.config.replace(rm3_terms=3, feedback_docs=2)
    expanded = [h.doc_id for h in mem.search("purr", k=4, mode="keyword")]
    assert expanded[0] == plain[0] and set(plain) < set(expanded)
    assert "feline" in expanded and "rocks" not in expanded


def test_document_pooling_and_vectors_in_search(make_memory):
    mem = make_memory(chunk_tokens=12, chunk_overlap=0)
    long_doc = (
        "Volcanoes erupt lava and ash. Lava flows from volcanoes cool into basalt rock. "
        "Ash from volcanoes darkens the sky for days."
    )
    mem.add([{"id": "long", "text": long_doc}, {"id": "one", "text": "A volcano erupts lava."}])
    base = mem.search("volcanoes lava ash", k=10, mode="keyword")
    assert len({h.doc_id for h in base}) == 2 and sum(h.doc_id == "long" for h in base) >= 2
    mem.config = mem.config.replace(doc_pool_decay=1.0, doc_vector_weight=0.5)
    pooled = mem.search("volcanoes lava ash", k=10)
    assert pooled[0].doc_id == "long"
    best_long = max(h.score for h in pooled if h.doc_id == "long")
    assert best_long > max(h.score for h in base if h.doc_id == "long")


@pytest.mark.parametrize("score", ["likelihood", "yesno"])
def test_rerank_with_the_local_model(make_memory, generator, score):
    mem = make_memory(generator=generator, rerank_top=3, rerank_weight=0.5, rerank_score=score)
    mem.add(DOCS)
    hits = mem.search("Why does a cat purr?", k=4)
    assert mem.last_rerank_seconds > 0
    assert all("rerank" in h.scores for h in hits[:3]) and "rerank" not in hits[3].scores
    assert [h.score for h in hits[:3]] == sorted((h.score for h in hits[:3]), reverse=True)
    if score == "likelihood":  # a mean log-probability per query token
        assert all(h.scores["rerank"] < 0 for h in hits[:3])


def test_query_likelihood_prefers_the_passage_the_query_was_written_for(generator):
    from engram.recall.rerank import lm_likelihood

    query = "why do cats purr"
    passages = [
        "Cats purr when they are content, and also to soothe themselves when hurt.",
        "The stock market closed lower on Tuesday after weak earnings reports.",
    ]
    on_topic, off_topic = lm_likelihood(generator, query, passages)
    assert on_topic > off_topic


def test_an_unknown_rerank_score_is_refused(make_memory):
    with pytest.raises(EngramError, match="unknown rerank_score 'magic'"):
        make_memory(rerank_score="magic")


def test_config_pairs_refuses_unknown_settings():
    assert config_pairs(["doc_pool_decay=0.2", "rm3_terms=5"]) == {
        "doc_pool_decay": 0.2,
        "rm3_terms": 5,
    }
    assert config_pairs(["speaker=0.1"], extra=("speaker",)) == {"speaker": 0.1}
    with pytest.raises(EngramError, match="unknown setting"):
        config_pairs(["doc_pool=1"])
    with pytest.raises(EngramError, match="KEY=VALUE"):
        config_pairs(["doc_pool_decay"])


def test_eval_beir_takes_recall_settings(tmp_path, monkeypatch, capsys):
    import gzip
    import json

    from engram.cli import main

    monkeypatch.setenv("ENGRAM_THREADS", "1")
    folder = tmp_path / "tiny"
    (folder / "qrels").mkdir(parents=True)
    with gzip.open(folder / "corpus.jsonl.gz", "wt") as f:
        for d in DOCS:
            f.write(json.dumps({"_id": d["id"], "title": "", "text": d["text"]}) + "\n")
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "purr"}) + "\n")
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tfeline\t1\n")
    argv = ["eval", "beir", str(folder), "--mode", "keyword", "--json"]
    assert main(argv) == 0
    plain = json.loads(capsys.readouterr().out)
    assert main([*argv, "--recall", "rm3_terms=3", "--recall", "feedback_docs=2"]) == 0
    expanded = json.loads(capsys.readouterr().out)
    assert plain["recall@10"] == 0.0 and expanded["recall@10"] == 1.0
    assert main([*argv, "--recall", "no_such=1"]) == 1
    assert "unknown setting(s) no_such" in capsys.readouterr().err


def test_rerank_reads_one_passage_per_document():
    """Chunks of one document among the top are read together, once, in stored order, and
    share its score; the model's preferred document moves up."""
    from types import SimpleNamespace

    from engram.recall.rerank import rerank_hits
    from engram.types import Hit

    prompts: list[str] = []

    class Scorer:
        def reply_logprobs(self, messages, replies):
            prompts.append(messages[0]["content"])
            liked = "tea" in messages[0]["content"]
            return [SimpleNamespace(tokens=[-0.5 if liked else -3.0] * 2)]

    hits = [
        Hit(id=7, text="second half", score=0.9, doc_id="a", title="A"),
        Hit(id=3, text="about coffee", score=0.8, doc_id="b"),
        Hit(id=6, text="first half", score=0.7, doc_id="a", title="A"),
        Hit(id=9, text="about tea", score=0.6, doc_id="c"),
        Hit(id=1, text="not read", score=0.1, doc_id="d"),
    ]
    ranked, _ = rerank_hits(Scorer(), "tea", hits, top=4, weight=2.0)
    assert len(prompts) == 3 and "A\nfirst half second half" in prompts[0]
    assert ranked[0].doc_id == "c" and ranked[-1].doc_id == "d"
    assert hits[0].scores["rerank"] == hits[2].scores["rerank"] == -3.0
