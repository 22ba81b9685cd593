"""Texts analysed in another process during bulk loads, so the keyword analysis of one batch
runs on a second core while the main process indexes the batch before it.

The worker is a plain interpreter (``python -m engram.index.wordworker LANGUAGE``) fed batches
of texts over a pipe: no ``multiprocessing``, so nothing of the caller's main module is
re-imported. It cuts each batch into counted terms (``engram.index.cutting``: word runs,
stopwords, stemming, one (text, term, count) triple per distinct term of a text), numbering
terms in the order it first sees them. ``WordPool.term_ids`` turns those numbers into a keyword
index's term ids with one array lookup (each new term is looked up once per index), so the
indexes of one language (the chunks' and the whole documents') share one analysis and one
count, and the terms are exactly those of ``KeywordIndex.add``.
"""

from __future__ import annotations

import collections
import contextlib
import os
import pickle
import subprocess
import sys
import threading
import weakref
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engram.errors import EngramError
from engram.index.cutting import Cut

if TYPE_CHECKING:
    from engram.index.keyword import KeywordIndex


MAX_TERMS = 4_000_000  # a worker that has numbered more terms is replaced (its memory)
_NONE = np.empty(0, dtype=np.int64)


class WordPoolError(EngramError):
    """The word-cutting worker of a bulk load stopped."""


class WordPool:
    """One worker process that cuts batches in the order they are given; ``take`` must take
    them in that order."""

    def __init__(self, language: str) -> None:
        package_root = str(Path(__file__).resolve().parents[2])  # the folder holding engram
        path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "engram.index.wordworker", language],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": path},
        )
        self._pending: collections.deque[Future[tuple]] = collections.deque()
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engram-words")
        self._reader = threading.Thread(target=self._read, name="engram-words-in", daemon=True)
        self._reader.start()
        self._terms: list[str] = []  # every term seen, by the worker's number
        # each batch's number, in submission order; held weakly, so a batch's counted terms
        # go once its caller drops it (a pool outlives many loads)
        self._order: weakref.WeakKeyDictionary[Future[tuple], int] = weakref.WeakKeyDictionary()
        self._submitted = 0
        self._taken = 0  # batches whose new terms are in ``_terms``
        # per index: its vocabulary (ids hold while it is the same dictionary) and each term
        # number's id in it (-1: not in it yet)
        self._term_of: dict[int, tuple[dict[str, int], np.ndarray]] = {}

    def submit(self, texts: Sequence[str]) -> Future[tuple]:
        job: Future[tuple] = Future()
        self._order[job] = self._submitted
        self._submitted += 1
        self._pending.append(job)
        self._sender.submit(self._send, list(texts))
        return job

    def take(self, job: Future[tuple]) -> Cut:
        """A submitted batch's counted terms. Batches are taken in the order they were
        submitted; one may be taken again."""
        cut = Cut(*job.result())
        number = self._order[job]
        if number == self._taken:  # its new terms follow those of the batches before
            self._terms.extend(cut.new)
            self._taken += 1
        elif number > self._taken:
            raise WordPoolError("word batches taken out of order")
        return cut

    def term_ids(self, index: KeywordIndex, terms: np.ndarray) -> np.ndarray:
        """The worker's term numbers (of batches taken) as ``index``'s term ids; terms new to
        the index are added to its vocabulary. ``index`` analyses the pool's language (every
        keyword index of a store shares one)."""
        vocab, known = self._term_of.get(id(index), (None, _NONE))
        if vocab is not index.vocab:  # first seen, or reset or reloaded since: ids unknown
            known = _NONE
        if len(known) < len(self._terms):
            known = np.concatenate([known, np.full(len(self._terms) - len(known), -1)])
        tids = known[terms]
        if (tids < 0).any():
            new = np.unique(terms[tids < 0])
            known[new] = index.term_ids_of([self._terms[n] for n in new])
            tids = known[terms]
        self._term_of[id(index)] = (index.vocab, known)
        return tids

    def full(self) -> bool:
        """Whether the worker has seen so many terms that it should start afresh."""
        return len(self._terms) > MAX_TERMS

    def close(self) -> None:
        self._sender.shutdown(wait=True)
        if self._proc.stdin:
            with contextlib.suppress(OSError):  # a worker that died leaves a broken pipe
                self._proc.stdin.close()
        self._reader.join()
        self._proc.wait()

    def _send(self, texts: list[str]) -> None:
        try:
            assert self._proc.stdin is not None
            pickle.dump(texts, self._proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self._proc.stdin.flush()
        except OSError:
            pass  # the worker is gone: the reader fails the pending batches

    def _read(self) -> None:
        assert self._proc.stdout is not None
        while True:
            try:
                result = pickle.load(self._proc.stdout)
            except Exception:  # end of the pipe: the worker exited
                error = WordPoolError(f"the word worker exited (code {self._proc.poll()})")
                while self._pending:
                    self._pending.popleft().set_exception(error)
                return
            self._pending.popleft().set_result(result)
