"""The web UI and /docs reference no host but the server itself (no CDN, no external fonts), over
real HTTP against a real server; and the UI's JSON routes keep the API's keys and scopes."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from test_server import LiveServer

from engram.server.app import create_app
from engram.server.keys import KeyStore
from engram.server.web import PAGES, UI_DIR, swagger_dir
from engram.types import Document

URL = re.compile(r"""(?:(?:https?|wss?|ftp):)?//[^\s"'`<>()\\,;]+""", re.IGNORECASE)
# Not references: the SVG namespace names an XML vocabulary, nothing is fetched from it.
NOT_FETCHED = {"http://www.w3.org/2000/svg"}
ATTRS = re.compile(r"""(?:src|href|action)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


@pytest.fixture
def server(tmp_path, make_memory):
    mem = make_memory("web.db")
    mem.add_documents([Document("The lighthouse was automated in 1974.", "l")], namespace="a")
    mem.add_documents([Document("Bay 7 is for the van.", "v")], namespace="b")
    keys = KeyStore(tmp_path / "web.db")
    with keys:
        admin = keys.create(["*"], "admin")[1]
        reader = keys.create(["b"], "read")[1]
    keys = KeyStore(tmp_path / "web.db")
    app = create_app(mem, keys=keys)
    with LiveServer(app) as live, httpx.Client(base_url=live.url, timeout=60) as http:
        yield http, {"admin": admin, "reader": reader}
    keys.close()


def foreign(text: str) -> list[str]:
    """URLs in ``text`` that name a host other than 127.0.0.1 (protocol-relative ones too)."""
    out = []
    for url in URL.findall(text):
        if url in NOT_FETCHED or url.split("//", 1)[1].startswith(("127.0.0.1:", "127.0.0.1/")):
            continue
        out.append(url)
    return out


def ui_paths() -> list[str]:
    static = sorted(p.name for p in (UI_DIR / "static").iterdir() if p.is_file())
    return ["/", "/ui", "/ui/signin", *(f"/ui/{p}" for p in PAGES)] + [
        f"/ui/static/{name}" for name in static
    ]


def test_pages_and_docs_reference_only_this_server(server):
    http, _ = server
    assert swagger_dir() is not None, "swagger-ui-bundle-v2 is not installed"
    checked = 0
    for path in [*ui_paths(), "/docs"]:
        r = http.get(path, follow_redirects=True)
        assert r.status_code == 200, path
        assert foreign(r.text) == [], path
        for ref in ATTRS.findall(r.text):
            assert ref.startswith("/") and not ref.startswith("//"), (path, ref)
            assert http.get(ref).status_code == 200, (path, ref)
            checked += 1
        if path.startswith("/ui") and r.headers["content-type"].startswith("text/html"):
            csp = r.headers["content-security-policy"]
            assert "default-src 'self'" in csp and "connect-src 'self'" in csp
            assert "http" not in csp
    assert checked >= 20
    docs = http.get("/docs")
    assert "/docs/assets/swagger-ui-bundle.js" in docs.text and "cdn" not in docs.text.lower()
    assert "/openapi.json" in docs.text
    assert http.get("/redoc").status_code == 404  # its page would load from a CDN


def test_foreign_finds_hosts():
    page = '<script src="https://cdn.example.org/x.js"></script><link href="//fonts.x/y">'
    assert foreign(page) == ["https://cdn.example.org/x.js", "//fonts.x/y"]
    assert foreign('<a href="http://127.0.0.1:8765/ui">x</a>') == []


def test_root_redirects_to_ui_and_files_ship_with_the_package(server):
    http, _ = server
    r = http.get("/")
    assert r.status_code == 307 and r.headers["location"] == "/ui"
    names = {p.name for p in (UI_DIR / "templates").iterdir()}
    assert {f"{p}.html" for p in PAGES} | {"base.html", "signin.html"} <= names
    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    assert '"server/ui/templates/*.html"' in pyproject and '"server/ui/static/*"' in pyproject


def test_ui_routes_keep_keys_and_scopes(server):
    http, keys = server

    def h(role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {keys[role]}"}

    assert http.get("/v1/me").status_code == 401
    me = http.get("/v1/me", headers=h("reader")).json()
    assert me["scope"] == "read" and me["namespaces"] == ["b"] and "hash" not in me
    names = [n["name"] for n in http.get("/v1/overview", headers=h("reader")).json()["namespaces"]]
    assert names == ["b"]
    every = http.get("/v1/overview", headers=h("admin")).json()
    assert [n["name"] for n in every["namespaces"]] == ["a", "b"]
    assert every["namespaces"][0]["text_chars"] == len("The lighthouse was automated in 1974.")
    q = {"where": "doc_id=l"}
    query = "/v1/namespaces/a/documents/query"
    assert http.post(query, json=q, headers=h("reader")).status_code == 403
    r = http.post(query, json=q, headers=h("admin"))
    assert r.status_code == 200 and [d["id"] for d in r.json()["documents"]] == ["l"]
    bad = http.post("/v1/namespaces/a/documents/query", json={"where": "x=="}, headers=h("admin"))
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_filter"
    late = {"since": "2999-01-01"}
    r = http.post("/v1/namespaces/a/documents/query", json=late, headers=h("admin"))
    assert r.json()["total"] == 0
    assert http.get("/v1/namespaces/a/agent", headers=h("reader")).status_code == 403
    forget = {"ids": ["v"], "reason": "test"}
    r = http.post("/v1/namespaces/b/forget", json=forget, headers=h("reader"))
    assert r.status_code == 403
    r = http.post("/v1/namespaces/b/forget", json={"ids": ["v"]}, headers=h("admin"))
    assert r.status_code == 422
    r = http.post("/v1/namespaces/b/forget", json=forget, headers=h("admin"))
    assert r.status_code == 200 and [a["target"] for a in r.json()["audit"]] == ["v"]
    agent = http.get("/v1/namespaces/b/agent", headers=h("admin")).json()
    assert agent["memories"] == [] and agent["audit"][0]["reason"] == "test"
