"""Schemathesis against the app's own OpenAPI document, over real HTTP: no 5xx, ever.

Requests carry an admin key for every namespace, so generated bodies reach the handlers.
``min_similarity`` and ``min_term_coverage`` above 1 keep ``ask`` from ever calling the model (it
answers "no answer" after recall), which keeps the run fast while exercising the whole route.
"""

from __future__ import annotations

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from test_server import LiveServer

from engram.memory import Memory
from engram.server.app import create_app, openapi_document
from engram.server.keys import KeyStore
from engram.types import Document

SEED = [
    Document("The monstera needs bright indirect light.", id="a", metadata={"year": 2023}),
    Document("Red lentil soup simmers for twenty minutes.", id="b", metadata={"year": 2024}),
]

# Collected at import (one test per operation); the server itself starts in a fixture.
schema = schemathesis.openapi.from_dict(openapi_document())


@pytest.fixture(scope="module")
def live(tmp_path_factory, embedder):
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
    keys = KeyStore(path)
    _, key = keys.create(["*"], "admin")
    app = create_app(
        lambda: Memory(path, embedder=embedder, min_similarity=1.01, min_term_coverage=1.01),
        keys=keys,
        max_body_bytes=32 * 1024,
    )
    for ns in ("default", "notes"):
        app.state.service.add(list(SEED), ns)
    with LiveServer(app) as server, requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {key}"
        yield server.url, session
    keys.close()


@schema.parametrize()
@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
    database=None,
)
def test_no_server_errors(case, live):
    url, session = live
    response = case.call(base_url=url, session=session, timeout=60)
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:500]}"
    )
    if response.status_code >= 400:
        error = response.json()["error"]
        assert error["code"] and error["message"]
