"""The MCP server: a real stdio subprocess for remember/recall/forget, plus in-process calls."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import anyio
import pytest
from mcp import Client, StdioServerParameters

from engram.memory import Memory
from engram.server.mcp import build_server
from engram.store.sqlite import SQLiteStore


def _result(res: Any) -> Any:
    """The tool's structured result (or its JSON text), failing on a tool error."""
    assert not res.is_error, res.content
    if res.structured_content is not None:
        return res.structured_content
    return json.loads(res.content[0].text)


def test_stdio_remember_recall_forget(tmp_path):
    store = tmp_path / "mcp.db"
    args = ["-m", "engram.server.mcp", "--store", str(store), "--namespace", "agent"]
    env = {k: v for k, v in os.environ.items() if k.startswith(("HF_", "TRANSFORMERS", "TOKEN"))}
    params = StdioServerParameters(
        command=sys.executable, args=[*args, "--threads", "1"], env=env, cwd=str(tmp_path)
    )

    async def session() -> None:
        async with Client(params, read_timeout_seconds=120) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert tools == {"remember", "recall", "ask", "forget"}
            for text, topic in (
                ("The user's cat is called Miso and loves tuna.", "pets"),
                ("The user prefers window seats on long flights.", "travel"),
                ("The user is allergic to peanuts.", "health"),
            ):
                added = _result(
                    await client.call_tool("remember", {"text": text, "metadata": {"topic": topic}})
                )
                assert added["added"] == 1 and len(added["ids"]) == 1
            hits = _result(
                await client.call_tool("recall", {"query": "what is the cat's name", "k": 2})
            )
            top = hits["results"][0]
            assert "Miso" in top["text"] and top["namespace"] == "agent"
            cat_id = top["doc_id"]
            only = _result(
                await client.call_tool("recall", {"query": "user", "where": {"topic": "travel"}})
            )
            assert [h["metadata"]["topic"] for h in only["results"]] == ["travel"]
            gone = _result(
                await client.call_tool("forget", {"ids": [cat_id], "reason": "user asked"})
            )
            assert gone["deleted_documents"] == 1
            gone = _result(await client.call_tool("forget", {"where": "topic=health"}))
            assert gone["deleted_documents"] == 1
            hits = _result(await client.call_tool("recall", {"query": "cat Miso tuna", "k": 5}))
            assert [h["metadata"]["topic"] for h in hits["results"]] == ["travel"]
            bad = await client.call_tool("recall", {"query": "x", "where": {"a; drop": 1}})
            assert bad.is_error and "invalid metadata key" in bad.content[0].text

    anyio.run(session)
    db = SQLiteStore(store)
    try:
        assert [n["name"] for n in db.namespaces()] == ["agent"]
        assert db.audit("agent")[-1]["reason"] == "user asked"
    finally:
        db.close()


@pytest.fixture
def server(tmp_path, embedder):
    srv, service = build_server(lambda: Memory(tmp_path / "m.db", embedder=embedder))
    yield srv
    service.close()


def test_in_process_tools_and_errors(server):
    async def session() -> None:
        async with Client(server) as client:
            empty = _result(await client.call_tool("recall", {"query": "anything"}))
            assert empty == {"results": []}
            nothing = _result(await client.call_tool("forget", {"ids": ["x"]}))
            assert nothing["deleted_documents"] == 0
            r = _result(
                await client.call_tool(
                    "remember",
                    {"text": "Ana moved to Lisbon.", "speaker": "ana", "session": "s1",
                     "namespace": "chat"},
                )
            )  # fmt: skip
            assert r["added"] == 1 and r["ids"][0].startswith("turn:")
            hits = _result(
                await client.call_tool("recall", {"query": "Lisbon", "namespace": "chat"})
            )
            meta = hits["results"][0]["metadata"]
            assert meta == {"speaker": "ana", "session": "s1", "kind": "turn"}
            # Nothing relevant: the answer says so without calling the language model.
            answer = _result(
                await client.call_tool("ask", {"question": "qwzx vbnm", "namespace": "chat"})
            )
            assert answer["no_answer"] is True and answer["citations"] == []
            for name, args, words in (
                ("recall", {"query": "x", "namespace": "bad name"}, "invalid namespace"),
                ("recall", {"query": "x", "mode": "psychic", "namespace": "chat"}, "unknown mode"),
                ("recall", {"query": "x", "k": 0, "namespace": "chat"}, "positive integer"),
                ("forget", {"namespace": "chat"}, "nothing to delete"),
                ("remember", {"text": "x", "namespace": "no spaces"}, "invalid namespace"),
            ):
                res = await client.call_tool(name, args)
                assert res.is_error, (name, args)
                assert words in res.content[0].text, res.content[0].text

    anyio.run(session)
