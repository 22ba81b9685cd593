"""The worker of ``engram.index.wordpool``: reads pickled batches of texts from stdin and
writes, per batch, the word runs' numbers (each distinct run numbered once, in the order first
seen), the count per text and the runs new in that batch. Nothing in the package imports this
module, so ``python -m engram.index.wordworker`` runs it once, as the main module.
"""

from __future__ import annotations

import pickle
import sys
from collections.abc import Sequence
from typing import IO

import numpy as np

from engram.index.analyzer import word_runs

Cut = tuple[np.ndarray, np.ndarray, list[str]]  # counts per text, word numbers, new words


def cut(texts: Sequence[str], numbers: dict[str, int]) -> Cut:
    """``(counts, numbers of the runs, new words)`` of ``texts``; ``numbers`` grows."""
    runs = [word_runs(t) for t in texts]
    counts = np.fromiter(map(len, runs), dtype=np.int64, count=len(runs))
    known = len(numbers)
    found = np.fromiter(
        (numbers.setdefault(w, len(numbers)) for r in runs for w in r),
        dtype=np.int32,
        count=int(counts.sum()),
    )
    return counts, found, list(numbers)[known:]


def _serve(source: IO[bytes], sink: IO[bytes]) -> None:
    numbers: dict[str, int] = {}
    while True:
        try:
            texts = pickle.load(source)
        except EOFError:
            return
        pickle.dump(cut(texts, numbers), sink, protocol=pickle.HIGHEST_PROTOCOL)
        sink.flush()


if __name__ == "__main__":
    _serve(sys.stdin.buffer, sys.stdout.buffer)
