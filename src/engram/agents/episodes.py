"""Episodic memory for learning agents: steps (state, action, reward, done) under an episode,
recall of the most similar past states with their actions and discounted returns, a value
estimate per candidate action from its k nearest stored neighbours, and lessons linked to their
episode (episodic control, Blundell et al. 2016; verbal reinforcement, Shinn et al. 2023).

Steps and lessons are documents of one namespace (``metadata.kind`` ``"step"`` or
``"lesson"``), so they live on SQLite and PostgreSQL alike. Similar states are found by hybrid
recall over the state text (``Memory.search``); rewards and returns are read back from the rows
in SQL, so every number is exact and the discount ``gamma`` may change between calls.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engram.errors import EngramError
from engram.memory import Memory, check_namespace
from engram.stored import iter_documents
from engram.types import Document

STEP = "step"
LESSON = "lesson"
RESERVED = ("kind", "episode", "t", "action", "reward", "done")


@dataclass
class Step:
    """One recorded step; ``ret`` is the discounted return from it to the episode's end so
    far, ``similarity`` the cosine to the state recalled for (recall only)."""

    episode: str
    t: int
    state: str
    action: str
    reward: float
    done: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    ret: float = 0.0
    similarity: float | None = None
    lessons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "episode": self.episode,
            "t": self.t,
            "state": self.state,
            "action": self.action,
            "reward": self.reward,
            "done": self.done,
            "return": self.ret,
            "similarity": self.similarity,
            "lessons": self.lessons,
            "metadata": self.metadata,
        }


@dataclass
class ValueEstimate:
    """An action's value in a state: the similarity-weighted mean return of its ``n`` nearest
    stored neighbours that took it (``value`` is None when there is none)."""

    action: str
    value: float | None
    n: int
    similarity: float
    neighbours: list[Step] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "value": self.value,
            "n": self.n,
            "similarity": self.similarity,
            "neighbours": [s.to_dict() for s in self.neighbours],
        }


def discounted_returns(rewards: Sequence[float], gamma: float) -> list[float]:
    """``G_t = r_t + gamma * G_{t+1}`` for every step of one episode."""
    out = [0.0] * len(rewards)
    acc = 0.0
    for i in range(len(rewards) - 1, -1, -1):
        acc = float(rewards[i]) + gamma * acc
        out[i] = acc
    return out


def _check_gamma(gamma: float) -> float:
    if not isinstance(gamma, int | float) or not 0.0 <= gamma <= 1.0:
        raise EngramError(f"gamma must be between 0 and 1, got {gamma!r}")
    return float(gamma)


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise EngramError(f"{what} must be a non-empty string, got {value!r}")
    return value


class EpisodicMemory:
    """Episodes of one agent (or one game) in ``namespace`` of ``memory``."""

    def __init__(self, memory: Memory, namespace: str = "episodes", *, gamma: float = 0.9):
        self.memory = memory
        self.namespace = check_namespace(namespace)
        self.gamma = _check_gamma(gamma)
        self._next: dict[str, int] = {}
        self._closed: set[str] = set()

    # -- writes ---------------------------------------------------------------------------
    def new_episode(self, prefix: str = "ep") -> str:
        """A fresh episode id (``prefix-<hex>``)."""
        return f"{prefix}-{uuid.uuid4().hex[:12]}"

    def _next_t(self, episode: str) -> int:
        if episode not in self._next:
            exists = self.memory.namespace_exists(self.namespace)
            top = (
                self.memory.metadata_max(self.namespace, "t", {"kind": STEP, "episode": episode})
                if exists
                else None
            )
            self._next[episode] = 0 if top is None else int(top) + 1
            if exists and self._rows({"kind": STEP, "episode": episode, "done": True}, limit=1):
                self._closed.add(episode)
        return self._next[episode]

    def record(
        self,
        episode: str,
        state: str,
        action: str,
        reward: float,
        *,
        done: bool = False,
        metadata: dict[str, Any] | None = None,
    ) -> Step:
        """Store one step of ``episode`` (numbered from 0 in order); ``done`` closes it."""
        _text(episode, "episode")
        _text(state, "state")
        _text(action, "action")
        if isinstance(reward, bool) or not isinstance(reward, int | float):
            raise EngramError(f"reward must be a number, got {reward!r}")
        if not math.isfinite(reward):
            raise EngramError(f"reward must be finite, got {reward!r}")
        extra = dict(metadata or {})
        clash = sorted(set(extra) & set(RESERVED))
        if clash:
            raise EngramError(f"metadata keys {clash} are reserved for the step itself")
        t = self._next_t(episode)
        if episode in self._closed:
            raise EngramError(f"episode {episode!r} is done; start a new one")
        meta = {**extra, "kind": STEP, "episode": episode, "t": t, "action": action}
        meta.update(reward=float(reward), done=bool(done))
        doc = Document(state, f"{episode}/step/{t:06d}", title=action, metadata=meta)
        self.memory.add_documents([doc], namespace=self.namespace)
        self._next[episode] = t + 1
        if done:
            self._closed.add(episode)
        return Step(episode, t, state, action, float(reward), bool(done), extra)

    def add_lesson(self, episode: str, text: str, metadata: dict[str, Any] | None = None) -> str:
        """Store a lesson written after ``episode``; returns its document id."""
        _text(episode, "episode")
        _text(text, "lesson")
        extra = dict(metadata or {})
        if set(extra) & {"kind", "episode"}:
            raise EngramError("metadata keys 'kind' and 'episode' are reserved for the lesson")
        n = len(self._rows({"kind": LESSON, "episode": episode}))
        key = f"{episode}/lesson/{n:04d}"
        doc = Document(text, key, metadata={**extra, "kind": LESSON, "episode": episode})
        self.memory.add_documents([doc], namespace=self.namespace)
        return key

    # -- reads from SQL -------------------------------------------------------------------
    def _rows(self, where: dict[str, Any], limit: int | None = None) -> list[Any]:
        if not self.memory.namespace_exists(self.namespace):
            return []
        return list(iter_documents(self.memory, self.namespace, where, limit=limit))

    def _episodes(self, episodes: Sequence[str], gamma: float) -> dict[tuple[str, int], Step]:
        """Every step of these episodes, keyed by (episode, t), with returns and lessons."""
        eps = sorted(set(episodes))
        if not eps:
            return {}
        lessons: dict[str, list[str]] = {}
        for doc in self._rows({"kind": LESSON, "episode": {"$in": eps}}):
            lessons.setdefault(doc.metadata["episode"], []).append(doc.text)
        by_episode: dict[str, list[Step]] = {}
        for doc in self._rows({"kind": STEP, "episode": {"$in": eps}}):
            m = doc.metadata
            extra = {k: v for k, v in m.items() if k not in RESERVED}
            step = Step(
                m["episode"],
                int(m["t"]),
                doc.text,
                m["action"],
                float(m["reward"]),
                bool(m["done"]),
                extra,
            )
            by_episode.setdefault(step.episode, []).append(step)
        out: dict[tuple[str, int], Step] = {}
        for ep, steps in by_episode.items():
            steps.sort(key=lambda s: s.t)
            for s, g in zip(
                steps, discounted_returns([s.reward for s in steps], gamma), strict=True
            ):
                s.ret = g
                s.lessons = lessons.get(ep, [])
                out[(ep, s.t)] = s
        return out

    def steps(self, episode: str, *, gamma: float | None = None) -> list[Step]:
        """The steps of ``episode`` in order, each with its discounted return."""
        g = self.gamma if gamma is None else _check_gamma(gamma)
        found = self._episodes([episode], g)
        return [found[key] for key in sorted(found, key=lambda key: key[1])]

    def lessons(self, episode: str) -> list[str]:
        """The lessons written after ``episode``, oldest first."""
        return [d.text for d in self._rows({"kind": LESSON, "episode": episode})]

    # -- recall ---------------------------------------------------------------------------
    def recall(
        self,
        state: str,
        k: int = 5,
        *,
        action: str | None = None,
        where: dict[str, Any] | None = None,
        min_similarity: float = 0.0,
        gamma: float | None = None,
        query_vector: np.ndarray | None = None,
    ) -> list[Step]:
        """The ``k`` stored steps whose states are nearest to ``state`` (hybrid recall), most
        similar first, each with its action, return (``gamma``) and its episode's lessons.
        ``action`` keeps only steps that took it; ``where`` filters on step metadata."""
        _text(state, "state")
        g = self.gamma if gamma is None else _check_gamma(gamma)
        if not self.memory.namespace_exists(self.namespace):
            return []
        clauses: list[dict[str, Any]] = [{"kind": STEP}]
        if action is not None:
            clauses.append({"action": action})
        if where:
            clauses.append(where)
        qv = self.memory.embed_query(state) if query_vector is None else query_vector
        hits = self.memory.search(
            state,
            k=k,
            where={"$and": clauses},
            namespace=self.namespace,
            with_vectors=True,
            query_vector=qv,
        )
        sims = {h.id: float(np.dot(h.vector, qv)) if h.vector is not None else 0.0 for h in hits}
        hits = [h for h in hits if sims[h.id] >= min_similarity]
        found = self._episodes([h.metadata["episode"] for h in hits], g)
        out = []
        for h in sorted(hits, key=lambda h: -sims[h.id]):
            step = found.get((h.metadata["episode"], int(h.metadata["t"])))
            if step is not None:
                out.append(Step(**{**step.__dict__, "similarity": sims[h.id]}))
        return out

    def values(
        self,
        state: str,
        actions: Sequence[str],
        k: int = 5,
        *,
        min_similarity: float = 0.0,
        gamma: float | None = None,
        query_vector: np.ndarray | None = None,
    ) -> dict[str, ValueEstimate]:
        """For each candidate action, the similarity-weighted mean discounted return of the
        ``k`` nearest stored steps that took it (closer than ``min_similarity``)."""
        _text(state, "state")
        if not actions:
            raise EngramError("values needs at least one candidate action")
        qv = self.memory.embed_query(state) if query_vector is None else query_vector
        out: dict[str, ValueEstimate] = {}
        for a in dict.fromkeys(actions):
            near = self.recall(
                state,
                k,
                action=_text(a, "action"),
                min_similarity=min_similarity,
                gamma=gamma,
                query_vector=qv,
            )
            weights = [max(s.similarity or 0.0, 1e-6) for s in near]
            value = (
                sum(w * s.ret for w, s in zip(weights, near, strict=True)) / sum(weights)
                if near
                else None
            )
            best = max((s.similarity or 0.0 for s in near), default=0.0)
            out[a] = ValueEstimate(a, value, len(near), best, near)
        return out

    def recall_lessons(
        self,
        state: str,
        k: int = 3,
        *,
        min_similarity: float = 0.0,
        query_vector: np.ndarray | None = None,
    ) -> list[Any]:
        """Lessons whose text is nearest to ``state``: hits with ``metadata.episode`` and
        ``scores["similarity"]``."""
        _text(state, "state")
        if not self.memory.namespace_exists(self.namespace):
            return []
        qv = self.memory.embed_query(state) if query_vector is None else query_vector
        hits = self.memory.search(
            state,
            k=k,
            where={"kind": LESSON},
            namespace=self.namespace,
            with_vectors=True,
            query_vector=qv,
        )
        for h in hits:
            h.scores["similarity"] = float(np.dot(h.vector, qv)) if h.vector is not None else 0.0
        return [h for h in hits if h.scores["similarity"] >= min_similarity]
