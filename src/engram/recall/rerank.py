"""Reranking the top candidates with the bundled language model used as a scorer.

The ``top`` best hits are read as one passage per document (its title and its chunks among
them, in stored order; each of its chunks gets the document's score). The model reads each
passage and scores it one of two ways (``Config.rerank_score``), one forward pass per passage
through the local generator's ``reply_logprobs``:

- ``likelihood`` (default): the query's likelihood given the passage, the mean log-probability
  of the query's tokens as the reply to "write a search query that this passage answers"
  (query likelihood, as in unsupervised passage reranking);
- ``yesno``: asked whether the passage answers the query, ``log P("Yes") - log P("No")`` as
  the start of its reply.

The scores are min-max normalised over the ``top`` hits and added, times ``weight``, to the
hits' fused scores (also normalised over them); hits below ``top`` keep their order after.
Each reranked hit records ``scores["rerank"]``.
"""

from __future__ import annotations

import time
from typing import Any

from engram.errors import EngramError
from engram.recall.fusion import minmax
from engram.types import Hit

PROMPT = (
    "Passage: {passage}\n\nQuestion: {query}\n\n"
    "Does the passage answer the question? Answer yes or no."
)
QUERY_PROMPT = "Passage: {passage}\n\nWrite a search query that this passage answers."
MAX_PASSAGE_CHARS = 1500
SCORES = ("likelihood", "yesno")


def check_rerank_score(score: str) -> str:
    if score not in SCORES:
        raise EngramError(f"unknown rerank_score {score!r}; use one of {', '.join(SCORES)}")
    return score


def _scorer(generator: Any) -> Any:
    score = getattr(generator, "reply_logprobs", None)
    if score is None:
        raise EngramError(
            f"the {type(generator).__name__} generator cannot score replies; "
            "reranking needs the local model (generator 'local')"
        )
    return score


def lm_relevance(generator: Any, query: str, passages: list[str]) -> list[float]:
    """``log P(Yes) - log P(No)`` for each passage as an answer to ``query``."""
    score = _scorer(generator)
    out = []
    for passage in passages:
        prompt = PROMPT.format(passage=passage[:MAX_PASSAGE_CHARS], query=query)
        yes, no = score([{"role": "user", "content": prompt}], ["Yes", "No"])
        out.append(yes.tokens[0] - no.tokens[0])
    return out


def lm_likelihood(generator: Any, query: str, passages: list[str]) -> list[float]:
    """The mean log-probability of ``query``'s tokens given each passage."""
    score = _scorer(generator)
    out = []
    for passage in passages:
        prompt = QUERY_PROMPT.format(passage=passage[:MAX_PASSAGE_CHARS])
        (reply,) = score([{"role": "user", "content": prompt}], [query])
        out.append(sum(reply.tokens) / max(len(reply.tokens), 1))
    return out


def _minmax(values: list[float]) -> list[float]:
    scaled = minmax(list(enumerate(values)))
    return [scaled[i] for i in range(len(values))]


def _passages(head: list[Hit]) -> dict[str, str]:
    """One passage per document among ``head``: its title and those of its chunks that are
    in ``head``, in the order they were stored."""
    chunks: dict[str, list[Hit]] = {}
    for h in head:
        chunks.setdefault(h.doc_id, []).append(h)
    out = {}
    for doc, hs in chunks.items():
        text = " ".join(h.text for h in sorted(hs, key=lambda h: h.id))
        out[doc] = f"{hs[0].title}\n{text}" if hs[0].title else text
    return out


def rerank_hits(
    generator: Any,
    query: str,
    hits: list[Hit],
    top: int,
    weight: float,
    score: str = "likelihood",
) -> tuple[list[Hit], float]:
    """``(hits reordered, seconds spent scoring)``; only the first ``top`` move."""
    lm_score = lm_likelihood if check_rerank_score(score) == "likelihood" else lm_relevance
    head, tail = hits[:top], hits[top:]
    if len(head) < 2 or not weight:
        return hits, 0.0
    start = time.perf_counter()
    documents = _passages(head)
    by_doc = dict(zip(documents, lm_score(generator, query, list(documents.values())), strict=True))
    spent = time.perf_counter() - start
    lm = [by_doc[h.doc_id] for h in head]
    fused = _minmax([h.score for h in head])
    for h, f, s, raw in zip(head, fused, _minmax(lm), lm, strict=True):
        h.scores["rerank"] = raw
        h.score = f + weight * s
    head.sort(key=lambda h: -h.score)
    return head + tail, spent
