"""Texts cut into counted terms for the keyword indexes' bulk loads: per batch of texts, each
text's (term, count) pairs. Terms are those of ``analyzer.term_of`` (stopwords dropped, words
stemmed), each word analysed once and each term numbered in the order first seen, so a word
pool's worker (``engram.index.wordworker``) can do the whole analysis and counting of a batch
and the keyword indexes only map term numbers to their own term ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain, compress, repeat

import numpy as np
import scipy.sparse as sp

from engram.index.analyzer import term_of, word_runs

_NEW = -2  # a word not numbered yet


@dataclass
class Cut:
    """The terms of a batch of texts, counted: text ``cols[i]`` holds term ``terms[i]``
    ``tfs[i]`` times (pairs sorted by text, then term number); ``lengths`` are the terms per
    text (stopwords not counted); ``new`` the terms first seen in this batch, in number order."""

    lengths: np.ndarray  # one per text
    cols: np.ndarray  # the text of each pair, 0-based within the batch
    terms: np.ndarray  # the worker's term numbers
    tfs: np.ndarray
    new: list[str]

    def of_texts(self, keep: np.ndarray) -> Cut:
        """The pairs of the texts where ``keep`` (a mask over texts) holds, renumbered."""
        if keep.all():
            return self
        renumber = np.cumsum(keep) - 1
        pick = keep[self.cols]
        cols = renumber[self.cols[pick]]
        return Cut(self.lengths[keep], cols, self.terms[pick], self.tfs[pick], self.new)


class Cutter:
    """Counts the terms of batches, numbering words and terms across batches."""

    def __init__(self, language: str) -> None:
        self.language = language
        self.word_terms: dict[str, int] = {}  # word run -> term number (-1: no term)
        self.term_numbers: dict[str, int] = {}
        self.terms: list[str] = []  # by number

    def cut(self, texts: Sequence[str]) -> Cut:
        runs = [word_runs(t) for t in texts]
        known = len(self.terms)
        words = list(chain.from_iterable(runs))
        found = np.array(list(map(self.word_terms.get, words, repeat(_NEW))), dtype=np.int32)
        new = found == _NEW
        if new.any():  # words not seen before: each analysed once, then looked up again
            unseen = list(compress(words, new))
            for word in dict.fromkeys(unseen):
                self._number(word)
            found[new] = list(map(self.word_terms.__getitem__, unseen))
        # Each text's (term, count) pairs: a sparse row per text, duplicates summed
        texts_of = np.repeat(np.arange(len(texts)), np.fromiter(map(len, runs), np.int64))
        kept = found >= 0  # stopwords are -1
        lengths = np.bincount(texts_of[kept], minlength=len(texts))
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        shape = (len(texts), max(len(self.terms), 1))
        ones = np.ones(int(indptr[-1]), dtype=np.int32)
        counted = sp.csr_matrix((ones, found[kept], indptr), shape=shape)
        counted.sum_duplicates()  # also sorts each text's terms
        cols = np.repeat(np.arange(len(texts), dtype=np.int32), np.diff(counted.indptr))
        return Cut(lengths, cols, counted.indices, counted.data, self.terms[known:])

    def _number(self, word: str) -> int:
        """The number of a new word's term (-1: none), memoised."""
        term = term_of(word, self.language)
        n = -1
        if term is not None:
            n = self.term_numbers.setdefault(term, len(self.terms))
            if n == len(self.terms):
                self.terms.append(term)
        self.word_terms[word] = n
        return n

    def cut_tuple(self, texts: Sequence[str]) -> tuple:
        """``cut`` as a plain tuple (``Cut(*t)`` rebuilds it), for the worker's pipe."""
        c = self.cut(texts)
        return c.lengths, c.cols, c.terms, c.tfs, c.new
