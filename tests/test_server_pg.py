"""The HTTP API on the PostgreSQL store: auth, add, search, list, get, delete, stats.

Needs ``ENGRAM_TEST_PG_URL`` (see tests/pg.py); each module run gets a fresh schema.
"""

from __future__ import annotations

import pytest
from pg import fresh_schema, pg_url
from test_server import NOTES, Api, LiveServer

from engram.memory import Memory
from engram.server.app import create_app
from engram.server.keys import KeyStore
from engram.store.postgres import PostgresStore


@pytest.fixture(scope="module")
def pg_api(embedder):
    pg_url()  # skips (fails under CI) without a server
    with fresh_schema("server") as url:
        with KeyStore(url) as ks:
            assert isinstance(ks.store, PostgresStore)
            keys = {
                "admin": ks.create(["*"], "admin")[1],
                "writer": ks.create(["notes", "work", "scratch*"], "write")[1],
                "reader": ks.create(["notes"], "read")[1],
                "other": ks.create(["elsewhere"], "admin")[1],
            }
        keystore = KeyStore(url)
        app = create_app(lambda: Memory(url, embedder=embedder), keys=keystore)
        try:
            with LiveServer(app) as live:
                a = Api(live.url, app, keys, url)  # type: ignore[arg-type]
                r = a.post("/v1/namespaces/notes/documents", {"documents": NOTES}, role="writer")
                assert r.status_code == 200, r.text
                yield a
                a.http.close()
        finally:
            keystore.close()


def test_store_is_postgres(pg_api):
    assert isinstance(pg_api.memory.store, PostgresStore)


def test_auth(pg_api):
    search = {"query": "monstera light"}
    assert pg_api.post("/v1/namespaces/notes/search", search, role=None).status_code == 401
    bad = {"Authorization": "Bearer egk_000000000000_" + "x" * 43}
    r = pg_api.http.post("/v1/namespaces/notes/search", json=search, headers=bad)
    assert r.status_code == 401
    r = pg_api.post("/v1/namespaces/notes/search", search, role="other")
    assert r.status_code == 403
    r = pg_api.post("/v1/namespaces/notes/documents", {"documents": [{"text": "x"}]}, role="reader")
    assert r.status_code == 403
    assert pg_api.delete("/v1/namespaces/notes", role="writer").status_code == 403
    r = pg_api.post("/v1/namespaces/notes/search", search, role="reader")
    assert r.status_code == 200
    assert r.json()["results"][0]["doc_id"] == "n1"


def test_key_management(pg_api):
    with KeyStore(pg_api.path) as ks:
        key_id, key = ks.create(["notes"], "read", name="temp")
        assert key_id in {k.id for k in ks.list()}
        headers = {"Authorization": f"Bearer {key}"}
        assert pg_api.http.get("/v1/namespaces", headers=headers).status_code == 200
        assert ks.verify(key) is not None and ks.verify(key + "x") is None
        active = ks.count()
        assert ks.revoke(key_id) and not ks.revoke(key_id)
        assert ks.count() == active - 1
        assert key_id not in {k.id for k in ks.list(include_revoked=False)}
        # Only the salted hash is stored.
        with ks.store.transaction() as conn:
            stored = conn.execute("SELECT salt, hash FROM api_keys WHERE id = %s", (key_id,))
            salt, digest = stored.fetchone()
        assert key.split("_", 2)[2] not in (salt, digest)
    assert pg_api.http.get("/v1/namespaces", headers=headers).status_code == 401


def test_search(pg_api):
    r = pg_api.post("/v1/namespaces/notes/search", {"query": "lentil soup cumin", "k": 2})
    assert r.status_code == 200
    top = r.json()["results"][0]
    assert top["doc_id"] == "n2" and top["metadata"]["topic"] == "food"
    body = pg_api.post(
        "/v1/namespaces/notes/search", {"query": "lighthouse", "mode": "keyword", "k": 1}
    ).json()
    assert [h["doc_id"] for h in body["results"]] == ["n3"]
    where = {"query": "light", "where": "topic=plants"}
    body = pg_api.post("/v1/namespaces/notes/search", where).json()
    assert [h["doc_id"] for h in body["results"]] == ["n1"]


def test_documents_pagination_get_and_delete(pg_api):
    docs = [{"id": f"p{i}", "text": f"Pagination note number {i} about kettles."} for i in range(5)]
    r = pg_api.post("/v1/namespaces/pages/documents", {"documents": docs})
    assert r.status_code == 200 and r.json()["added"] == 5
    seen, offset = [], 0
    while offset is not None:
        body = pg_api.get(
            "/v1/namespaces/pages/documents", params={"limit": 2, "offset": offset}
        ).json()
        assert body["total"] == 5 and len(body["documents"]) <= 2
        assert all(d["chunks"] >= 1 for d in body["documents"])
        seen += [d["id"] for d in body["documents"]]
        offset = body["next_offset"]
    assert seen == [f"p{i}" for i in range(5)]

    one = pg_api.get("/v1/namespaces/pages/documents/p3").json()
    assert one["id"] == "p3" and "number 3" in one["chunks"][0]["text"]
    assert isinstance(one["metadata"], dict)
    r = pg_api.delete("/v1/namespaces/pages/documents/p3", params={"reason": "test cleanup"})
    assert r.status_code == 200 and r.json()["deleted_documents"] == 1
    assert r.json()["deleted_chunks"] >= 1
    assert pg_api.delete("/v1/namespaces/pages/documents/p3").status_code == 404
    assert pg_api.get("/v1/namespaces/pages/documents/p3").status_code == 404
    audit = pg_api.get("/v1/namespaces/pages/audit").json()["audit"]
    assert audit[0]["target"] == "p3" and audit[0]["reason"] == "test cleanup"


def test_delete_where(pg_api):
    docs = [
        {"id": f"w{i}", "text": f"Sailing log {i}: reefed the mainsail.", "metadata": {"n": i}}
        for i in range(4)
    ]
    pg_api.post("/v1/namespaces/scratch-del/documents", {"documents": docs}, role="writer")
    r = pg_api.post(
        "/v1/namespaces/scratch-del/delete",
        {"where": {"n": {"$gte": 2}}, "reason": "old logs"},
        role="writer",
    )
    assert r.status_code == 200 and r.json()["deleted_documents"] == 2
    left = pg_api.get("/v1/namespaces/scratch-del/documents").json()
    assert [d["id"] for d in left["documents"]] == ["w0", "w1"]
    r = pg_api.post("/v1/namespaces/scratch-del/delete", {"where": {}}, role="writer")
    assert r.status_code == 400
    r = pg_api.post(
        "/v1/namespaces/scratch-del/delete", {"ids": ["w0", "w0", "nope"]}, role="writer"
    )
    assert r.json()["deleted_documents"] == 1


def test_stats_and_drop(pg_api):
    pg_api.post("/v1/namespaces/doomed/documents", {"documents": [{"text": "short lived"}]})
    stats = pg_api.get("/v1/namespaces/doomed/stats").json()
    assert stats["namespace"] == "doomed"
    assert stats["documents"] == 1 and stats["chunks"] >= 1 and stats["embedding_dim"]
    assert stats["updated_at"] >= stats["created_at"] > 0
    r = pg_api.delete("/v1/namespaces/doomed", params={"reason": "cleanup"})
    assert r.status_code == 200 and r.json()["deleted_chunks"] >= 1
    assert pg_api.get("/v1/namespaces/doomed/stats").status_code == 404
    assert pg_api.get("/v1/namespaces/never-was/stats").status_code == 404
