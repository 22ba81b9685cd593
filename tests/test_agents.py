"""Agent memory: namespaces, time-aware recall, scoring, reflection, pinning, forgetting, chat.

Tests that take ``make_memory`` run on both backends (a SQLite file and a fresh PostgreSQL
schema; the PostgreSQL runs skip locally without ``ENGRAM_TEST_PG_URL`` and fail under CI).
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pg import BACKENDS, CachingEmbedder, pg_url, store_location

from engram.agents import (
    AgentMemory,
    Chat,
    Weights,
    copy_namespace,
    delete_namespace,
    export_namespace,
    heuristic_importance,
    import_namespace,
    list_namespaces,
    parse_rating,
    parse_time_range,
    recency,
    strip_time_phrase,
)
from engram.agents.reflection import reflection_text
from engram.errors import NamespaceError
from engram.stored import chunk_vectors, iter_documents

DAY = 86_400.0
REF = datetime(2023, 6, 14, 15, 0, tzinfo=UTC).timestamp()  # a Wednesday


class FakeGenerator:
    """A generator that always replies ``reply`` and records the messages it got."""

    model_id = "fake"
    context_window = 4096

    def __init__(self, reply: str):
        self.reply = reply
        self.calls: list[list[dict[str, str]]] = []

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def stream(self, messages, max_tokens=256, temperature=0.0, stop=None):
        self.calls.append(messages)
        yield self.reply

    def complete(self, messages, max_tokens=256, temperature=0.0, stop=None):
        return "".join(self.stream(messages, max_tokens, temperature, stop))


@pytest.fixture(scope="module")
def cached_embedder(embedder):
    return CachingEmbedder(embedder)


@pytest.fixture(params=BACKENDS)
def backend(request) -> str:
    if request.param == "postgres":
        pg_url()
    return request.param


@pytest.fixture
def make_memory(backend, tmp_path, cached_embedder):
    """``make_memory(name="m.db", **options)``: a Memory on a SQLite file or a fresh
    PostgreSQL schema (overrides conftest's SQLite-only fixture)."""
    from contextlib import ExitStack

    from engram.memory import Memory

    stack = ExitStack()

    def make(name: str = "m.db", **options):
        location = stack.enter_context(store_location(backend, tmp_path, Path(name).stem))
        mem = Memory(location, embedder=cached_embedder, **options)
        stack.callback(mem.close)
        return mem

    with stack:
        yield make


def day(offset: float) -> float:
    return REF + offset * DAY


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


# -- time phrases -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("query", "start", "end", "rest"),
    [
        ("what did I eat yesterday?", "2023-06-13 00:00", "2023-06-14 00:00", "what did I eat?"),
        ("the day before yesterday", "2023-06-12 00:00", "2023-06-13 00:00", None),
        ("who called two days ago", "2023-06-12 00:00", "2023-06-13 00:00", "who called"),
        ("plans from last week", "2023-06-05 00:00", "2023-06-12 00:00", "plans from"),
        ("news in the past 3 days", "2023-06-11 15:00", "2023-06-14 15:00", "news in"),
        ("what happened last month", "2023-05-01 00:00", "2023-06-01 00:00", "what happened"),
        ("trips in May 2023", "2023-05-01 00:00", "2023-06-01 00:00", "trips"),
        ("trips in May", "2023-05-01 00:00", "2023-06-01 00:00", "trips"),
        ("trips last June", "2022-06-01 00:00", "2022-07-01 00:00", "trips"),
        ("dinner on 8 May, 2023", "2023-05-08 00:00", "2023-05-09 00:00", "dinner"),
        ("dinner on May 8", "2023-05-08 00:00", "2023-05-09 00:00", "dinner"),
        ("call on 2023-05-08", "2023-05-08 00:00", "2023-05-09 00:00", "call"),
        ("last Monday", "2023-06-12 00:00", "2023-06-13 00:00", None),
        ("last weekend", "2023-06-10 00:00", "2023-06-12 00:00", None),
        ("games in 2022", "2022-01-01 00:00", "2023-01-01 00:00", "games"),
        ("since May", "2023-05-01 00:00", None, None),
        ("before last week", None, "2023-06-05 00:00", None),
    ],
)
def test_relative_time_parser(query, start, end, rest):
    found = parse_time_range(query, REF)
    assert found is not None, query
    assert (iso(found.start), iso(found.end)) == (start, end)
    if rest is not None:
        assert strip_time_phrase(query, found) == rest


@pytest.mark.parametrize("query", ["What may I do?", "I may 2 go", "tell me about cats", ""])
def test_time_parser_ignores_non_dates(query):
    assert parse_time_range(query, REF) is None


def test_time_parser_where_filter_and_impossible_dates():
    found = parse_time_range("on 31 February 2023", REF)  # no such day: the month is meant
    assert (iso(found.start), iso(found.end)) == ("2023-02-01 00:00", "2023-03-01 00:00")
    assert found.where() == {"created_at": {"$gte": found.start, "$lt": found.end}}


# -- scoring ------------------------------------------------------------------------------------
def test_recency_and_importance_scales():
    assert recency(0, 10) == 1.0
    assert recency(10, 10) == pytest.approx(0.5)
    assert recency(-5, 10) == 1.0
    assert heuristic_importance("ok thanks!") == 1
    mundane = heuristic_importance("I had some toast this morning")
    event = heuristic_importance(
        "My father died last week and I decided to move back to Boston to help my mom."
    )
    assert 1 <= mundane < event <= 10
    assert parse_rating("Rating: 8/10") == 8
    assert parse_rating("I'd say seven.") == 7
    assert parse_rating("10") == 10
    assert parse_rating("about 100 percent") is None
    assert parse_rating("no idea") is None


def test_recency_and_importance_change_the_order(make_memory):
    mem = make_memory()
    agent = AgentMemory(mem, "ana", clock=lambda: REF)
    # two sessions: neither turn is in the other's window (agents/windows.py), so relevance ties
    old = agent.remember("ana", "I adopted a grey cat named Pixel", day(-30), 1, importance=9)
    new = agent.remember("ana", "I adopted a grey cat named Pixel", day(-1), 2, importance=2)
    recency_weighted = Weights(relevance=1, recency=1, importance=0)
    assert agent.recall("grey cat", k=2, weights=recency_weighted)[0].doc_id == new
    importance_first = Weights(relevance=1, recency=0.1, importance=1)
    assert agent.recall("grey cat", k=2, weights=importance_first)[0].doc_id == old
    recency_first = Weights(relevance=0, recency=1, importance=0)
    hits = agent.recall("grey cat", k=2, weights=recency_first)
    assert [h.doc_id for h in hits] == [new, old]
    assert all(0 <= h.scores[p] <= 1 for h in hits for p in ("relevance", "recency", "importance"))


def test_model_importance_parses_the_generators_rating(make_memory):
    mem = make_memory()
    agent = AgentMemory(mem, "m", importance="model", generator=FakeGenerator("Rating: 7"))
    key = agent.remember("m", "We booked the flights for the wedding")
    (doc,) = iter_documents(mem, "m", {"doc_id": key})
    assert doc.metadata["importance"] == 7


# -- namespaces ---------------------------------------------------------------------------------
def test_namespaces_are_isolated_under_every_mode_and_filter(make_memory):
    mem = make_memory()
    alice, bob = AgentMemory(mem, "alice"), AgentMemory(mem, "bob")
    alice.remember_session(
        [("alice", "My cat Tom loves tuna fish"), ("alice", "I live in Lisbon")], time=day(-2)
    )
    bob.remember_session(
        [("bob", "My cat Tom hates tuna fish"), ("bob", "I live in Lisbon too")], time=day(-2)
    )
    filters = [
        None,
        {"kind": "turn"},
        {"created_at": {"$gte": "2023-01-01"}},
        {"speaker": {"$in": ["alice", "bob"]}},
    ]
    for mode in ("hybrid", "keyword", "vector"):
        for where in filters:
            hits = mem.search(
                "cat Tom tuna Lisbon", k=10, mode=mode, namespace="alice", where=where
            )
            assert hits and {h.namespace for h in hits} == {"alice"}, (mode, where)
        assert mem.search("tuna", mode=mode, namespace="alice", where={"speaker": "bob"}) == []
    recalled = alice.recall("Tom tuna fish", k=10, reference=REF)
    assert recalled and {h.namespace for h in recalled} == {"alice"}
    assert {h.namespace for h in mem.search("tuna", k=10, namespace="*")} == {"alice", "bob"}


def test_export_import_copy_and_delete_namespaces(make_memory, tmp_path):
    mem = make_memory()
    agent = AgentMemory(mem, "src")
    agent.remember_session(
        [
            ("u", "The spare key is under the blue flowerpot"),
            ("u", "Wifi password is on the fridge"),
        ],
        time=day(-3),
        session="s1",
    )
    agent.pin("You are a helpful house-sitter.")
    out = tmp_path / "src.jsonl"
    assert export_namespace(mem, "src", out) == 3
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["metadata"].get("kind") for r in records} == {"turn", "persona"}
    turn = next(r for r in records if r["id"] == "turn-0")
    assert turn["text"] == "u: The spare key is under the blue flowerpot"
    assert turn["created_at"] == day(-3) and turn["metadata"]["session"] == "s1"

    report = import_namespace(mem, "imported", out)
    assert (report.added, report.embedded) == (3, 0)  # the store's cache: nothing re-embedded
    assert copy_namespace(mem, "src", "fork") == 3
    with pytest.raises(NamespaceError):
        copy_namespace(mem, "src", "fork")
    for ns in ("imported", "fork"):
        (doc,) = iter_documents(mem, ns, {"doc_id": "turn-0"})
        assert doc.created_at == day(-3) and doc.metadata["speaker"] == "u"
        hits = mem.search("where is the spare key", k=1, namespace=ns)
        assert hits[0].doc_id == "turn-0" and hits[0].namespace == ns
    fork = AgentMemory(mem, "fork")
    assert fork.remember("u", "The key moved to the mailbox") == "turn-2"  # it diverges
    assert len(list(iter_documents(mem, "src"))) == 3

    assert delete_namespace(mem, "fork", reason="test cleanup") == 4
    assert "fork" not in {n["name"] for n in list_namespaces(mem)}
    audit = mem.store.audit(namespace="fork")
    assert len(audit) == 4 and all(a["reason"] == "test cleanup" for a in audit)
    assert mem.search("spare key", k=5, namespace="*", where={"namespace": "fork"}) == []


# -- time-aware recall --------------------------------------------------------------------------
def test_recall_resolves_time_phrases(make_memory):
    mem = make_memory()
    agent = AgentMemory(mem, "diary", clock=lambda: REF)
    agent.remember("me", "I ate pasta for dinner", time=day(-1))
    agent.remember("me", "I ate sushi for dinner", time=day(-3))
    agent.remember("me", "I ate tacos for dinner", time=datetime(2023, 5, 10, 20, tzinfo=UTC))
    agent.remember("me", "I ate curry for dinner", time="2022-12-24T19:00:00")

    def texts(query, **kw):
        return [h.text for h in agent.recall(query, k=5, **kw)]

    assert texts("what did I eat yesterday?") == ["me: I ate pasta for dinner"]
    assert texts("what did I eat three days ago?") == ["me: I ate sushi for dinner"]
    assert texts("dinner last month") == ["me: I ate tacos for dinner"]
    assert texts("dinner in December 2022") == ["me: I ate curry for dinner"]
    assert len(texts("dinner", since=day(-5))) == 2
    assert texts("dinner", until="2023-01-01") == ["me: I ate curry for dinner"]
    assert texts("dinner yesterday", since=day(-0.5)) == []  # the two bounds do not meet
    assert len(texts("dinner yesterday", parse_time=False)) == 4
    assert agent.latest_time() == day(-1)


# -- reflection ---------------------------------------------------------------------------------
def test_reflection_cites_existing_memories(make_memory):
    mem = make_memory()
    gen = FakeGenerator("1. Insight: Sam loves the mountains and hikes often.\n2. More text")
    agent = AgentMemory(mem, "sam", generator=gen, clock=lambda: REF)
    agent.remember_session(
        [
            ("sam", "I hiked up Mount Tam on Saturday"),
            ("sam", "Next month I will hike in the Alps"),
            ("sam", "My new hiking boots arrived"),
            ("sam", "I paid the electricity bill"),
        ],
        time=day(-1),
    )
    reflections = agent.reflect(n_recent=10, cluster_threshold=0.9)
    assert reflections, "expected at least one reflection"
    ref = reflections[0]
    assert ref.text == "Sam loves the mountains and hikes often."
    assert ref.metadata["kind"] == "reflection"
    sources = ref.metadata["sources"]
    assert len(sources) >= 2
    cited = agent.sources(ref)
    assert sorted(h.id for h in cited) == sorted(sources)
    assert all(h.metadata["kind"] == "turn" for h in cited)
    assert "Statements from memory" in gen.calls[0][0]["content"]
    recalled = agent.recall("does Sam like mountains?", k=10)
    assert any(h.metadata.get("kind") == "reflection" for h in recalled)
    assert agent.reflect(n_recent=10, cluster_threshold=0.9) == []  # already reflected
    assert agent.reflect(every=3) == []  # nothing new since the last reflection


def test_reflection_text_and_automatic_trigger(make_memory):
    assert reflection_text('  "Insight: They plan a trip. Then more."') == "They plan a trip."
    assert reflection_text("I don't know.") == ""
    mem = make_memory()
    gen = FakeGenerator("They talk about gardening.")
    agent = AgentMemory(mem, "g", generator=gen, reflect_every=3, clock=lambda: REF)
    agent.remember("g", "I planted tomatoes in the garden")
    agent.remember("g", "The garden tomatoes need water")
    assert not gen.calls
    agent.remember("g", "Garden tomatoes are ripening")
    assert gen.calls, "the third memory should trigger a reflection"
    (doc,) = iter_documents(mem, "g", {"kind": "reflection"})
    assert doc.text == "They talk about gardening."


# -- pinned memories and chat -------------------------------------------------------------------
def test_pinned_memories_appear_in_the_prompt(make_memory):
    mem = make_memory()
    agent = AgentMemory(mem, "nemo")
    agent.pin("Captain Nemo commands the Nautilus and distrusts governments.")
    agent.pin("The user is a marine biologist named Aronnax.", name="user", kind="profile")
    agent.remember("user", "I study giant squid", time=day(-1))
    assert agent.pinned() == [
        "Captain Nemo commands the Nautilus and distrusts governments.",
        "The user is a marine biologist named Aronnax.",
    ]
    assert all(h.metadata.get("pinned") is None for h in agent.recall("Nautilus captain", k=10))
    answer = mem.answer(
        "What do I study?",
        agent.recall("What do I study?"),
        pinned=agent.pinned(),
        generator=FakeGenerator("x"),
        prompt_only=True,
    )
    assert "Captain Nemo commands the Nautilus" in answer.prompt.text
    assert "marine biologist named Aronnax" in answer.prompt.text

    gen = FakeGenerator("You study giant squid [1].")
    chat = Chat(mem, "nemo", persona="You are Captain Nemo.", generator=gen, session="s9")
    assert chat.send("What do I study?") == "You study giant squid [1]."
    system, user = (m["content"] for m in gen.calls[-1])
    assert "You are Captain Nemo." in system
    assert "Aronnax" in user and "I study giant squid" in user
    turns = [h.text for h in chat.agent.recent(5, session="s9")]
    assert turns == ["user: What do I study?", "assistant: You study giant squid [1]."]


# -- forgetting ---------------------------------------------------------------------------------
def _index_bytes(mem) -> bytes:
    mem.save()
    return b"".join(p.read_bytes() for p in Path(mem.path + ".index").rglob("*") if p.is_file())


def _has(blob: bytes, word: str) -> bool:
    """``word`` in ``blob`` as UTF-8 or as numpy's UTF-32 string storage."""
    return word.encode() in blob or word.encode("utf-32-le") in blob


def _store_bytes(mem) -> bytes:
    return b"".join(
        Path(mem.path + s).read_bytes() for s in ("", "-wal") if Path(mem.path + s).exists()
    )


def test_forgetting_leaves_no_trace_and_an_audit_record(make_memory, backend):
    mem = make_memory()
    files = backend == "sqlite"  # PostgreSQL keeps no index files of ours to inspect
    gen = FakeGenerator("Kim keeps a secret word.")
    agent = AgentMemory(mem, "kim", generator=gen, clock=lambda: REF)
    secret = agent.remember("kim", "My secret word is zanzibarquux", time=day(-1))
    agent.remember("kim", "I wrote zanzibarquux on a sticky note at work", time=day(-1))
    agent.remember("kim", "I like green tea", time=day(-1))
    (reflection,) = agent.reflect(cluster_threshold=0.9)
    (doc,) = iter_documents(mem, "kim", {"doc_id": secret})
    chunk = doc.chunks[0].id
    vector = chunk_vectors(mem, [chunk])[chunk].tobytes()
    if files:
        assert _has(_index_bytes(mem), "zanzibarquux") and vector in _index_bytes(mem)

    assert agent.forget(secret, reason="user asked") >= 1
    assert chunk in {int(i) for i in reflection.metadata["sources"]}
    assert not list(iter_documents(mem, "kim", {"kind": "reflection"}))  # it cited the secret
    keyword = mem.search("zanzibarquux", k=10, mode="keyword", namespace="kim")
    assert [h.text for h in keyword] == ["kim: I wrote zanzibarquux on a sticky note at work"]
    vec = mem.search("kim: My secret word is zanzibarquux", k=10, mode="vector", namespace="kim")
    assert chunk not in {h.id for h in vec}
    if files:
        assert vector not in _index_bytes(mem) and vector not in _store_bytes(mem)
        assert not _has(_index_bytes(mem) + _store_bytes(mem), "My secret word")
    audit = mem.store.audit(namespace="kim")
    assert {(a["action"], a["target"]) for a in audit} >= {("forget", secret)}
    assert any(a["reason"] == "user asked" for a in audit)
    assert any(a["target"].startswith("reflection-") for a in audit)

    agent.forget(where={"speaker": "kim"}, reason="all")
    assert not mem.search("zanzibarquux", k=10, mode="keyword", namespace="kim")
    if files:
        assert not _has(_index_bytes(mem) + _store_bytes(mem), "zanzibarquux")


def test_ttl_age_and_decay_policies(make_memory):
    mem = make_memory()
    agent = AgentMemory(mem, "p", half_life=365 * DAY, clock=lambda: REF)
    agent.pin("Persona: a gardener.")
    short = agent.remember("p", "The gate code is 4512 today", time=day(-1), ttl=3600)
    keep = agent.remember("p", "My daughter Lena was born in Porto", time=day(-2), importance=9)
    ancient = agent.remember("p", "ok sure", time=day(-400), importance=1)
    old_fact = agent.remember("p", "I moved to Porto in 2010", time=day(-200), importance=8)
    assert agent.expire() >= 1
    remaining = {d.key for d in iter_documents(mem, "p")}
    assert short not in remaining and keep in remaining
    assert agent.decay(threshold=0.05) >= 1
    remaining = {d.key for d in iter_documents(mem, "p")}
    assert ancient not in remaining and keep in remaining and "pinned-persona" in remaining
    assert agent.forget_older_than(100 * DAY) >= 1
    remaining = {d.key for d in iter_documents(mem, "p")}
    assert old_fact not in remaining and remaining == {keep, "pinned-persona"}
    actions = {(a["target"], a["action"]) for a in mem.store.audit(namespace="p")}
    assert {(short, "expire"), (ancient, "decay"), (old_fact, "expire")} <= actions


# -- slow: the real model -----------------------------------------------------------------------
CHAT_HARNESS = textwrap.dedent(
    """
    import argparse, sys
    from engram.agents.cli import add_chat_parser
    p = argparse.ArgumentParser()
    p.add_argument("--store"); p.add_argument("--threads", type=int)
    add_chat_parser(p.add_subparsers(dest="command", required=True))
    args = p.parse_args(sys.argv[1:])
    sys.exit(args.func(args))
    """
)


@pytest.mark.slow
def test_chat_over_a_pipe(tmp_path):
    persona = tmp_path / "persona.txt"
    persona.write_text("You are Ada, a friendly assistant who keeps answers short.")
    store = tmp_path / "chat.db"
    from engram.store import open_store

    open_store(store).close()  # chat never creates a store (`engram init` does)
    run = subprocess.run(
        [sys.executable, "-c", CHAT_HARNESS, "--store", str(store), "--threads", "1"]
        + ["chat", "--namespace", "ada", "--persona", str(persona)],
        input="My dog is called Biscuit.\n\n/quit\nnot read\n",
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip()  # the reply
    from engram.memory import Memory

    with Memory(store) as mem:
        texts = [d.text for d in iter_documents(mem, "ada")]
    assert len(texts) == 2 and texts[0] == "user: My dog is called Biscuit."
    assert texts[1].startswith("assistant: ")


def test_chat_parser_reads_stdin_until_quit(make_memory, monkeypatch, capsys):
    from engram.agents import cli

    mem = make_memory("c.db")
    AgentMemory(mem, "c").pin("Persona: terse.")
    mem.close()
    gen = FakeGenerator("Noted [1].")
    monkeypatch.setattr("engram.memory.Memory.generator", property(lambda self: gen), raising=True)
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello there\n/quit\nignored\n"))
    parser = argparse.ArgumentParser()
    parser.add_argument("--store")
    parser.add_argument("--threads", type=int)
    cli.add_chat_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["--store", mem.path, "chat", "--namespace", "c"])
    assert args.func(args) == 0
    assert capsys.readouterr().out.splitlines() == ["Noted."]  # no source [1] to cite
    assert len(gen.calls) == 1 and "Persona: terse." in gen.calls[0][1]["content"]
