"""Fault injection: SIGKILLs during add/update/delete/save/reindex, and a full disk during
ingest. Every case ends with integrity ok, nothing committed lost, and no wrong results."""

from __future__ import annotations

import errno
import logging
import sqlite3
import sys
from pathlib import Path

import numpy as np
import pytest

from engram.check import check_store
from engram.errors import EngramError
from engram.memory import Memory
from engram.store.sqlite import SQLiteStore
from engram.types import Document

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench import faults  # noqa: E402


def test_random_sigkills_lose_nothing(tmp_path):
    result = faults.run(kills=4, work=tmp_path / "faults", seed=7)
    assert result["acknowledged_ops"] > 0 and result["documents_at_end"] > 0
    assert result["corrupt_stores"] == 0, result["problems"]
    assert result["lost_committed_documents"] == 0
    assert result["wrong_results"] == 0


def _docs(n: int, start: int = 0) -> list[Document]:
    return [
        Document(id=f"d{i}", text=f"Note {i} about subject zq{i}x and its details.")
        for i in range(start, start + n)
    ]


def test_disk_full_in_the_store_rolls_back_one_write_and_keeps_the_rest(
    tmp_path, embedder, monkeypatch
):
    real = SQLiteStore._insert_chunks
    calls = {"n": 0}

    def insert(self, conn, doc_id, chunks, model, now):
        calls["n"] += 1
        if calls["n"] > 5:
            raise sqlite3.OperationalError("database or disk is full")
        return real(self, conn, doc_id, chunks, model, now)

    path = tmp_path / "full.db"
    with Memory(path, embedder=embedder, embed_batch=1) as mem:
        monkeypatch.setattr(SQLiteStore, "_insert_chunks", insert)
        with pytest.raises(EngramError, match="disk is full.*rolled back"):
            mem.add(_docs(10))
        monkeypatch.setattr(SQLiteStore, "_insert_chunks", real)  # space freed
        assert mem.stats()["documents"] == 5  # the writes before the full disk are kept
        assert mem.store.integrity_check() == "ok"
        report = mem.add(_docs(10))
        assert report.added == 5 and report.unchanged == 5  # resumes, no duplicates
        assert [h.doc_id for h in mem.search("zq7x", k=1, mode="keyword")] == ["d7"]
    assert all(f.ok for f in check_store(path))


def test_disk_full_while_saving_an_index_keeps_the_last_good_files(
    tmp_path, embedder, monkeypatch, caplog
):
    path = tmp_path / "idx.db"
    with Memory(path, embedder=embedder) as mem:
        mem.add(_docs(6))
    real_save = np.save

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with Memory(path, embedder=embedder) as mem, caplog.at_level(logging.WARNING):
        mem.add(_docs(6, start=6))
        monkeypatch.setattr(np, "save", full)
        mem.save()  # logged, not raised: the store holds everything
        assert "not saved (No space left on device)" in caplog.text
        assert all(f.ok for f in check_store(path))  # the last saved files still verify
        monkeypatch.setattr(np, "save", real_save)
    with Memory(path, embedder=embedder) as mem:  # and the indexes catch up from the store
        assert [h.doc_id for h in mem.search("zq9x", k=1, mode="keyword")] == ["d9"]
        assert [h.doc_id for h in mem.search("zq9x", k=1, mode="vector")] == ["d9"]
