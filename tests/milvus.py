"""Helpers for tests that search through Milvus (``ENGRAM_TEST_MILVUS_URL``).

``bash scripts/milvus`` starts Milvus Lite as its gRPC server on 127.0.0.1 and prints the URL
to export (``milvus://127.0.0.1:PORT``). Without it the Milvus tests skip, except under CI
(``CI`` set and not false), where they fail: CI must never pass by skipping a backend. Each
test store gets a collection of its own, dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from pg import in_ci


def milvus_url() -> str:
    """The test server's URL (no collection); skips (fails under CI) when there is none."""
    url = os.environ.get("ENGRAM_TEST_MILVUS_URL", "").strip().rstrip("/")
    if not url:
        message = (
            'ENGRAM_TEST_MILVUS_URL is not set: run `eval "$(bash scripts/milvus)"` to start '
            "Milvus Lite as a local gRPC server"
        )
        if in_ci():
            pytest.fail("CI is set, so Milvus tests must run: " + message)
        pytest.skip(message)
    return url


def drop_collection(url: str) -> None:
    from pymilvus import MilvusClient

    base, _, name = url.rpartition("/")
    client = MilvusClient(uri=base.replace("milvus://", "http://"), timeout=10)
    try:
        if client.has_collection(name):
            client.drop_collection(name)
    finally:
        client.close()


@contextmanager
def fresh_collection(label: str = "t") -> Iterator[str]:
    """A retrieval URL naming a new collection on the test server; dropped afterwards."""
    safe = "".join(c if c.isalnum() else "_" for c in label)[:20]
    name = f"engram_{safe}_{uuid.uuid4().hex[:10]}"
    url = f"{milvus_url()}/{name}"
    try:
        yield url
    finally:
        drop_collection(url)
