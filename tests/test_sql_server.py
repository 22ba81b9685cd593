"""``POST /v1/namespaces/{ns}/sql`` over real HTTP (uvicorn, httpx) on SQLite and PostgreSQL:
a key sees only its own namespaces, in ``similar()`` and in the views alike."""

from __future__ import annotations

from contextlib import ExitStack

import pytest
from pg import BACKENDS, pg_url, store_location
from test_server import Api, LiveServer

from engram.memory import Memory
from engram.server.app import create_app
from engram.server.keys import KeyStore

ALPHA = [
    {"id": "a1", "text": "Hotel cap in London: 220 euros a night.", "metadata": {"year": 2024}},
    {"id": "a2", "text": "Lentil soup simmers for twenty minutes.", "metadata": {"year": 2023}},
]
BETA = [
    {"id": "b1", "text": "Secret beta: the hotel cap in London is 999.", "metadata": {"year": 24}},
    {"id": "a1", "text": "Beta's own a1: hotel notes for London.", "metadata": {"year": 2022}},
]
EVERYTHING = "SELECT namespace, id FROM documents ORDER BY namespace, id"
RECALL = (
    "SELECT s.namespace, s.doc_id, d.namespace FROM similar('hotel cap London', 10) s "
    "JOIN documents d ON d.id = s.doc_id ORDER BY s.rank"
)


@pytest.fixture(scope="module", params=BACKENDS)
def api(request, tmp_path_factory, embedder):
    if request.param == "postgres":
        pg_url()
    with ExitStack() as stack:
        folder = tmp_path_factory.mktemp("sqlserver")
        location = stack.enter_context(store_location(request.param, folder, "sqlhttp"))
        with KeyStore(location) as ks:
            keys = {
                "admin": ks.create(["*"], "admin")[1],
                "alpha": ks.create(["alpha"], "read")[1],
                "nothing": ks.create(["gamma*"], "read")[1],
            }
        keystore = stack.enter_context(KeyStore(location))
        app = create_app(lambda: Memory(location, embedder=embedder), keys=keystore)
        live = stack.enter_context(LiveServer(app))
        a = Api(live.url, app, keys, location)  # type: ignore[arg-type]
        for ns, docs in (("alpha", ALPHA), ("beta", BETA)):
            r = a.post(f"/v1/namespaces/{ns}/documents", {"documents": docs})
            assert r.status_code == 200, r.text
        yield a
        a.http.close()


def sql(api: Api, role: str, statement: str, namespace: str = "*", **extra):
    return api.post(f"/v1/namespaces/{namespace}/sql", {"statement": statement, **extra}, role)


def test_a_key_sees_only_its_namespace(api):
    r = sql(api, "alpha", EVERYTHING)
    assert r.status_code == 200, r.text
    assert r.json()["rows"] == [["alpha", "a1"], ["alpha", "a2"]]
    rows = sql(api, "alpha", RECALL).json()["rows"]
    assert rows and {tuple(row) for row in rows} <= {
        ("alpha", "a1", "alpha"),
        ("alpha", "a2", "alpha"),
    }
    for statement in (
        "SELECT count(*) FROM documents WHERE namespace = 'beta'",
        "SELECT count(*) FROM chunks WHERE text LIKE '%999%' OR namespace <> 'alpha'",
        "SELECT count(*) FROM keywords('secret beta 999', 50) k",
    ):
        assert sql(api, "alpha", statement).json()["rows"] == [[0]], statement
    # The path's namespace, when the key reaches it, is the same scope.
    r = sql(api, "alpha", EVERYTHING, "alpha")
    assert r.json()["rows"] == [["alpha", "a1"], ["alpha", "a2"]]


def test_the_same_statements_see_everything_with_an_admin_key(api):
    rows = sql(api, "admin", EVERYTHING).json()["rows"]
    assert rows == [["alpha", "a1"], ["alpha", "a2"], ["beta", "a1"], ["beta", "b1"]]
    recalled = {row[0] for row in sql(api, "admin", RECALL).json()["rows"]}
    assert recalled == {"alpha", "beta"}
    assert sql(api, "admin", EVERYTHING, "beta").json()["rows"] == [["beta", "a1"], ["beta", "b1"]]


def test_other_namespaces_and_tables_are_refused(api):
    r = sql(api, "alpha", EVERYTHING, "beta")
    assert r.status_code == 403
    assert "does not reach namespace 'beta'" in r.json()["error"]["message"]
    r = sql(api, "alpha", "SELECT hash, namespaces FROM api_keys")
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_sql"
    assert "not visible" in r.json()["error"]["message"]
    # A key that reaches no namespace with data sees empty views.
    r = sql(api, "nothing", "SELECT count(*) FROM documents")
    assert r.json().get("rows") == [[0]], r.text
    assert sql(api, "nothing", "SELECT count(*) FROM similar('hotel', 5) s").json()["rows"] == [[0]]


def test_writes_over_http_are_refused_and_change_nothing(api):
    before = api.memory.store.stats()
    for statement in (
        "DELETE FROM documents",
        "SELECT 1; DROP TABLE chunks",
        "PRAGMA user_version=7",
        "WITH x AS (SELECT 1) DELETE FROM chunks",
    ):
        r = sql(api, "admin", statement)
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_sql", statement
    after = api.memory.store.stats()
    assert (after["documents"], after["chunks"], after["changes"]) == (
        before["documents"],
        before["chunks"],
        before["changes"],
    )


def test_limit_explain_and_needs_a_key(api):
    body = sql(api, "alpha", EVERYTHING, limit=1).json()
    assert body == {"columns": ["namespace", "id"], "rows": [["alpha", "a1"]], "truncated": True}
    body = sql(api, "alpha", RECALL, explain=True).json()
    assert set(body) == {"statement"} and "similar_1 s" in body["statement"]
    assert "999" not in body["statement"] and "'beta'" not in body["statement"]
    r = api.post("/v1/namespaces/*/sql", {"statement": EVERYTHING}, role=None)
    assert r.status_code == 401
