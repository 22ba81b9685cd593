"""``engram export``: QA pairs from memory, deduplicated, split by source, with provenance."""

from __future__ import annotations

import json

import pytest
from pg import BACKENDS, pg_url, store_location

from engram.agents import AgentMemory
from engram.cli import main
from engram.errors import EngramError, NamespaceError
from engram.export import (
    _parse_generated,
    export_dataset,
    normalize,
    split_pairs,
    write_export,
)
from engram.types import Document

PASSAGES = {
    "kiln": "The Orrin Vale kiln was fired for the first time in 1887 by the potter Maud Tessier. "
    "It burned beech wood and reached its working heat after nineteen hours.",
    "canal": "The Lisk canal links the mill town of Carrow to the estuary. Its eleven locks were "
    "cut by hand, and the towpath was paved with blue slate from Penmoor.",
    "orchard": "The Hallam orchard grows a pear called the Winter Lantern. Its fruit is picked in "
    "late October and stored in straw until the new year.",
    "bell": "The bell of Saint Oda was cast in bronze in 1702. It weighs nine hundredweight and "
    "is rung by a team of six.",
}
PAIRS = [
    ("kiln", "Who first fired the Orrin Vale kiln?", "Maud Tessier"),
    ("kiln", "What wood did the Orrin Vale kiln burn?", "beech wood"),
    ("canal", "How many locks does the Lisk canal have?", "eleven"),
    ("canal", "Where did the slate of the Lisk towpath come from?", "Penmoor"),
    ("orchard", "Which pear grows in the Hallam orchard?", "the Winter Lantern"),
    ("bell", "When was the bell of Saint Oda cast?", "1702"),
    # a duplicate of the first pair once normalised (case, punctuation), from another document
    ("kiln", "who first fired the Orrin Vale kiln", "Maud Tessier."),
]


def fill(mem, namespace: str = "kb") -> None:
    docs = [Document(text=t, id=k, source=f"{k}.md", title=k) for k, t in PASSAGES.items()]
    docs += [
        Document(
            text=f"{q}\n{a}",
            id=f"qa-{n}",
            metadata={"question": q, "answer": [a, "other"], "source_doc": key},
        )
        for n, (key, q, a) in enumerate(PAIRS)
    ]
    mem.add_documents(docs, namespace=namespace)


def test_stored_pairs_are_deduplicated_split_by_source_and_traced_to_chunks(make_memory):
    mem = make_memory()
    fill(mem)
    result = export_dataset(mem, "kb", "qa-jsonl", split=0.6, seed=3)
    counts = result.manifest["counts"]
    assert counts["stored"] == len(PAIRS) and counts["duplicates"] == 1
    pairs = result.train + result.validation
    assert len(pairs) == len(PAIRS) - 1
    assert len({normalize(p.question) + normalize(p.answer) for p in pairs}) == len(pairs)
    # no source document feeds both splits
    assert result.train and result.validation
    assert not {p.group for p in result.train} & {p.group for p in result.validation}
    assert counts["train"] + counts["validation"] == len(pairs)
    for pair in pairs:
        doc_ids = {s["doc_id"] for s in pair.sources}
        assert pair.group in doc_ids  # the passage the pair is about is cited
        passage = next(s for s in pair.sources if s["doc_id"] == pair.group)
        [hit] = mem.get(passage["chunk_ids"])
        assert hit.doc_id == pair.group and pair.context == hit.text
        assert normalize(pair.answer) in normalize(hit.text)
    merged = next(p for p in pairs if p.answer == "Maud Tessier")
    assert {"qa-0", "qa-6", "kiln"} <= {s["doc_id"] for s in merged.sources}


def test_split_is_deterministic_and_seeded(make_memory):
    mem = make_memory()
    fill(mem)

    def groups(seed: float, share: float = 0.5) -> tuple[list[str], list[str]]:
        result = export_dataset(mem, "kb", "chat-jsonl", split=share, seed=seed)
        return [p.id for p in result.train], [p.id for p in result.validation]

    assert groups(0) == groups(0)
    assert len({tuple(groups(seed)[1]) for seed in range(6)}) > 1  # the seed matters
    train, validation = groups(0, 1.0)
    assert validation == [] and len(train) == len(PAIRS) - 1
    with pytest.raises(EngramError, match="split"):
        split_pairs([], 0.0)


def test_chat_records_in_the_fine_tuning_format(make_memory, tmp_path):
    mem = make_memory()
    fill(mem)
    result = export_dataset(mem, "kb", "chat-jsonl", split=0.7, seed=1, system="Be brief.")
    manifest = write_export(result, tmp_path / "out")
    lines = {
        name: (tmp_path / "out" / f"{name}.jsonl").read_text().splitlines()
        for name in ("train", "validation")
    }
    assert len(lines["train"]) == manifest["counts"]["train"] > 0
    assert len(lines["validation"]) == manifest["counts"]["validation"] > 0
    saved = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert saved["counts"] == manifest["counts"] and saved["namespace"] == "kb"
    record = json.loads(lines["train"][0])
    assert [m["role"] for m in record["messages"]] == ["system", "user", "assistant"]
    assert record["messages"][0]["content"] == "Be brief."
    assert record["metadata"]["origin"] == "stored" and record["metadata"]["sources"]


def test_conversation_turns_become_pairs(make_memory):
    mem = make_memory()
    agent = AgentMemory(mem, "chat")
    agent.remember_session(
        [
            ("user", "What is my cat called?"),
            ("assistant", "Your cat is called Miso."),
            ("user", "And the dog?"),
            ("assistant", "The dog is Pepper."),
        ],
        session="s1",
    )
    agent.remember_session([("user", "Hello"), ("assistant", "Hi there")], session="s2")
    result = export_dataset(mem, "chat", "qa-jsonl", split=1.0)
    pairs = {(p.question, p.answer) for p in result.train}
    assert pairs == {
        ("What is my cat called?", "Your cat is called Miso."),
        ("Your cat is called Miso.", "And the dog?"),
        ("And the dog?", "The dog is Pepper."),
        ("Hello", "Hi there"),
    }
    only = export_dataset(mem, "chat", "qa-jsonl", split=1.0, assistant="assistant")
    assert len(only.train) == 3 and all(p.origin == "turns" for p in only.train)
    assert all(len(p.sources) == 2 and p.group.startswith("session:") for p in only.train)


def test_unknown_empty_and_pairless_namespaces(make_memory):
    mem = make_memory()
    fill(mem)
    with pytest.raises(NamespaceError, match="unknown namespace 'nope'.*kb"):
        export_dataset(mem, "nope")
    mem.add_documents([Document(text="Only prose here.", id="p")], namespace="prose")
    with pytest.raises(EngramError, match="no question-answer pairs.*--generate"):
        export_dataset(mem, "prose")
    mem.delete(["p"], namespace="prose")
    with pytest.raises(EngramError, match="'prose' is empty"):
        export_dataset(mem, "prose")
    with pytest.raises(EngramError, match="unknown export format"):
        export_dataset(mem, "kb", "csv")


def test_cli_export(make_memory, tmp_path, capsys):
    mem = make_memory("cli.db")
    fill(mem)
    mem.close()
    store = str(tmp_path / "cli.db")
    out = tmp_path / "ds"
    assert main(["--store", store, "export", "--namespace", "kb", "--out", str(out)]) == 0
    assert "train and" in capsys.readouterr().out
    assert (out / "train.jsonl").exists() and (out / "manifest.json").exists()

    assert main(["--store", store, "export", "--namespace", "kb", "--format", "qa-jsonl"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(records) == len(PAIRS) - 1
    assert {r["split"] for r in records} <= {"train", "validation"}
    assert all({"question", "answer", "context", "sources"} <= set(r) for r in records)

    assert main(["--store", store, "export", "--namespace", "kb", "--bare", "--split", "1"]) == 0
    chats = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert all(set(c) == {"messages"} for c in chats)

    assert main(["--store", store, "export", "--namespace", "missing"]) == 1
    assert "unknown namespace 'missing'" in capsys.readouterr().err
    assert main(["--store", str(tmp_path / "none.db"), "export"]) == 1
    assert "no such store" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--store", store, "export", "--split", "1.5"])


def test_parsing_helpers():
    assert _parse_generated("Question: Who fired it?\nAnswer: Maud Tessier [2].") == (
        "Who fired it?",
        "Maud Tessier",
        [2],
    )
    assert _parse_generated("no structure") == ("", "", [])


@pytest.mark.slow
def test_generated_pairs_cite_the_chunks_that_hold_their_answer(make_memory, generator):
    mem = make_memory(generator=generator)
    docs = [Document(text=t, id=k, source=f"{k}.md") for k, t in list(PASSAGES.items())[:2]]
    # one stored pair, so that the export never comes out empty whatever the model writes
    docs.append(Document(text="q", id="qa", metadata={"question": "Q?", "answer": "A"}))
    mem.add_documents(docs, namespace="prose")
    result = export_dataset(mem, "prose", "qa-jsonl", split=1.0, generate=True, max_generated=2)
    gen = result.manifest["counts"]["generation"]
    assert 1 <= gen["clusters"] <= 2 and gen["kept"] + gen["rejected"] == gen["clusters"]
    assert result.manifest["counts"]["generated"] == gen["kept"]
    for pair in result.train:
        if pair.origin == "stored":
            continue
        assert pair.origin == "generated" and "qa" not in {s["doc_id"] for s in pair.sources}
        chunk_ids = [i for s in pair.sources for i in s["chunk_ids"]]
        texts = [h.text for h in mem.get(chunk_ids)]
        assert texts and any(normalize(pair.answer) in normalize(t) for t in texts)


@pytest.mark.parametrize("backend", BACKENDS)
def test_export_reads_both_backends_alike(backend, tmp_path, embedder):
    from engram.memory import Memory

    if backend == "postgres":
        pg_url()  # skips locally without a server, fails under CI
    with (
        store_location(backend, tmp_path, "export") as location,
        Memory(location, embedder=embedder) as mem,
    ):
        fill(mem)
        result = export_dataset(mem, "kb", "qa-jsonl", split=0.6, seed=3)
    pairs = sorted(result.train + result.validation, key=lambda p: p.id)
    assert result.manifest["counts"]["duplicates"] == 1 and len(pairs) == len(PAIRS) - 1
    assert {p.answer for p in pairs} >= {"Maud Tessier", "eleven", "1702"}
    assert all(p.context and p.group in {s["doc_id"] for s in p.sources} for p in pairs)
