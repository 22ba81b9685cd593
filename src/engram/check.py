"""``engram check``: verify a store (SQL integrity, changelog) and its derived index files.

Nothing is changed unless ``repair`` is set; then damaged or inconsistent index files are
rebuilt from the store. The SQL store is the source of truth and is never rewritten here:
damage to it is reported (restore a copy, or `engram export` what is still readable).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engram.config import Config
from engram.retrieval import default_retrieval
from engram.store import open_store
from engram.store.base import Store


@dataclass
class Finding:
    """One part checked: ``ok``, and what was found or done."""

    part: str
    ok: bool
    detail: str
    repaired: bool = False

    def line(self) -> str:
        state = "repaired" if self.repaired else ("ok" if self.ok else "DAMAGED")
        return f"{self.part}: {state}" + (f" ({self.detail})" if self.detail else "")


def live_by_changelog(store: Store, upto: int | None = None) -> np.ndarray:
    """Sorted chunk ids the changelog says exist (added, not deleted), up to change ``upto``."""
    return store.live_chunk_ids(upto)


def check_sql(store: Store) -> list[Finding]:
    """The database's own integrity check, then the changelog against the chunk rows."""
    found = [Finding("sql store", *_verdict(store.integrity_check()))]
    chunks = store.chunk_ids()
    logged = live_by_changelog(store)
    missing = np.setdiff1d(chunks, logged)  # rows no index would ever see
    ghosts = np.setdiff1d(logged, chunks)  # logged as present, yet gone
    problems = []
    if len(missing):
        problems.append(f"{len(missing)} chunks without an add in the changelog")
    if len(ghosts):
        problems.append(f"{len(ghosts)} chunks the changelog lists are missing")
    no_vec = store.chunks_without_vector()
    if no_vec:
        problems.append(f"{no_vec} chunks without a vector")
    detail = "; ".join(problems) or f"{len(chunks)} chunks, {store.max_seq()} changes"
    found.append(Finding("changelog", not problems, detail))
    return found


def _verdict(result: str) -> tuple[bool, str]:
    return (True, "") if result == "ok" else (False, result)


def _live_ids(index: Any) -> np.ndarray:
    index.freeze()
    parts = [s.ids[s.alive] for s in index.segments]
    return np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)


def _index_problems(store: Store, index: Any) -> list[str]:
    """Checksums, then the rows the index holds against the changelog at its position, and for
    the vector index every vector against the store's."""
    problems = index.verify()
    if problems:
        return problems
    if not index.load():  # never saved, or saved with other settings: rebuilt on open
        return index.damaged
    live = getattr(index, "live_chunk_ids", None)  # the document index: rows are documents
    held = live() if live is not None else _live_ids(index)
    want = live_by_changelog(store, index.last_seq)
    if not np.array_equal(held, want):
        extra, lack = np.setdiff1d(held, want), np.setdiff1d(want, held)
        return [f"holds {len(extra)} rows it should not and lacks {len(lack)}"]
    if index.kind == "vector":
        current = np.intersect1d(held, live_by_changelog(store))
        for start in range(0, len(current), 5000):
            part = current[start : start + 5000].tolist()
            ids, mat = store.chunk_vectors(part)
            mine = index.vectors_for(ids.tolist())
            if any(not np.array_equal(mine[int(i)], v) for i, v in zip(ids, mat, strict=True)):
                return ["vectors differ from the store's"]
    return []


def check_indexes(store: Store, config: Config, repair: bool) -> list[Finding]:
    from engram.retrieval.local import LocalRetrieval

    if default_retrieval(store) != "local":
        return [Finding("indexes", True, "kept inside the database")]
    retrieval = LocalRetrieval(store, config, load=False)  # check the files as they are
    found = []
    for index in retrieval.indexes:
        problems = _index_problems(store, index)
        finding = Finding(f"{index.kind} index", not problems, "; ".join(problems))
        if problems and repair:
            n = retrieval.rebuild_and_save(index)
            finding.repaired, finding.detail = True, f"{finding.detail}; rebuilt, {n} chunks"
        elif not problems:
            finding.detail = f"{index.size()} rows, change {index.last_seq}"
        found.append(finding)
    return found


def check_store(location: str | Path, config: Config | None = None, repair: bool = False):
    """Every finding for the store at ``location`` (which must exist)."""
    store = open_store(location, create=False)
    try:
        return check_sql(store) + check_indexes(store, config or Config(), repair)
    finally:
        store.close()
