"""MCP over streamable HTTP at /mcp on a real ``engram serve`` app, behind the API keys, driven by
the ``mcp`` client library."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from test_server import LiveServer

from engram.memory import Memory
from engram.server.app import create_app
from engram.server.keys import KeyStore


def _result(res: Any) -> Any:
    assert not res.is_error, res.content
    if res.structured_content is not None:
        return res.structured_content
    return json.loads(res.content[0].text)


@pytest.fixture(scope="module")
def live(tmp_path_factory, embedder):
    path = tmp_path_factory.mktemp("mcp_http") / "m.db"
    keystore = KeyStore(path)
    keys = {
        "writer": keystore.create(["agent"], "write")[1],
        "reader": keystore.create(["agent"], "read")[1],
        "admin": keystore.create(["*"], "admin")[1],
        "revoked": keystore.create(["agent"], "admin")[1],
    }
    keystore.revoke(keys["revoked"])
    app = create_app(
        lambda: Memory(path, embedder=embedder, min_similarity=1.01, min_term_coverage=1.01),
        keys=keystore,
    )
    with LiveServer(app) as server:
        yield server.url, keys
    keystore.close()


def run(live: Any, role: str, body: Callable[[Client], Awaitable[None]], **headers: str) -> None:
    url, keys = live

    async def go() -> None:
        auth = {"Authorization": f"Bearer {keys[role]}", **headers}
        async with (
            httpx2.AsyncClient(headers=auth, timeout=120) as http,
            Client(streamable_http_client(f"{url}/mcp", http_client=http)) as client,
        ):
            await body(client)

    anyio.run(go)


def test_remember_recall_forget_over_http(live):
    async def body(client: Client) -> None:
        tools = {t.name for t in (await client.list_tools()).tools}
        assert tools == {"remember", "recall", "ask", "forget"}
        for text, topic in (
            ("The user's cat is called Miso and loves tuna.", "pets"),
            ("The user prefers window seats on long flights.", "travel"),
        ):
            args = {"text": text, "metadata": {"topic": topic}}
            assert _result(await client.call_tool("remember", args))["added"] == 1
        hits = _result(
            await client.call_tool("recall", {"query": "what is the cat called", "k": 1})
        )
        assert "Miso" in hits["results"][0]["text"]
        assert hits["results"][0]["namespace"] == "agent"  # the key's only namespace
        only = await client.call_tool("recall", {"query": "user", "where": "topic=travel"})
        assert [h["metadata"]["topic"] for h in _result(only)["results"]] == ["travel"]
        answer = _result(await client.call_tool("ask", {"question": "What is the cat called?"}))
        assert answer["no_answer"] is True  # both recall floors > 1: the model is never called
        gone = _result(await client.call_tool("forget", {"where": {"topic": "pets"}}))
        assert gone["deleted_documents"] == 1

    run(live, "writer", body)
    # The HTTP API sees the same store.
    url, keys = live
    r = httpx.post(
        f"{url}/v1/namespaces/agent/search",
        json={"query": "window seats", "k": 5},
        headers={"Authorization": f"Bearer {keys['reader']}"},
    )
    assert [h["metadata"]["topic"] for h in r.json()["results"]] == ["travel"]


def test_scopes_and_namespaces_are_enforced(live):
    async def reader(client: Client) -> None:
        hits = _result(await client.call_tool("recall", {"query": "window seats"}))
        assert hits["results"]
        denied = await client.call_tool("remember", {"text": "Sneaky write."})
        assert denied.is_error and "needs 'write'" in denied.content[0].text
        denied = await client.call_tool("forget", {"where": "topic=travel"})
        assert denied.is_error and "needs 'write'" in denied.content[0].text
        other = await client.call_tool("recall", {"query": "x", "namespace": "elsewhere"})
        assert other.is_error and "does not reach namespace 'elsewhere'" in other.content[0].text

    run(live, "reader", reader)

    async def admin(client: Client) -> None:
        added = _result(
            await client.call_tool("remember", {"text": "Project Kestrel ships in May."})
        )
        assert added["added"] == 1
        hits = _result(await client.call_tool("recall", {"query": "Kestrel", "k": 1}))
        assert hits["results"][0]["namespace"] == "projects"  # from the header

    run(live, "admin", admin, **{"X-Engram-Namespace": "projects"})


def test_missing_or_revoked_key_is_refused(live):
    url, keys = live
    init = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    headers = {"Accept": "application/json, text/event-stream"}
    r = httpx.post(f"{url}/mcp", json=init, headers=headers)
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = httpx.post(
        f"{url}/mcp", json=init, headers={**headers, "Authorization": f"Bearer {keys['revoked']}"}
    )
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]


def test_open_server_admits_only_loopback_hosts(tmp_path, embedder):
    """Without keys (loopback only) /mcp is open, so DNS rebinding protection is on."""
    path = tmp_path / "open.db"
    keystore = KeyStore(path)
    app = create_app(lambda: Memory(path, embedder=embedder), keys=keystore, open_when_no_keys=True)
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "0"},
        },
    }
    headers = {"Accept": "application/json, text/event-stream"}
    try:
        with LiveServer(app) as server:
            r = httpx.post(f"{server.url}/mcp", json=init, headers=headers)
            assert r.status_code == 200 and "serverInfo" in r.text
            r = httpx.post(f"{server.url}/mcp", json=init, headers={**headers, "Host": "evil.test"})
            assert r.status_code in (400, 421) and "serverInfo" not in r.text
    finally:
        keystore.close()
