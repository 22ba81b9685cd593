"""Bulk loads of documents whose vectors are given: the store writes one batch while the
indexes take in the one before it.

The SQLite store inserts a batch in a few statements that run without Python's global lock
(``engram.store.sqlite_write``), so on two cores its writes overlap the indexing of the
previous batch; in large loads a worker process analyses and counts the texts' terms
meanwhile (``engram.index.wordpool``; it outlives the load, for the next one). The local
indexes take each batch from memory (``LocalRetrieval.index_written``), never reading back
what was just written, and only when the changelog shows that nothing else happened in
between; otherwise they catch up from the changelog as after any write.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import chain

from engram.retrieval import Retrieval
from engram.retrieval.local import LocalRetrieval
from engram.store.base import DocumentRow, Inserted, Store, WriteResult

WORD_POOL_ROWS = 10_000  # a first batch this large: texts are cut into words in a worker
PIPELINED_BATCH = 12_500  # documents a transaction where writes overlap indexing (local)
BATCH = 25_000  # elsewhere (the PostgreSQL store's COPY)


def batch_size(retrieval: Retrieval) -> int:
    """Documents a transaction for a bulk load into ``retrieval``'s indexes. Local indexes take
    each batch while the store writes the next, and a pipeline of smaller batches leaves
    less of the work unoverlapped at its start and end (measured in docs/benchmarks.md)."""
    return PIPELINED_BATCH if isinstance(retrieval, LocalRetrieval) else BATCH


def load_batches(
    store: Store,
    retrieval: Retrieval,
    batches: Iterable[Sequence[DocumentRow]],
    namespace: str,
    model: str,
) -> int:
    """Write every batch (one transaction each) and index it; returns documents changed."""
    with store.bulk_writes():
        if isinstance(retrieval, LocalRetrieval):
            batches = iter(batches)
            first: Sequence[DocumentRow] = next(batches, [])
            with retrieval.bulk_load(word_pool=len(first) >= WORD_POOL_ROWS):
                return _pipelined(store, retrieval, chain([first], batches), namespace, model)
        changed = 0  # other backends read the changelog
        for rows in batches:
            changed += _changed(store.write_documents(namespace, rows, model))
            retrieval.sync(autosave=False)
        store.checkpoint()
        return changed


def _pipelined(
    store: Store,
    retrieval: LocalRetrieval,
    batches: Iterable[Sequence[DocumentRow]],
    namespace: str,
    model: str,
) -> int:
    """Each batch is made ready (``prepare_documents``, words sent to the word pool) while
    the store writes the one before, and indexed while the store writes the one after."""
    changed, flight, written = 0, None, None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="engram-write") as writer:
        for rows in batches:
            words = retrieval.cut_words(rows)  # in the word pool's process, if any
            prepared = store.prepare_documents(rows)
            if flight is not None:
                written = _landed(store, *flight)
                changed += _changed(written[1])
            job = writer.submit(store.write_documents, namespace, rows, model, prepared)
            if written is not None:
                _index(retrieval, *written, job)
            flight = (rows, job, words)
        if flight is not None:
            written = _landed(store, *flight)
            changed += _changed(written[1])
            checkpoint = writer.submit(store.checkpoint)  # while the last batch is indexed
            _index(retrieval, *written, checkpoint)
            checkpoint.result()
    return changed


def _landed(
    store: Store,
    rows: Sequence[DocumentRow],
    job: Future[Sequence[WriteResult]],
    words: Future[tuple] | None,
) -> tuple[Sequence[DocumentRow], Sequence[WriteResult], int, Future[tuple] | None]:
    """A write done: its rows, results, the changelog head after it, and its words."""
    results = job.result()
    return rows, results, store.max_seq(), words


def _index(
    retrieval: LocalRetrieval,
    rows: Sequence[DocumentRow],
    results: Sequence[WriteResult],
    head: int,
    words: Future[tuple] | None,
    busy: Future,
) -> None:
    """Index a write from memory, or else (another writer came in between) catch up from the
    changelog once ``busy``, the store's job meanwhile, is done: the store's connection is
    not read while it runs, and what the changelog shows then is committed."""
    # One index save at the end of the load, not one per save_every_changes rows. A crash
    # meanwhile loses nothing: the indexes catch up from the changelog on the next open.
    if not retrieval.index_written(rows, results, head, words):
        futures.wait([busy])
        retrieval.sync(autosave=False)


def _changed(results: Sequence[WriteResult]) -> int:
    if isinstance(results, Inserted):
        return len(results)  # every one added
    return sum(r.status != "unchanged" for r in results)
