"""Damaged derived index files: every byte is covered by a checksum in the manifest, so damage
is detected on open and the index rebuilt; results are those of an undamaged store."""

from __future__ import annotations

import logging
import os
import random
import shutil
from pathlib import Path

import pytest

from corpus import corpus
from engram.memory import Memory

QUERIES = ["telescope galaxy redshift", "garlic basil sauce", "uniq7 reference", "wind knots"]
KINDS = {  # file kind -> a glob under <store>.index/
    "keyword segment": "keyword/segments/keyword-*.data.npy",
    "keyword vocabulary": "keyword/segments/vocab-*.npz",
    "keyword tombstones": "keyword/segments/deleted-*.npy",
    "keyword manifest": "keyword/manifest-*.json",
    "keyword CURRENT": "keyword/CURRENT",
    "vector ids": "vector/segments/vector-*.ids.npy",
    "vector rows": "vector/segments/vector-*.vec.npy",
    "vector tombstones": "vector/segments/deleted-*.npy",
    "hnsw graph": "vector/segments/graph-*.faiss",
    "hnsw id table": "vector/segments/graph-*.ids.npy",
    "vector manifest": "vector/manifest-*.json",
    "vector CURRENT": "vector/CURRENT",
}


def _results(mem: Memory) -> list:
    """Ranked ids per query and mode (scores shift by design when a rebuild drops deleted
    rows from BM25 statistics and the HNSW graph)."""
    out = []
    for q in QUERIES:
        for mode in ("keyword", "vector", "hybrid"):
            out.append([h.id for h in mem.search(q, k=8, mode=mode)])
    return out


@pytest.fixture(scope="module")
def template(tmp_path_factory, embedder):
    path = tmp_path_factory.mktemp("damage") / "t.db"
    with Memory(path, embedder=embedder, ann="hnsw") as mem:
        mem.add(corpus(40))
        mem.delete(["doc-3", "doc-11"])
        mem.save()
        baseline = _results(mem)
    rebuilt_path = _copy(path, tmp_path_factory.mktemp("rebuilt"))
    with Memory(rebuilt_path, embedder=embedder, ann="hnsw") as mem:
        mem.reindex()  # BM25 statistics drop the deleted documents on a rebuild
        rebuilt = _results(mem)
    return path, baseline, rebuilt


def _copy(template: Path, dest: Path) -> Path:
    shutil.copy(template, dest / "t.db")
    shutil.copytree(str(template) + ".index", dest / "t.db.index")
    return dest / "t.db"


def _damage(path: Path, rng: random.Random) -> None:
    data = bytearray(path.read_bytes())
    start = rng.randrange(len(data))
    length = rng.choice([1, 1, 4, 64])
    for i in range(start, min(len(data), start + length)):
        data[i] = (data[i] + rng.randrange(1, 256)) % 256  # every byte touched changes
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_random_damage_is_detected_or_harmless(kind, template, tmp_path, embedder, caplog):
    source, baseline, rebuilt = template
    rng = random.Random(kind)
    for trial in range(4):
        folder = tmp_path / f"trial{trial}"
        folder.mkdir()
        path = _copy(source, folder)
        files = sorted((folder / "t.db.index").glob(KINDS[kind]))
        assert files, f"no {kind} file"
        _damage(files[0], rng)
        caplog.clear()
        with (
            caplog.at_level(logging.WARNING, logger="engram.index"),
            Memory(path, embedder=embedder, ann="hnsw") as mem,
        ):
            damaged = [i.damaged for i in (mem.keyword, mem.vector)]
            results = _results(mem)
        # undetected damage must be harmless; detected damage is rebuilt from the store
        assert results == baseline or (any(damaged) and results == rebuilt), kind
        if "manifest" not in kind and "CURRENT" not in kind:  # a checksum covers every byte
            assert any(damaged), f"{kind}: damage not detected"
            assert "fails its checksum" in caplog.text
        with Memory(path, embedder=embedder, ann="hnsw") as mem:  # repaired on disk
            assert mem.keyword.verify() == [] and mem.vector.verify() == []
            assert not mem.keyword.damaged and not mem.vector.damaged


def test_verify_reports_damage_without_loading(template, tmp_path, embedder):
    source = template[0]
    path = _copy(source, tmp_path)
    vec = next((tmp_path / "t.db.index" / "vector" / "segments").glob("*.vec.npy"))
    data = bytearray(vec.read_bytes())
    data[-5] ^= 0xFF  # past the header: only a checksum sees it
    vec.write_bytes(bytes(data))
    from engram.index.vector import FlatVectorIndex

    index = FlatVectorIndex(tmp_path / "t.db.index" / "vector", dim=384)
    problems = index.verify()
    assert len(problems) == 1 and vec.name in problems[0]
    del path


def test_reopen_hashes_only_changed_files_and_sees_in_place_damage(
    template, tmp_path, embedder, monkeypatch
):
    from engram.index import base

    path = _copy(template[0], tmp_path)
    Memory(path, embedder=embedder, ann="hnsw").close()  # verifies every file, records stamps
    calls = []
    real = base.file_checksum
    monkeypatch.setattr(base, "file_checksum", lambda p: calls.append(p.name) or real(p))
    with Memory(path, embedder=embedder, ann="hnsw") as mem:
        assert calls == [] and not mem.vector.damaged  # nothing changed: nothing re-read
    vec = next((tmp_path / "t.db.index" / "vector" / "segments").glob("*.vec.npy"))
    before = vec.stat()
    data = bytearray(vec.read_bytes())
    data[-9] ^= 0x10
    vec.write_bytes(bytes(data))
    os.utime(vec, ns=(before.st_atime_ns, before.st_mtime_ns))  # same size and mtime
    with Memory(path, embedder=embedder, ann="hnsw") as mem:
        assert calls[0] == vec.name and mem.vector.damaged == [vec.name]  # the ctime moved
