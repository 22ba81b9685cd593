"""The HTTP API over real HTTP: uvicorn on a free loopback port, httpx, a real SQLite file."""

from __future__ import annotations

import argparse
import json
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from engram.errors import EngramError
from engram.memory import Memory
from engram.server.app import create_app
from engram.server.cli import add_server_parsers, check_bind, is_loopback
from engram.server.keys import KeyStore


class LiveServer:
    """Run an ASGI app with uvicorn in a background thread on 127.0.0.1, a free port."""

    def __init__(self, app: Any):
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = ""

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)


class Api:
    """A running server, its keys by role, and HTTP helpers."""

    def __init__(self, url: str, app: Any, keys: dict[str, str], path: Path):
        self.url = url
        self.app = app
        self.keys = keys
        self.path = path
        self.http = httpx.Client(base_url=url, timeout=60)

    @property
    def memory(self) -> Memory:
        return self.app.state.service.memory

    def headers(self, role: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"} if role else {}

    def get(self, path: str, role: str | None = "admin", **kw: Any) -> httpx.Response:
        return self.http.get(path, headers=self.headers(role), **kw)

    def post(self, path: str, body: Any = None, role: str | None = "admin", **kw: Any):
        return self.http.post(path, json=body, headers=self.headers(role), **kw)

    def delete(self, path: str, role: str | None = "admin", **kw: Any) -> httpx.Response:
        return self.http.delete(path, headers=self.headers(role), **kw)

    def snapshot(self) -> dict[str, Any]:
        """What a bad request must not change."""
        stats = self.memory.stats()
        audit = self.memory.store.conn.execute("SELECT count(*) FROM audit").fetchone()[0]
        keep = ("namespaces", "documents", "chunks", "changes")
        return {**{k: stats[k] for k in keep}, "audit": audit, "ns": self.memory.namespaces()}


NOTES = [
    {"id": "n1", "text": "The monstera needs bright indirect light and weekly watering.",
     "title": "Monstera", "metadata": {"topic": "plants", "year": 2023}},
    {"id": "n2", "text": "Red lentil soup simmers for twenty minutes with cumin and garlic.",
     "title": "Soup", "metadata": {"topic": "food", "year": 2024}},
    {"id": "n3", "text": "The lighthouse at Harrow Point was automated in 1987.",
     "title": "Lighthouse", "metadata": {"topic": "history", "year": 2021}},
]  # fmt: skip


@pytest.fixture(scope="module")
def api(tmp_path_factory, embedder):
    path = tmp_path_factory.mktemp("server") / "server.db"
    with KeyStore(path) as ks:
        keys = {
            "admin": ks.create(["*"], "admin")[1],
            "writer": ks.create(["notes", "work", "scratch*"], "write")[1],
            "reader": ks.create(["notes"], "read")[1],
            "other": ks.create(["elsewhere"], "admin")[1],
        }
    keystore = KeyStore(path)
    app = create_app(
        lambda: Memory(path, embedder=embedder), keys=keystore, max_body_bytes=64 * 1024
    )
    with LiveServer(app) as live:
        a = Api(live.url, app, keys, path)
        r = a.post("/v1/namespaces/notes/documents", {"documents": NOTES}, role="writer")
        assert r.status_code == 200, r.text
        yield a
        a.http.close()
    keystore.close()


# -- auth ---------------------------------------------------------------------------------------
def test_health_needs_no_key(api):
    r = api.get("/health", role=None)
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


def test_auth(api):
    search = {"query": "monstera light"}
    r = api.post("/v1/namespaces/notes/search", search, role=None)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "unauthorized"
    assert "Bearer" in r.json()["error"]["message"]
    assert r.headers["www-authenticate"] == "Bearer"
    for header in ("Basic abc", "Bearer", "Bearer egk_000000000000_" + "x" * 43, "nonsense"):
        r = api.http.post(
            "/v1/namespaces/notes/search", json=search, headers={"Authorization": header}
        )
        assert r.status_code == 401, header
    # The key does not reach the namespace.
    r = api.post("/v1/namespaces/notes/search", search, role="other")
    assert r.status_code == 403
    assert "does not reach namespace 'notes'" in r.json()["error"]["message"]
    # A read key cannot write, a write key cannot drop a namespace.
    r = api.post("/v1/namespaces/notes/documents", {"documents": [{"text": "x"}]}, role="reader")
    assert r.status_code == 403
    assert "scope 'read'" in r.json()["error"]["message"]
    assert api.delete("/v1/namespaces/notes", role="writer").status_code == 403
    # The right key.
    r = api.post("/v1/namespaces/notes/search", search, role="reader")
    assert r.status_code == 200
    assert r.json()["results"][0]["doc_id"] == "n1"


def test_revoked_key_is_refused(api):
    with KeyStore(api.path) as ks:
        key_id, key = ks.create(["notes"], "read")
        ok = api.http.get("/v1/namespaces", headers={"Authorization": f"Bearer {key}"})
        assert ok.status_code == 200
        assert ks.revoke(key_id)
        assert not ks.revoke(key_id)
    r = api.http.get("/v1/namespaces", headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 401
    assert "revoked" in r.json()["error"]["message"]


def test_keys_are_stored_hashed(api):
    api.memory.store.conn.execute("PRAGMA wal_checkpoint(FULL)")
    data = b"".join(
        Path(str(api.path) + s).read_bytes()
        for s in ("", "-wal")
        if Path(str(api.path) + s).exists()
    )
    assert b"api_keys" in data
    for key in api.keys.values():
        secret = key.split("_", 2)[2]  # egk_<id>_<secret>; the secret may hold "_"
        assert key.encode() not in data
        assert secret.encode() not in data


def test_listing_shows_only_reachable_namespaces(api):
    api.post("/v1/namespaces/elsewhere/documents", {"documents": [{"text": "far away"}]}, "other")
    names = {n["name"] for n in api.get("/v1/namespaces", role="reader").json()["namespaces"]}
    assert names == {"notes"}
    names = {n["name"] for n in api.get("/v1/namespaces", role="admin").json()["namespaces"]}
    assert {"notes", "elsewhere"} <= names


# -- endpoints ----------------------------------------------------------------------------------
def test_search(api):
    r = api.post("/v1/namespaces/notes/search", {"query": "lentil soup cumin", "k": 2})
    body = r.json()
    assert r.status_code == 200
    assert len(body["results"]) == 2
    top = body["results"][0]
    assert {"id", "score", "text", "metadata", "source", "doc_id", "scores"} <= set(top)
    assert top["doc_id"] == "n2" and top["metadata"]["topic"] == "food"
    assert "clusters" not in body
    where = {"query": "lentil soup", "where": {"year": {"$lte": 2023}}, "mode": "vector"}
    body = api.post("/v1/namespaces/notes/search", where).json()
    assert body["results"] and all(h["metadata"]["year"] <= 2023 for h in body["results"])
    learned = {"query": "lentil soup cumin", "k": 2, "fusion": "learned"}
    assert api.post("/v1/namespaces/notes/search", learned).json()["results"][0]["doc_id"] == "n2"
    text_filter = {"query": "light", "where": "topic=plants", "fusion": "rrf", "alpha": 0.3}
    body = api.post("/v1/namespaces/notes/search", text_filter).json()
    assert [h["doc_id"] for h in body["results"]] == ["n1"]
    body = api.post(
        "/v1/namespaces/notes/search", {"query": "soup", "mode": "vector", "clusters": True}
    ).json()
    assert body["clusters"] and {"label", "keywords", "score", "ids"} <= set(body["clusters"][0])
    ids = {i for c in body["clusters"] for i in c["ids"]}
    assert ids <= {h["id"] for h in body["results"]}


def test_search_every_namespace(api):
    api.post("/v1/namespaces/work/documents", {"documents": [{"text": "lentil budget memo"}]})
    every = api.post("/v1/namespaces/*/search", {"query": "lentil", "mode": "keyword"}).json()
    assert {h["namespace"] for h in every["results"]} >= {"notes", "work"}
    mine = api.post("/v1/namespaces/*/search", {"query": "lentil", "mode": "keyword"}, "reader")
    assert {h["namespace"] for h in mine.json()["results"]} == {"notes"}
    r = api.get("/v1/namespaces/*/stats")
    assert r.status_code == 400 and "only for search and ask" in r.json()["error"]["message"]


def test_documents_pagination_get_and_delete(api):
    docs = [{"id": f"p{i}", "text": f"Pagination note number {i} about kettles."} for i in range(5)]
    r = api.post("/v1/namespaces/pages/documents", {"documents": docs})
    assert r.status_code == 200
    report = r.json()
    assert report["added"] == 5 and report["ids"] == [f"p{i}" for i in range(5)]
    again = api.post("/v1/namespaces/pages/documents", {"documents": docs}).json()
    assert again["unchanged"] == 5 and again["added"] == 0
    seen, offset = [], 0
    while offset is not None:
        page = api.get("/v1/namespaces/pages/documents", params={"limit": 2, "offset": offset})
        body = page.json()
        assert body["total"] == 5 and len(body["documents"]) <= 2
        seen += [d["id"] for d in body["documents"]]
        offset = body["next_offset"]
    assert seen == [f"p{i}" for i in range(5)]
    assert api.get("/v1/namespaces/pages/documents", params={"limit": 0}).status_code == 422

    one = api.get("/v1/namespaces/pages/documents/p3").json()
    assert one["id"] == "p3" and "number 3" in one["chunks"][0]["text"]
    r = api.delete("/v1/namespaces/pages/documents/p3", params={"reason": "test cleanup"})
    assert r.status_code == 200 and r.json()["deleted_documents"] == 1
    assert r.json()["deleted_chunks"] >= 1
    assert api.delete("/v1/namespaces/pages/documents/p3").status_code == 404
    assert api.get("/v1/namespaces/pages/documents/p3").status_code == 404
    hits = api.post("/v1/namespaces/pages/search", {"query": "number 3", "k": 5}).json()
    assert "p3" not in {h["doc_id"] for h in hits["results"]}
    audit = api.get("/v1/namespaces/pages/audit").json()["audit"]
    assert audit[0]["target"] == "p3" and audit[0]["reason"] == "test cleanup"


def test_document_ids_with_slashes(api):
    doc = {"id": "docs/guide/intro.md", "text": "An introduction with a slash in its id."}
    assert api.post("/v1/namespaces/work/documents", {"documents": [doc]}).status_code == 200
    assert api.get("/v1/namespaces/work/documents/docs/guide/intro.md").status_code == 200
    assert api.delete("/v1/namespaces/work/documents/docs/guide/intro.md").status_code == 200
    r = api.post("/v1/namespaces/work/documents", {"documents": [{"id": 42, "text": "Numbered."}]})
    assert r.json()["ids"] == ["42"]
    assert api.get("/v1/namespaces/work/documents/42").json()["id"] == "42"


def test_delete_where(api):
    docs = [
        {"id": f"w{i}", "text": f"Sailing log {i}: reefed the mainsail.", "metadata": {"n": i}}
        for i in range(4)
    ]
    api.post("/v1/namespaces/scratch-del/documents", {"documents": docs}, role="writer")
    r = api.post(
        "/v1/namespaces/scratch-del/delete",
        {"where": {"n": {"$gte": 2}}, "reason": "old logs"},
        role="writer",
    )
    assert r.status_code == 200 and r.json()["deleted_documents"] == 2
    left = api.get("/v1/namespaces/scratch-del/documents").json()
    assert [d["id"] for d in left["documents"]] == ["w0", "w1"]
    before = api.snapshot()
    for body in ({}, {"where": {}}, {"where": None, "ids": []}):
        r = api.post("/v1/namespaces/scratch-del/delete", body, role="writer")
        assert r.status_code == 400, body
        assert "nothing to delete" in r.json()["error"]["message"]
    assert api.snapshot() == before
    r = api.post("/v1/namespaces/scratch-del/delete", {"ids": ["w0"]}, role="writer")
    assert r.json()["deleted_documents"] == 1


def test_turns(api):
    turns = [
        {"speaker": "ana", "text": "I moved to Lisbon last spring.", "session": "s1",
         "time": "2024-05-01T10:00:00Z"},
        {"speaker": "bot", "text": "How do you like Lisbon?", "session": "s1", "time": 1714557660},
        {"speaker": "ana", "text": "ok"},
        {"speaker": "bob", "text": "ok"},
    ]  # fmt: skip
    r = api.post("/v1/namespaces/chat/turns", {"turns": turns})
    assert r.status_code == 200, r.text
    assert r.json()["added"] == 4
    docs = api.get("/v1/namespaces/chat/documents").json()["documents"]
    first = docs[0]
    assert first["metadata"] == {"speaker": "ana", "session": "s1", "kind": "turn"}
    assert first["created_at"] == 1714557600.0
    assert docs[1]["created_at"] == 1714557660.0
    hits = api.post(
        "/v1/namespaces/chat/search", {"query": "Lisbon", "where": {"speaker": "ana"}}
    ).json()["results"]
    assert hits and all(h["metadata"]["speaker"] == "ana" for h in hits)
    r = api.post(
        "/v1/namespaces/chat/turns", {"turns": [{"speaker": "x", "text": "y", "time": "soon"}]}
    )
    assert r.status_code == 422 and "ISO-8601" in r.json()["error"]["message"]


def test_stats_drop_and_audit(api):
    api.post("/v1/namespaces/doomed/documents", {"documents": [{"text": "short lived"}]})
    stats = api.get("/v1/namespaces/doomed/stats").json()
    assert stats["documents"] == 1 and stats["chunks"] >= 1 and stats["embedding_dim"]
    r = api.delete("/v1/namespaces/doomed", params={"reason": "cleanup"})
    assert r.status_code == 200 and r.json()["deleted_chunks"] >= 1
    assert api.get("/v1/namespaces/doomed/stats").status_code == 404
    audit = api.get("/v1/namespaces/doomed/audit").json()["audit"]
    assert audit and audit[0]["reason"] == "cleanup"
    assert api.delete("/v1/namespaces/doomed").status_code == 404
    assert api.get("/v1/namespaces/never-was/audit").status_code == 404


# -- bad input ----------------------------------------------------------------------------------
def _raw(api: Api, path: str, content: bytes | Any, **headers: str) -> httpx.Response:
    return api.http.post(
        path,
        content=content,
        headers={**api.headers("admin"), "Content-Type": "application/json", **headers},
    )


BAD_SEARCHES = [
    ({"query": "x", "k": "ten"}, 422, "k"),
    ({"query": "x", "k": 0}, 422, "k"),
    ({"query": "x", "k": 1.5}, 422, "k"),
    ({"query": 5}, 422, "query"),
    ({"query": ""}, 422, "query"),
    ({"query": " ?!... "}, 422, "empty query"),
    ({"k": 3}, 422, "query"),
    ({"query": "x", "mode": "telepathy"}, 422, "mode"),
    ({"query": "x", "alpha": 2}, 422, "alpha"),
    ({"query": "x", "extra": 1}, 422, "extra"),
    ({"query": "x", "where": ["a"]}, 422, "where"),
    ({"query": "x", "where": {"a'; DROP TABLE documents; --": 1}}, 400, "invalid metadata key"),
    ({"query": "x", "where": {"year": {"$regex": ".*"}}}, 400, "unknown operator"),
    ({"query": "x", "where": {"$or": [{"a": i} for i in range(2000)]}}, 400, "too large"),
    ({"query": "x", "where": "year >>= 3"}, 400, "cannot read filter"),
    ({"query": "x", "where": {"a": {"$in": []}}}, 400, "non-empty list"),
    ({"query": "x", "where": {"year": 10**30}}, 422, "64 bits"),
]


def _nested(depth: int) -> dict[str, Any]:
    where: dict[str, Any] = {"a": 1}
    for _ in range(depth):
        where = {"$not": where}
    return where


def test_bad_input_is_refused_and_changes_nothing(api):
    before = api.snapshot()
    for body, status, words in BAD_SEARCHES:
        r = api.post("/v1/namespaces/notes/search", body)
        assert r.status_code == status, (body, r.text)
        err = r.json()["error"]
        assert err["code"] and words in err["message"], (body, err)
    r = api.post("/v1/namespaces/notes/search", {"query": "x", "where": _nested(14)})
    assert r.status_code == 400 and "nested too deeply" in r.json()["error"]["message"]
    r = api.post("/v1/namespaces/notes/search", {"query": "x", "where": _nested(200)})
    assert r.status_code == 422 and "nested more than" in r.json()["error"]["message"]

    path = "/v1/namespaces/notes/documents"
    r = _raw(api, path, b'{"documents": [{"text": "half')
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    assert "not valid JSON" in r.json()["error"]["message"]
    r = _raw(api, path, b"[" * 5000 + b"]" * 5000)
    assert r.status_code == 400
    for body in (
        {"documents": "text"},
        {"documents": []},
        {"documents": [{"text": 5}]},
        {"documents": [{"text": "ok"}, {"title": "no text"}]},
        {"documents": [{"text": "ok", "metadata": [1]}]},
        {"documents": [{"text": "ok"}, {"text": "bad \ud800 surrogate"}]},
        {"documents": [{"text": "ok", "metadata": {"x": float("nan")}}]},
        {"documents": [{"text": "ok", "metadata": _nested(40)}]},
        {"docs": [{"text": "ok"}]},
    ):
        content = json.dumps(body).encode()
        r = _raw(api, path, content)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["error"]["message"]
    r = api.post("/v1/namespaces/bad name!/documents", {"documents": [{"text": "x"}]})
    assert r.status_code == 422 and "namespace" in r.json()["error"]["message"]

    big = {"documents": [{"text": "word " * 20_000}]}
    r = api.post(path, big)
    assert r.status_code == 413
    assert r.json()["error"] == {
        "code": "payload_too_large",
        "message": "request body larger than 65536 bytes",
    }

    def chunks():
        yield b'{"documents": [{"text": "'
        for _ in range(100):
            yield b"x" * 1024
        yield b'"}]}'

    r = _raw(api, path, chunks())
    assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"

    for method, url, body in (
        ("post", "/v1/namespaces/nowhere/search", {"query": "x"}),
        ("post", "/v1/namespaces/nowhere/ask", {"question": "x"}),
        ("post", "/v1/namespaces/nowhere/delete", {"ids": ["a"]}),
        ("get", "/v1/namespaces/nowhere/stats", None),
        ("get", "/v1/namespaces/nowhere/documents", None),
        ("delete", "/v1/namespaces/nowhere/documents/a", None),
    ):
        r = api.http.request(method, url, json=body, headers=api.headers("admin"))
        assert r.status_code == 404, (url, r.text)
        assert r.json()["error"] == {
            "code": "not_found",
            "message": "unknown namespace 'nowhere'",
        }
    r = api.get("/v1/no/such/route")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = api.http.put("/v1/namespaces/notes/search", headers=api.headers("admin"))
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    r = api.post("/v1/namespaces/notes/ask", {"question": "x", "where": {"$bad": 1}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_filter"
    assert api.snapshot() == before
    assert api.post("/v1/namespaces/notes/search", {"query": "monstera"}).status_code == 200


def test_concurrent_requests(api):
    def search(i: int) -> int:
        body = {"query": f"lighthouse automated {i}", "k": 3}
        return api.post("/v1/namespaces/notes/search", body).status_code

    def add(i: int) -> int:
        body = {"documents": [{"id": f"c{i}", "text": f"Concurrent note {i} about tides."}]}
        return api.post("/v1/namespaces/concurrent/documents", body).status_code

    with ThreadPoolExecutor(6) as pool:
        codes = list(pool.map(lambda i: (search if i % 2 else add)(i), range(18)))
    assert codes == [200] * 18
    listing = api.get("/v1/namespaces/concurrent/documents").json()
    assert listing["total"] == 9


def test_openapi_document(api):
    doc = api.get("/openapi.json", role=None).json()
    paths = doc["paths"]
    for p in (
        "/health",
        "/v1/namespaces",
        "/v1/namespaces/{namespace}",
        "/v1/namespaces/{namespace}/search",
        "/v1/namespaces/{namespace}/documents",
        "/v1/namespaces/{namespace}/documents/{doc_id}",
        "/v1/namespaces/{namespace}/delete",
        "/v1/namespaces/{namespace}/turns",
        "/v1/namespaces/{namespace}/ask",
        "/v1/namespaces/{namespace}/stats",
        "/v1/namespaces/{namespace}/audit",
    ):
        assert p in paths, p
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


# -- answers ------------------------------------------------------------------------------------
def _events(response: httpx.Response) -> list[tuple[str, Any]]:
    events, event = [], None
    for line in response.iter_lines():
        if line.startswith("event: "):
            event = line[len("event: ") :]
        elif line.startswith("data: "):
            events.append((event, json.loads(line[len("data: ") :])))
    return events


def test_ask_without_evidence_streams_no_answer(api):
    """Nothing relevant is recalled, so the model is not called; the stream still completes."""
    body = {"question": "qwzx vbnm plokij", "stream": True}
    with api.http.stream(
        "POST", "/v1/namespaces/notes/ask", json=body, headers=api.headers("reader")
    ) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        events = _events(r)
    kinds = [e for e, _ in events]
    assert kinds[-2:] == ["answer", "done"] and set(kinds[:-2]) == {"token"}
    answer = events[-2][1]
    assert answer["no_answer"] is True and answer["citations"] == []
    assert "".join(d["text"] for e, d in events if e == "token") == answer["answer"]
    r = api.post("/v1/namespaces/notes/ask", {"question": "qwzx vbnm plokij"}, role="reader")
    assert r.status_code == 200 and r.json()["no_answer"] is True


@pytest.mark.slow
def test_ask_streams_tokens_then_answer(tmp_path, sample_store, embedder, generator):
    from engram.samples import sample_questions

    path = tmp_path / "ask.db"
    shutil.copy(sample_store, path)
    with KeyStore(path) as ks:
        key = ks.create(["default"], "read")[1]
    keystore = KeyStore(path)
    app = create_app(
        lambda: Memory(path, embedder=embedder, generator=generator, answer_max_tokens=48),
        keys=keystore,
    )
    question = sample_questions()[1]  # the burn (the demo answers it)
    try:
        with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=300) as http:
            headers = {"Authorization": f"Bearer {key}", "Accept": "text/event-stream"}
            with http.stream(
                "POST", "/v1/namespaces/default/ask", json={"question": question}, headers=headers
            ) as r:
                assert r.status_code == 200
                events = _events(r)
            kinds = [e for e, _ in events]
            # token events (one for an extracted span, several for generated text), then the
            # answer, then done; the tokens spell the answer
            assert kinds.count("token") >= 1 and kinds[-2:] == ["answer", "done"]
            answer = events[-2][1]
            assert "".join(d["text"] for e, d in events if e == "token").strip() == answer["answer"]
            assert {"answer", "citations", "clusters", "evidence", "confidence"} <= set(answer)
            assert answer["citations"] and answer["clusters"]
            assert any("burn" in c["text"].lower() for c in answer["citations"])
            r = http.post(
                "/v1/namespaces/default/ask",
                json={"question": question, "k": 3},
                headers={"Authorization": f"Bearer {key}"},
            )
            assert r.status_code == 200
            assert r.json()["answer"] == answer["answer"]
    finally:
        keystore.close()


# -- serving and keys from the command line -----------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="engram")
    p.add_argument("--store")
    p.add_argument("--threads", type=int)
    add_server_parsers(p.add_subparsers(dest="command", required=True))
    return p


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return args.func(args)


def test_keys_commands(tmp_path, capsys):
    store = str(tmp_path / "k.db")
    assert _run(["--store", store, "keys", "create", "--namespace", "a", "--namespace", "b*",
                 "--scope", "write"]) == 0  # fmt: skip
    out = capsys.readouterr().out.strip().splitlines()
    key = out[-1]
    assert key.startswith("egk_") and " " not in key
    with KeyStore(store) as ks:
        found = ks.verify(key)
        assert found and found.scope == "write" and found.namespaces == ["a", "b*"]
        assert found.reaches("b-team") and not found.reaches("c")
    assert _run(["--store", store, "keys", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["id"] == found.id and "hash" not in listed[0] and key not in json.dumps(listed)
    assert _run(["--store", store, "keys", "revoke", found.id]) == 0
    assert _run(["--store", store, "keys", "list"]) == 0
    assert "no keys" in capsys.readouterr().out
    with pytest.raises(EngramError, match="no active key"):
        _run(["--store", store, "keys", "revoke", found.id])
    with pytest.raises(EngramError, match="invalid key namespace"):
        _run(["--store", store, "keys", "create", "--namespace", "a b", "--scope", "read"])


def test_refuses_public_bind_without_keys(tmp_path):
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.0.2.1")
    check_bind("127.0.0.1", 0)
    check_bind("0.0.0.0", 1)
    store = str(tmp_path / "open.db")
    with pytest.raises(EngramError, match="no Engram store here"):  # serve never creates one
        _run(["--store", store, "serve", "--host", "0.0.0.0", "--port", "1"])
    KeyStore(store).close()  # creates the store, with no keys
    with pytest.raises(EngramError, match="refusing to listen on 0.0.0.0: no API keys"):
        _run(["--store", store, "serve", "--host", "0.0.0.0", "--port", "1"])


def test_open_on_loopback_only_while_no_keys(tmp_path, embedder):
    path = tmp_path / "open.db"
    keystore = KeyStore(path)
    app = create_app(lambda: Memory(path, embedder=embedder), keys=keystore, open_when_no_keys=True)
    closed = create_app(lambda: Memory(path, embedder=embedder), keys=keystore)
    try:
        with LiveServer(app) as live, LiveServer(closed) as shut:
            assert httpx.get(live.url + "/v1/namespaces").status_code == 200
            assert httpx.get(shut.url + "/v1/namespaces").status_code == 401
            keystore.create(["*"], "read")
            assert httpx.get(live.url + "/v1/namespaces").status_code == 401
    finally:
        keystore.close()
