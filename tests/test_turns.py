"""One conversation-turn concept (engram.turns) for agents, the server and export; turns
stored under the earlier forms are still found; the shared records import no agent code."""

from __future__ import annotations

import subprocess
import sys

from engram.agents import AgentMemory
from engram.export import turn_pairs
from engram.identity import content_hash
from engram.server.service import MemoryService, turn_document
from engram.turns import Turn, speakers_named, spoken_text, turn_key
from engram.types import Document, Hit


def test_turn_document_and_keys():
    indexed = Turn("ana", " I moved to Lisbon. ", 100.0, session="s1", index=3, importance=7)
    doc = indexed.document()
    assert doc.id == "turn-3" and doc.text == "ana: I moved to Lisbon."
    assert doc.title == "ana" and doc.source == "session:s1" and doc.created_at == 100.0
    assert doc.metadata == {"kind": "turn", "speaker": "ana", "turn": 3, "importance": 7,
                            "session": "s1"}  # fmt: skip
    # unindexed (the server): the hash of session, speaker, time and text, as stored before
    posted = Turn("bob", "ok", 5.0).document()
    assert posted.id == "turn:" + content_hash("", "bob", repr(5.0), "ok")[:32]
    assert posted.id == turn_key("bob", "ok", 5.0)
    assert posted.source == "conversation" and posted.metadata == {"kind": "turn", "speaker": "bob"}
    assert spoken_text(doc.text, "ana") == "I moved to Lisbon."
    assert spoken_text("no prefix", "ana") == "no prefix"


def test_speakers_named_as_whole_words():
    hits = [
        Hit(id=i, text="", score=0.0, metadata={"speaker": s})
        for i, s in enumerate(["Ben", "Ana", "Ben", "Jo"])
    ] + [Hit(id=9, text="", score=0.0)]
    assert speakers_named("What did Ben and Ana bake?", hits) == ["Ana", "Ben"]
    assert speakers_named("what did ben bake with Benny or Jon?", hits) == []
    assert speakers_named("what did ben bake with Benny or Jon?", hits, ignore_case=True) == ["Ben"]


def test_agents_and_server_store_the_same_shape(make_memory):
    mem = make_memory()
    agent = AgentMemory(mem, "chat", clock=lambda: 1000.0)
    agent_id = agent.remember("ana", "I keep bees on the roof.", session="s1")
    service = MemoryService(mem)
    out = service.add([turn_document("Do the bees sting?", "bob", time_=1010.0, session="s1")],
                      "chat")  # fmt: skip
    (server_id,) = out["ids"]
    assert agent_id == "turn-0" and server_id.startswith("turn:")
    a, b = (service.get_document("chat", i) for i in (agent_id, server_id))
    assert a["chunks"][0]["text"] == "ana: I keep bees on the roof."
    assert b["chunks"][0]["text"] == "bob: Do the bees sting?"
    assert a["title"] == "ana" and b["title"] == "bob"
    assert {a["metadata"]["kind"], b["metadata"]["kind"]} == {"turn"}
    assert a["metadata"]["importance"] >= 1 and "importance" not in b["metadata"]
    # export reads both back as what was said
    (pair,) = turn_pairs(mem.documents("chat"))
    assert (pair.question, pair.answer) == ("I keep bees on the roof.", "Do the bees sting?")


def test_a_turn_stored_in_the_earlier_server_form_is_found_and_updated_in_place(make_memory):
    """Before engram.turns the server stored raw text under the same ``turn:<hash>`` key:
    such a document is still found by its id, and posting the same turn again replaces it
    (one document, not two)."""
    mem = make_memory()
    at = 1714557600.0
    old_key = "turn:" + content_hash("s1", "ana", repr(at), "I moved to Lisbon.")[:32]
    old = Document("I moved to Lisbon.", old_key, "session:s1", "ana",
                   {"speaker": "ana", "kind": "turn", "session": "s1"}, at)  # fmt: skip
    mem.add_documents([old], namespace="chat")
    service = MemoryService(mem)
    assert service.get_document("chat", old_key)["chunks"][0]["text"] == "I moved to Lisbon."
    again = service.add([turn_document("I moved to Lisbon.", "ana", time_=at, session="s1")],
                        "chat")  # fmt: skip
    assert again["ids"] == [old_key] and again["updated"] == 1 and again["added"] == 0
    assert service.list_documents("chat", 10, 0)["total"] == 1
    assert service.get_document("chat", old_key)["chunks"][0]["text"] == "ana: I moved to Lisbon."
    hits = mem.search("Lisbon", namespace="chat", where={"speaker": "ana"})
    assert [h.doc_id for h in hits] == [old_key]


def test_agent_turns_stored_before_keep_their_ids(make_memory):
    mem = make_memory()
    old = Document("ana: I keep bees.", "turn-0",
                   metadata={"kind": "turn", "speaker": "ana", "turn": 0, "importance": 3},
                   created_at=10.0)  # fmt: skip
    mem.add_documents([old], namespace="chat")
    agent = AgentMemory(mem, "chat", clock=lambda: 20.0)
    assert agent.remember("bob", "Bees are calm in the rain.") == "turn-1"  # the index goes on
    assert [h.doc_id for h in agent.recall("bees", k=5)] != []
    assert {d.key for d in mem.documents("chat")} == {"turn-0", "turn-1"}


def test_shared_records_and_evaluation_import_no_agent_code():
    code = (
        "import sys, engram.stored, engram.export, engram.evaluate.locomo; "
        "print(sorted(m for m in sys.modules if m.startswith('engram.agents')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
