"""``AgentMemory``: one agent's (user's, character's) conversation memory in a namespace.

Turns are ``engram.turns.Turn``s, stored as documents ``"speaker: text"`` keyed ``turn-<n>``
with metadata ``kind="turn"``, ``speaker``, ``session``, ``turn`` (a running index) and
``importance`` (1-10), dated by ``created_at``.
Recall searches the namespace, narrows it to a time range found in the query or given, and
re-ranks by relevance, recency and importance. Pinned memories (persona, profile) are kept
out of recall and always given to the prompt.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from engram.agents import forgetting, reflection
from engram.agents.forgetting import NOT_PINNED
from engram.agents.scoring import (
    DEFAULT_HALF_LIFE,
    Weights,
    heuristic_importance,
    model_importance,
    rescore,
)
from engram.agents.windows import WindowWeights, window_rank
from engram.generate.base import Generator
from engram.memory import DEFAULT_NAMESPACE, Memory, check_namespace, has_words
from engram.store.filters import parse_where
from engram.stored import iter_documents, latest_time, max_turn
from engram.timeparse import TimeRange, parse_time_range, strip_time_phrase, to_epoch
from engram.turns import Turn
from engram.types import Document, Hit

TurnInput = Mapping[str, Any] | tuple[str, str]  # what remember_session accepts


DEFAULT_WINDOW = WindowWeights()


class AgentMemory:
    """Conversation memory of one agent in ``namespace`` of ``memory``.

    Args:
        weights: relevance / recency / importance weights of recall.
        half_life: seconds for recency to halve (default 7 days).
        importance: ``"heuristic"`` (default, no model) or ``"model"`` (ask the generator).
        generator: for model importance and reflection (default: ``memory.generator``).
        reflect_every: reflect automatically after this many new memories (default never).
        candidates: hits fetched from search before re-ranking.
        window: how turns are scored by the turns around them (``agents/windows.py``);
            ``None``: by the hybrid search's own fused score.
        clock: the current time (seconds since the epoch); replace it to replay history.
    """

    def __init__(
        self,
        memory: Memory,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        weights: Weights | None = None,
        half_life: float = DEFAULT_HALF_LIFE,
        importance: str = "heuristic",
        generator: Generator | None = None,
        reflect_every: int | None = None,
        candidates: int = 50,
        clock: Callable[[], float] = time.time,
        window: WindowWeights | None = DEFAULT_WINDOW,
    ):
        if importance not in ("heuristic", "model"):
            raise ValueError(f"importance must be 'heuristic' or 'model', got {importance!r}")
        self.memory = memory
        self.namespace = check_namespace(namespace)
        self.weights = weights or Weights()
        self.half_life = half_life
        self.importance = importance
        self._generator = generator
        self.reflect_every = reflect_every
        self.candidates = candidates
        self.clock = clock
        self.window = window
        self._next_turn: int | None = None
        self._since_reflection = 0

    @property
    def generator(self) -> Generator:
        return self._generator or self.memory.generator

    # -- writing ------------------------------------------------------------------------------
    def rate(self, text: str) -> int:
        """Importance 1-10 of ``text`` by the configured method."""
        if self.importance == "model":
            return model_importance(text, self.generator)
        return heuristic_importance(text)

    def _turn_index(self) -> int:
        if self._next_turn is None:
            last = max_turn(self.memory, self.namespace)
            self._next_turn = 0 if last is None else last + 1
        index = self._next_turn
        self._next_turn += 1
        return index

    def _turn_document(
        self,
        speaker: str,
        text: str,
        time: Any = None,
        session: Any = None,
        importance: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        ttl: float | None = None,
    ) -> Document:
        if not isinstance(text, str) or not text.strip():
            raise ValueError("a turn needs non-empty text")
        created = to_epoch(time) if time is not None else self.clock()
        meta: dict[str, Any] = dict(metadata or {})
        if ttl is not None:
            meta["expires_at"] = created + float(ttl)
        elif "expires_at" in meta:
            meta["expires_at"] = to_epoch(meta["expires_at"])
        turn = Turn(
            speaker,
            text,
            created,
            session=session,
            index=self._turn_index(),
            importance=int(importance) if importance is not None else self.rate(text),
            metadata=meta,
        )
        return turn.document()

    def remember(
        self,
        speaker: str,
        text: str,
        time: Any = None,
        session: Any = None,
        importance: int | None = None,
        metadata: Mapping[str, Any] | None = None,
        *,
        ttl: float | None = None,
    ) -> str:
        """Store one turn (``time``: epoch seconds, ISO string or datetime; default now).
        ``ttl`` seconds sets ``expires_at``. Returns the document id."""
        doc = self._turn_document(speaker, text, time, session, importance, metadata, ttl)
        self._store([doc])
        return str(doc.id)

    def remember_session(
        self, turns: Iterable[TurnInput], session: Any = None, time: Any = None
    ) -> list[str]:
        """Store a whole session at once (one embedding batch). Each turn is ``(speaker,
        text)`` or a dict with ``speaker`` (or ``role``), ``text`` and optional ``time``,
        ``importance``, ``metadata``, ``ttl``. Returns the document ids."""
        docs = []
        for turn in turns:
            if isinstance(turn, tuple):
                speaker, text = turn
                docs.append(self._turn_document(speaker, text, time, session))
                continue
            docs.append(
                self._turn_document(
                    turn.get("speaker") or turn.get("role") or "unknown",
                    turn["text"],
                    turn.get("time", time),
                    turn.get("session", session),
                    turn.get("importance"),
                    turn.get("metadata"),
                    turn.get("ttl"),
                )
            )
        self._store(docs)
        return [str(d.id) for d in docs]

    def _store(self, docs: list[Document]) -> None:
        if not docs:
            return
        self.memory.add_documents(docs, namespace=self.namespace)
        self._since_reflection += len(docs)
        if self.reflect_every and self._since_reflection >= self.reflect_every:
            self.reflect()

    # -- pinned memories ----------------------------------------------------------------------
    def pin(self, text: str, name: str = "persona", kind: str = "persona") -> str:
        """Pin ``text`` (a persona, a user profile): always in the prompt, never decayed.
        Pinning the same ``name`` again replaces it. Returns the document id."""
        key = f"pinned-{name}"
        meta = {"pinned": True, "kind": kind, "name": name}
        self.memory.add_documents(
            [Document(text.strip(), key, metadata=meta, created_at=self.clock())],
            namespace=self.namespace,
        )
        return key

    def unpin(self, name: str = "persona", reason: str = "unpinned") -> int:
        return self.forget(f"pinned-{name}", reason=reason)

    def pinned(self) -> list[str]:
        """Texts of the pinned memories, oldest first."""
        if not self.memory.namespace_exists(self.namespace):
            return []
        return [d.text for d in iter_documents(self.memory, self.namespace, {"pinned": True})]

    # -- recall -------------------------------------------------------------------------------
    def latest_time(self) -> float | None:
        """``created_at`` of the newest memory (a reference time for replayed history)."""
        return latest_time(self.memory, self.namespace)

    def time_range(self, query: str, reference: Any = None) -> TimeRange | None:
        """The time range a query names ("yesterday", "in May 2023"), or None."""
        ref = to_epoch(reference) if reference is not None else self.clock()
        return parse_time_range(query, ref)

    def recall(
        self,
        query: str,
        k: int = 10,
        since: Any = None,
        until: Any = None,
        *,
        where: Any = None,
        kinds: Iterable[str] | None = None,
        reference: Any = None,
        parse_time: bool = True,
        weights: Weights | None = None,
    ) -> list[Hit]:
        """Memories for ``query``, best first by the agent score (see ``scoring``) over the
        candidates that turn windows rank best (``windows``; ``window=None``: the search's own).

        ``since``/``until`` bound ``created_at``; a time phrase in the query ("yesterday",
        "last week", "in May 2023") is resolved against ``reference`` (default: the clock)
        into a further bound and removed from the search text. ``kinds`` keeps only memories
        of those ``metadata.kind`` values. Pinned memories are never returned.
        """
        if not self.memory.namespace_exists(self.namespace):
            return []
        ref = to_epoch(reference) if reference is not None else self.clock()
        found = parse_time_range(query, ref) if parse_time else None
        lo = to_epoch(since) if since is not None else None
        hi = to_epoch(until) if until is not None else None
        if found is not None:
            query = strip_time_phrase(query, found)
            found = found.intersect(lo, hi)
        elif lo is not None or hi is not None:
            found = TimeRange(lo, hi)
        parts: list[dict[str, Any]] = [NOT_PINNED]
        if found is not None:
            if found.start is not None and found.end is not None and found.start >= found.end:
                return []
            parts.append(found.where())
        if kinds is not None:
            parts.append({"kind": {"$in": list(kinds)}})
        user_where = parse_where(where)
        if user_where:
            parts.append(user_where)
        if not has_words(query):  # "?" or "...": nothing to recall by
            return []
        pool = self.window.pool if self.window is not None else None
        hits = self.memory.search(
            query,
            k=max(k, self.candidates, 2 * (pool or 0)),
            namespace=self.namespace,
            where={"$and": parts},
            candidates=pool,
        )
        if self.window is not None:  # the best by windows go on, as many as before
            hits = window_rank(hits, self.window, query)[: max(k, self.candidates)]
        ranked = rescore(hits, now=ref, weights=weights or self.weights, half_life=self.half_life)
        return ranked[:k]

    def recent(self, n: int = 10, session: Any = None) -> list[Hit]:
        """The ``n`` newest turns (of ``session`` if given), oldest first."""
        if not self.memory.namespace_exists(self.namespace):
            return []
        where: dict[str, Any] = {"kind": "turn"}
        if session is not None:
            where["session"] = session
        docs = list(iter_documents(self.memory, self.namespace, where, newest_first=True, limit=n))
        return self.memory.get([c.id for d in reversed(docs) for c in d.chunks])

    # -- reflection ---------------------------------------------------------------------------
    def reflect(self, n_recent: int = 30, every: int | None = None, **options: Any) -> list[Hit]:
        """Reflect on the ``n_recent`` newest memories (see ``reflection.reflect``); with
        ``every``, only once at least that many memories arrived since the last reflection."""
        if every is not None and self._since_reflection < every:
            return []
        self._since_reflection = 0
        if self.importance == "model":
            options.setdefault("importance", self.rate)
        return reflection.reflect(
            self.memory,
            self.namespace,
            self.generator,
            n_recent=n_recent,
            now=self.clock(),
            **options,
        )

    def sources(self, hit: Hit) -> list[Hit]:
        """The memories a reflection cites (empty for other memories)."""
        return reflection.reflection_sources(self.memory, hit)

    # -- forgetting ---------------------------------------------------------------------------
    def forget(
        self, ids: str | list[str] | None = None, *, where: Any = None, reason: str = ""
    ) -> int:
        """Forget memories by id and/or filter, with an audit record; returns chunks removed."""
        return forgetting.forget(self.memory, self.namespace, ids, where=where, reason=reason)

    def expire(self) -> int:
        """Forget memories whose ``expires_at`` has passed."""
        return forgetting.expire(self.memory, self.namespace, now=self.clock())

    def forget_older_than(self, age: float) -> int:
        """Forget unpinned memories older than ``age`` seconds."""
        return forgetting.forget_older_than(self.memory, self.namespace, age, now=self.clock())

    def decay(self, threshold: float) -> int:
        """Forget unpinned memories whose ``recency * importance / 10`` is below
        ``threshold``."""
        return forgetting.decay(
            self.memory, self.namespace, threshold, half_life=self.half_life, now=self.clock()
        )
