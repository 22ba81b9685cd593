"""The web UI in a real browser: `engram serve` on 127.0.0.1 over a real store holding the sample
corpus, an agent's memories and another team's namespace, driven by headless Chromium.

Every request the page makes is recorded (CDP Network events) and any that leaves 127.0.0.1 fails
the test. Screenshots of each page go to a temporary folder, or to docs/img with
``ENGRAM_UI_SCREENSHOTS=docs/img`` (``bash scripts/screenshots``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from browser import NetworkLog, require_browser, screenshot_dir, start_chrome

from engram.memory import Memory
from engram.samples import load_samples
from engram.server.keys import KeyStore
from engram.types import Document

pytestmark = pytest.mark.slow
ASK_TIMEOUT = 600  # seconds: the local model on a busy 2-core machine
N_SAMPLES = len(load_samples())  # documents of the sample corpus (notes and the PDF's pages)
QUESTION = "In which year was the Harrow Point lighthouse connected to mains electricity?"
AGENT = "agent:ada"
OTHER = "other-team"
DAY = 86400.0


@dataclass
class Site:
    url: str
    admin_key: str
    other_key: str
    log: Path
    store: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _agent_memories(mem: Memory, generator) -> None:
    """Turns over ten days, a pinned profile, and reflections by the real local model."""
    from engram.agents import AgentMemory
    from engram.agents.reflection import reflect

    ada = AgentMemory(mem, AGENT)
    start = 1_790_000_000.0
    turns = [
        ("ada", "I adopted a grey cat called Pixel from the shelter on Saturday.", 0),
        ("bot", "Congratulations on adopting Pixel!", 0.1),
        ("ada", "Pixel hides under the sofa and only eats wet cat food.", 1.5),
        ("ada", "My sister Lena is getting married in Porto in June.", 4),
        ("ada", "I need to book flights to Porto for Lena's wedding.", 6),
        ("ada", "ok thanks", 6.2),
        ("ada", "Pixel finally slept on my bed last night, I was so happy.", 9),
    ]
    ada.remember_session(
        [{"speaker": s, "text": t, "time": start + d * DAY} for s, t, d in turns], session="s1"
    )
    ada.pin("Ada is a nurse who works night shifts.", name="profile", kind="profile")
    reflect(mem, AGENT, generator, max_reflections=2, now=start + 10 * DAY)


@pytest.fixture(scope="module")
def site(tmp_path_factory, sample_store, embedder, generator) -> Iterator[Site]:
    folder = tmp_path_factory.mktemp("ui")
    path = folder / "ui.db"
    shutil.copy(sample_store, path)
    with Memory(path, embedder=embedder) as mem:
        _agent_memories(mem, generator)
        mem.add_documents(
            [Document("The blue delivery van parks in bay 7 on weekdays.", "van-note")],
            namespace=OTHER,
        )
    with KeyStore(path) as keys:
        admin = keys.create(["*"], "admin", name="ui test admin")[1]
        other = keys.create([OTHER], "write", name="other team")[1]
    port = _free_port()
    log = folder / "serve.log"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    cmd = [sys.executable, "-m", "engram.cli", "--store", str(path), "--threads", "1"]
    cmd += ["serve", "--host", "127.0.0.1", "--port", str(port), "--log-level", "info"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("engram serve did not start:\n" + log.read_text()[-3000:])
            time.sleep(0.3)
        warm = {"query": "warm up the embedder", "k": 1}  # the model loads on first use
        r = httpx.post(
            f"{url}/v1/namespaces/default/search",
            json=warm,
            headers={"Authorization": f"Bearer {admin}"},
            timeout=600,
        )
        assert r.status_code == 200, r.text
        yield Site(url, admin, other, log, path)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def network() -> NetworkLog:
    return NetworkLog()


@pytest.fixture(scope="module")
def driver(site, network):
    require_browser()
    d = start_chrome()
    yield d
    network.drain(d)
    d.quit()


@pytest.fixture(autouse=True)
def stays_local(request, network):
    """After each test: no request the page made left 127.0.0.1, and none carried a key."""
    yield
    if "driver" not in request.fixturenames:
        return
    d = request.getfixturevalue("driver")
    site = request.getfixturevalue("site")
    urls = network.drain(d)
    assert urls, "the performance log recorded no request: the network check would be blind"
    assert network.outside() == []
    assert not [u for u in urls if site.admin_key in u or site.other_key in u or "egk_" in u]
    # No script error and no Content-Security-Policy violation (refused HTTP statuses, which
    # some tests provoke on purpose, are logged as failed loads and allowed).
    errors = [
        e["message"]
        for e in d.get_log("browser")
        if e["level"] == "SEVERE" and "Failed to load resource" not in e["message"]
    ]
    assert errors == []


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    return screenshot_dir(tmp_path_factory.mktemp("shots"))


# -- helpers ----------------------------------------------------------------------------------
def wait(driver, condition, timeout: float = 240):
    """Wait until ``condition(driver)`` is truthy (re-rendered elements are retried)."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    ignored = (StaleElementReferenceException, IndexError)
    return WebDriverWait(driver, timeout, 0.2, ignored_exceptions=ignored).until(condition)


def css(driver, selector: str):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def visible(selector: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec

    return ec.visibility_of_element_located((By.CSS_SELECTOR, selector))


def fill(driver, selector: str, text: str) -> None:
    box = css(driver, selector)[0]
    box.clear()
    box.send_keys(text)


def sign_in(driver, site: Site, key: str) -> None:
    driver.get(site.url + "/")
    wait(driver, lambda d: d.current_url.endswith("/ui/signin"))
    fill(driver, "#key", key)
    css(driver, "#signin-form button")[0].click()
    wait(driver, lambda d: d.current_url.endswith("/ui") and css(d, "#ns-table tbody tr[data-ns]"))


def table_column(driver, selector: str, column: int) -> list[str]:
    return [row.find_elements("css selector", "td")[column].text for row in css(driver, selector)]


def search(driver, site: Site, namespace: str, query: str, *, everywhere: bool = False) -> list:
    driver.get(f"{site.url}/ui/search?ns={namespace}")
    wait(driver, lambda d: css(d, "#ns-select option"))
    fill(driver, "#q", query)
    if everywhere:
        css(driver, "#all-ns")[0].click()
    css(driver, "#search-form button")[0].click()
    wait(driver, lambda d: "results in" in css(d, "#search-summary")[0].text)
    return css(driver, "li.hit")


def shot(driver, path: Path) -> None:
    """A screenshot of the whole page (up to 2400 pixels tall), from the top."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(int(height) + 140, 900), 2400))
    driver.execute_script("window.scrollTo(0, 0)")
    time.sleep(0.3)
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 900)


def audit_rows(driver) -> list:
    return css(driver, "#audit-table tbody tr")


def doc_id(name: str) -> str:
    from engram.samples import SAMPLES_DIR

    return str(SAMPLES_DIR / name)


# -- tests ------------------------------------------------------------------------------------
def test_sign_in_and_namespaces(driver, site, shots):
    sign_in(driver, site, site.admin_key)
    names = [r.get_attribute("data-ns") for r in css(driver, "#ns-table tbody tr")]
    assert set(names) == {"default", AGENT, OTHER}
    row = css(driver, 'tr[data-ns="default"]')[0].text
    assert f" {N_SAMPLES} " in f" {row} " and "chars" in row
    assert "embedding model" in css(driver, "#store-stats")[0].text
    stored = driver.execute_script("return sessionStorage.getItem('engram.key')")
    assert stored == site.admin_key and site.admin_key not in driver.current_url
    shot(driver, shots / "ui-namespaces.png")


def test_documents_filter_and_detail(driver, site, shots):
    driver.get(f"{site.url}/ui/documents?ns=default")
    wait(driver, lambda d: f"{N_SAMPLES} documents match" in css(d, "#doc-count")[0].text)
    fill(driver, "#f-where", "topic=work")
    css(driver, "#doc-filter button")[0].click()
    wait(driver, lambda d: f"{N_SAMPLES} documents" not in css(d, "#doc-count")[0].text)
    work = table_column(driver, "#doc-table tbody tr", 2)
    assert work and all("topic=work" in m for m in work)
    fill(driver, "#f-where", "")
    fill(driver, "#f-source", "lighthouse")
    css(driver, "#doc-filter button")[0].click()
    wait(driver, lambda d: "1 document match" in css(d, "#doc-count")[0].text)
    css(driver, "#doc-table tbody tr a")[0].click()
    wait(driver, visible("#doc-detail"))
    chunks = css(driver, "#d-chunks li")
    assert chunks and any("1974" in c.text for c in chunks)
    assert "topic" in css(driver, "#d-meta")[0].text
    shot(driver, shots / "ui-documents.png")


def test_search_shows_score_parts_and_clusters(driver, site, shots):
    hits = search(driver, site, "default", "lentil soup and first aid for a burn")
    assert len(hits) == 10
    clusters = css(driver, "section.cluster[data-cluster]")
    assert len(clusters) >= 2
    labels = [c.find_element("css selector", ".label").text for c in clusters]
    assert all(labels), labels
    parts = hits[0].find_element("css selector", ".scores").text
    assert "keyword" in parts and "vector" in parts and "fused" in parts
    shot(driver, shots / "ui-search.png")


def test_ask_streams_a_cited_answer(driver, site, shots):
    driver.get(f"{site.url}/ui/ask?ns=default")
    wait(driver, lambda d: css(d, "#ns-select option"))
    fill(driver, "#question", QUESTION)
    css(driver, "#ask-form button")[0].click()
    wait(driver, lambda d: css(d, "#answer[data-done]"), timeout=ASK_TIMEOUT)
    answer = css(driver, "#answer")[0].text
    cited = css(driver, "#citations li[data-doc]")
    assert cited, f"no cited source for answer {answer!r}"
    assert any("lighthouse" in c.get_attribute("data-doc") for c in cited)
    evidence = css(driver, "#evidence li[data-doc]")
    assert evidence and css(driver, "#evidence li.cited")
    css(driver, "#show-prompt")[0].click()
    prompt = css(driver, "#prompt")[0].text
    # the exact prompt of the default (extract) reader: the evidence sentences and the question
    assert "Passage:" in prompt and QUESTION in prompt
    quote = css(driver, "#quote")[0].text
    assert "1937" in quote and "1937" in answer
    shot(driver, shots / "ui-ask.png")


def test_delete_document_gone_from_search_and_in_audit(driver, site):
    kettle = doc_id("kettle-warranty.md")
    hits = search(driver, site, "default", "Brightkettle warranty registration")
    assert hits[0].get_attribute("data-doc") == kettle
    driver.get(f"{site.url}/ui/documents?ns=default&doc={kettle}")
    wait(driver, visible("#doc-detail"))
    fill(driver, "#d-reason", "the customer asked us to forget it")
    css(driver, "#d-delete button")[0].click()
    wait(driver, lambda d: "Deleted 1 document" in css(d, "#notice")[0].text)
    reason = "the customer asked us to forget it"
    wait(driver, lambda d: any(kettle in r.text and reason in r.text for r in audit_rows(d)))
    hits = search(driver, site, "default", "Brightkettle warranty registration")
    assert hits and kettle not in [h.get_attribute("data-doc") for h in hits]


def test_agent_timeline_reflections_and_forgetting(driver, site, shots):
    driver.get(f"{site.url}/ui/agents?ns={AGENT}")
    wait(driver, lambda d: css(d, "#timeline circle"))
    assert len(css(driver, "#timeline circle")) == 7
    assert "nurse" in css(driver, "#pinned")[0].text
    reflections = css(driver, "#reflections > li[data-memory]")
    assert reflections, "the model wrote no reflection"
    assert css(driver, "#timeline polygon") and css(driver, "#timeline line.cite")
    cited_text = reflections[0].find_elements("css selector", ".cites li")[0].text
    reflection_id = reflections[0].get_attribute("data-memory")
    row = next(r for r in css(driver, "#memories tbody tr") if cited_text in r.text)
    forgotten = row.get_attribute("data-memory")
    row.find_element("css selector", "input[type=checkbox]").click()
    fill(driver, "#forget-reason", "Ada asked to forget this")
    css(driver, "#forget-form button")[0].click()
    wait(driver, lambda d: "Forgot" in css(d, "#notice")[0].text)
    wait(driver, lambda d: len(css(d, "#timeline circle")) == 6)
    audit = wait(driver, lambda d: [r.text for r in css(d, "#agent-audit tbody tr")])
    assert any(forgotten in r and "Ada asked to forget this" in r for r in audit)
    assert any(reflection_id in r and "cites a forgotten memory" in r for r in audit)
    ids = [r.get_attribute("data-memory") for r in css(driver, "#reflections > li[data-memory]")]
    assert reflection_id not in ids
    shot(driver, shots / "ui-agents.png")


def test_docs_work_offline(driver, site, shots):
    driver.get(site.url + "/docs")
    wait(driver, lambda d: len(css(d, ".opblock")) >= 10)
    assert "Engram" in css(driver, ".title")[0].text
    shot(driver, shots / "ui-docs.png")


def test_other_namespace_key_sees_none_of_it(driver, site):
    driver.get(site.url + "/ui")
    wait(driver, lambda d: css(d, "#ns-table tbody tr[data-ns]"))
    css(driver, "#signout")[0].click()
    wait(driver, lambda d: d.current_url.endswith("/ui/signin"))
    assert driver.execute_script("return sessionStorage.getItem('engram.key')") is None
    sign_in(driver, site, site.other_key)
    names = [r.get_attribute("data-ns") for r in css(driver, "#ns-table tbody tr")]
    assert names == [OTHER]
    options = [o.get_attribute("value") for o in css(driver, "#ns-select option")]
    assert options == [OTHER]
    hits = search(driver, site, OTHER, "lighthouse automated delivery van", everywhere=True)
    assert {h.get_attribute("data-doc") for h in hits} <= {"van-note"}
    assert "Harrow" not in driver.find_element("css selector", "main").text
    status = driver.execute_async_script(
        "const done = arguments[0];"
        "Engram.api('GET', '/v1/namespaces/default/documents')"
        ".then(() => done(200), (e) => done(e.status));"
    )
    assert status == 403
    driver.get(f"{site.url}/ui/agents?ns={AGENT}")  # not reachable: the page falls back
    wait(driver, lambda d: css(d, "#timeline circle"))
    assert css(driver, "#ns-select")[0].get_attribute("value") == OTHER
    text = driver.find_element("css selector", "main").text
    assert "delivery van" in text and "Pixel" not in text and "nurse" not in text


def test_server_log_holds_no_key(driver, site):
    text = site.log.read_text(encoding="utf-8", errors="replace")
    assert "GET /ui" in text  # the access log is on, so this check can fail
    assert site.admin_key not in text and site.other_key not in text and "egk_" not in text


def test_the_request_record_sees_other_hosts(driver, site, network):
    """The recorder is not blind: a page asking another host is caught (the host resolver
    rule makes the request fail at once, so nothing leaves the machine)."""
    from browser import is_local

    network.drain(driver)
    driver.get("about:blank")
    driver.execute_script("new Image().src = 'http://cdn.example.com/probe.png'")
    probe = "http://cdn.example.com/probe.png"
    wait(driver, lambda d: probe in network.drain(d), timeout=30)
    assert probe in network.outside()
    network.urls[:] = [u for u in network.urls if is_local(u)]
