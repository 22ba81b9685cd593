"""The worker of ``engram.index.wordpool``: reads pickled batches of texts from stdin and
writes back, per batch, their terms counted (``engram.index.cutting.Cutter``) as a plain tuple.
Nothing in the package imports this module, so ``python -m engram.index.wordworker LANGUAGE``
runs it once, as the main module.
"""

from __future__ import annotations

import pickle
import sys
from typing import IO

from engram.index.cutting import Cutter


def _serve(source: IO[bytes], sink: IO[bytes], language: str) -> None:
    cutter = Cutter(language)
    while True:
        try:
            texts = pickle.load(source)
        except EOFError:
            return
        pickle.dump(cutter.cut_tuple(texts), sink, protocol=pickle.HIGHEST_PROTOCOL)
        sink.flush()


if __name__ == "__main__":
    _serve(sys.stdin.buffer, sys.stdout.buffer, sys.argv[1])
