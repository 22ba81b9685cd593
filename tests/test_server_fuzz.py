"""Schemathesis against the app's own OpenAPI document, in-process (ASGI): no 5xx, ever.

Requests carry an admin key for every namespace, so generated bodies reach the handlers.
``min_similarity`` above 1 keeps ``ask`` from ever calling the language model (it answers
"no answer" after recall), which keeps the run fast while exercising the whole route.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from engram.memory import Memory
from engram.server.app import create_app
from engram.server.keys import KeyStore

SEED = [
    {"id": "a", "text": "The monstera needs bright indirect light.", "metadata": {"year": 2023}},
    {"id": "b", "text": "Red lentil soup simmers for twenty minutes.", "metadata": {"year": 2024}},
]


@pytest.fixture(scope="module")
def fuzz_app(tmp_path_factory, embedder):
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
    keys = KeyStore(path)
    _, key = keys.create(["*"], "admin")
    app = create_app(
        lambda: Memory(path, embedder=embedder, min_similarity=1.01),
        keys=keys,
        max_body_bytes=32 * 1024,
    )
    app.state.fuzz_key = key
    service = app.state.service
    for ns in ("default", "notes"):
        service.add([_doc(d) for d in SEED], ns)
    yield app
    service.close()
    keys.close()


def _doc(record):
    from engram.types import Document

    return Document(record["text"], id=record["id"], metadata=record["metadata"])


@pytest.fixture
def api_schema(fuzz_app):
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_no_server_errors(case, fuzz_app):
    headers = {"Authorization": f"Bearer {fuzz_app.state.fuzz_key}"}
    response = case.call(headers=headers)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
    )
    if response.status_code >= 400 and case.path != "/openapi.json":
        error = response.json()["error"]
        assert error["code"] and error["message"]
