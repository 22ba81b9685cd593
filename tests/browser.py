"""Headless Chromium (Debian's ``chromium`` + ``chromium-driver``) driven by Selenium, with a
record of every request the page makes (Chrome's performance log: CDP ``Network`` events).

``bash scripts/browser`` installs the browser. Without it the browser tests skip, except under
CI (``CI`` set and not false), where they fail: CI must never pass by skipping the browser.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from pg import in_ci

LOCAL_SCHEMES = ("data", "blob", "about", "chrome", "chrome-error", "devtools")
SCREENSHOTS_ENV = "ENGRAM_UI_SCREENSHOTS"


def browser_paths() -> tuple[str, str] | None:
    """``(chromium, chromedriver)`` when both are installed."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (chromium, driver) if chromium and driver else None


def require_browser() -> tuple[str, str]:
    """The browser's paths; skips the test (fails it under CI) when there is none."""
    paths = browser_paths()
    if paths is None:
        message = "chromium and chromedriver are not installed: run `bash scripts/browser`"
        if in_ci():
            pytest.fail("CI is set, so the browser tests must run: " + message)
        pytest.skip(message)
    return paths


def start_chrome(width: int = 1280, height: int = 900):
    """A headless Chromium that logs network events and cannot resolve any host but loopback."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, driver = require_browser()
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not download anything
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        f"--window-size={width},{height}",
        "--lang=en-US",
        "--no-first-run",
        "--no-default-browser-check",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-default-apps",
        "--disable-extensions",
        "--disable-sync",
        "--disable-features=Translate,OptimizationHints,MediaRouter,AutofillServerCommunication",
        # A request to any other host fails fast (it is still recorded, and the test fails).
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    ):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


class NetworkLog:
    """Every URL the browser requested, read from the performance log (drained on each call)."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    def drain(self, driver) -> list[str]:
        for entry in driver.get_log("performance"):
            message = json.loads(entry["message"]).get("message", {})
            method = message.get("method", "")
            params = message.get("params", {})
            if method == "Network.requestWillBeSent":
                self.urls.append(params["request"]["url"])
            elif method == "Network.webSocketCreated":
                self.urls.append(params["url"])
        return self.urls

    def outside(self, host: str = "127.0.0.1") -> list[str]:
        """Requests that left ``host`` (local schemes such as ``data:`` stay in the page)."""
        return [u for u in self.urls if not is_local(u, host)]


def is_local(url: str, host: str = "127.0.0.1") -> bool:
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return True
    return parts.scheme in ("http", "https", "ws", "wss") and parts.hostname == host


def screenshot_dir(default: Path) -> Path:
    """Where screenshots go: ``$ENGRAM_UI_SCREENSHOTS`` (``scripts/screenshots`` sets it to
    docs/img), else ``default`` (a temporary folder, so a test run leaves the tree clean)."""
    path = Path(os.environ.get(SCREENSHOTS_ENV) or default)
    path.mkdir(parents=True, exist_ok=True)
    return path


def hosts(urls: Iterable[str]) -> set[str]:
    return {urlsplit(u).hostname or urlsplit(u).scheme for u in urls}
