"""Word runs cut in another process during bulk loads, so the keyword analysis of one batch
runs on a second core while the main process indexes the batch before it.

The worker is a plain interpreter (``python -m engram.index.wordworker``) fed batches of texts
over a pipe: no ``multiprocessing``, so nothing of the caller's main module is re-imported.
It numbers each distinct word run in the order it first sees it and sends back, per batch,
the runs' numbers (one int32 array), the count per text and the words it saw first in that
batch. ``WordPool.term_ids`` turns the numbers into the keyword index's term ids with one
array lookup; each new word is analysed (stopwords, stemming) once, in this process, by the
index itself, so the terms are exactly those of ``KeywordIndex.add``.
"""

from __future__ import annotations

import collections
import contextlib
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engram.errors import EngramError

if TYPE_CHECKING:
    from engram.index.keyword import KeywordIndex
    from engram.index.wordworker import Cut  # not imported at run time: see wordworker


class WordPoolError(EngramError):
    """The word-cutting worker of a bulk load stopped."""


class WordPool:
    """One worker process that cuts batches in the order they are given; ``term_ids`` must
    take them in that order."""

    def __init__(self) -> None:
        package_root = str(Path(__file__).resolve().parents[2])  # the folder holding engram
        path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "engram.index.wordworker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": path},
        )
        self._pending: collections.deque[Future[Cut]] = collections.deque()
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engram-words")
        self._reader = threading.Thread(target=self._read, name="engram-words-in", daemon=True)
        self._reader.start()
        self._words: list[str] = []  # every word run seen, by number
        self._order: dict[Future[Cut], int] = {}  # each batch's number, in submission order
        self._taken = 0  # batches whose new words are in ``_words``
        self._term_of: dict[int, np.ndarray] = {}  # per index: word number -> term id (-1)

    def submit(self, texts: Sequence[str]) -> Future[Cut]:
        job: Future[Cut] = Future()
        self._order[job] = len(self._order)
        self._pending.append(job)
        self._sender.submit(self._send, list(texts))
        return job

    def term_ids(self, job: Future[Cut], index: KeywordIndex) -> tuple[np.ndarray, np.ndarray]:
        """``(counts, term ids)`` of a submitted batch in ``index``'s vocabulary, for
        ``KeywordIndex.add_terms``. Batches are taken in the order they were submitted; one
        batch may be taken for several indexes."""
        counts, numbers, new_words = job.result()
        number = self._order[job]
        if number == self._taken:  # its new words follow those of the batches before
            self._words.extend(new_words)
            self._taken += 1
        elif number > self._taken:
            raise WordPoolError("word batches taken out of order")
        known = self._term_of.get(id(index), np.empty(0, dtype=np.int64))
        if len(known) < len(self._words):
            words = self._words[len(known) :]
            fresh = np.fromiter(map(index.term_id_of_word, words), np.int64, len(words))
            known = self._term_of[id(index)] = np.concatenate([known, fresh])
        return counts, known[numbers]

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
