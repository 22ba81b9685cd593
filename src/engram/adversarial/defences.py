"""Defences against memory poisoning, applied to recalled hits before any answer stage reads
them, so they compose with any reader:

- provenance: every memory names its writer (``metadata.writer``; see
  :class:`engram.agents.team.TeamMember`), and each writer has a trust weight that multiplies
  its hits' scores; hits under ``min_trust`` are not used;
- quarantine: a writer not yet approved is quarantined: its memories stay stored and
  searchable but are not used for answers until :meth:`TrustPolicy.approve`;
- instructions: a passage that addresses the model ("ignore previous instructions ...") is
  evidence of nothing and is not used;
- conflicts: two recalled passages from different writers that say different things about the
  same subject (different numbers or names in otherwise similar sentences) are reported with
  both claims and their sources; the less trusted one is not used.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from engram.errors import EngramError
from engram.types import Hit

SETTING = "trust_policy"
UNKNOWN = "unknown"
INSTRUCTION_PATTERNS = [
    r"\b(ignore|disregard|forget)\b[^.\n]{0,40}\b(instructions?|context|passages?|documents?|"
    r"above|prompt|rules)\b",
    r"\bnew instructions?\b|\binstruction override\b",
    r"(^|\n|\s)(system|assistant)\s*:",
    r"<\|?\s*(im_start|im_end|system|endoftext)\s*\|?>",
    r"\b(your|the)\s+answer\s+must\s+be\b",
    r"\b(reply|respond|answer|output|say)\b[^.\n]{0,30}\b(only|exactly|nothing else|instead)\b",
    r"\b(do not|don't)\s+answer\s+from\b",
    r"\bany\s+(ai|assistant|model|llm)\s+reading\b",
]
_INSTRUCTION = re.compile("|".join(f"(?:{p})" for p in INSTRUCTION_PATTERNS), re.I)


def looks_like_instruction(text: str) -> bool:
    """Whether ``text`` addresses the model with instructions rather than stating facts."""
    return bool(_INSTRUCTION.search(text))


def writer_of(hit: Hit) -> str:
    """The hit's writer (provenance), ``unknown`` when it has none."""
    w = hit.metadata.get("writer") if isinstance(hit.metadata, dict) else None
    return w if isinstance(w, str) and w else UNKNOWN


@dataclass
class TrustPolicy:
    """Trust per writer and which writers are approved. Stored in the store's settings
    (:meth:`save`, :meth:`load`) so every process applies the same policy."""

    weights: dict[str, float] = field(default_factory=dict)
    approved: set[str] = field(default_factory=set)
    default: float = 0.5
    min_trust: float = 0.3
    quarantine: bool = True
    instructions: bool = True
    conflicts: bool = True

    def __post_init__(self) -> None:
        for name, w in [*self.weights.items(), ("default", self.default), ("min", self.min_trust)]:
            if isinstance(w, bool) or not isinstance(w, int | float) or not 0.0 <= w <= 1.0:
                raise EngramError(f"trust for {name!r} must be between 0 and 1, got {w!r}")
        self.approved = set(self.approved)

    def trust(self, writer: str) -> float:
        return float(self.weights.get(writer, self.default))

    def approve(self, writer: str, trust: float | None = None) -> None:
        """Let ``writer``'s memories be used for answers (optionally with a trust weight)."""
        if trust is not None:
            TrustPolicy(weights={writer: trust})  # validates
            self.weights[writer] = float(trust)
        self.approved.add(writer)

    def revoke(self, writer: str) -> None:
        """Quarantine ``writer`` again."""
        self.approved.discard(writer)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "approved": sorted(self.approved)}

    def save(self, memory: Any) -> None:
        memory.store.set_setting(SETTING, json.dumps(self.to_dict(), sort_keys=True))

    @classmethod
    def load(cls, memory: Any) -> TrustPolicy:
        """The policy saved in ``memory``'s store (a default policy when none is)."""
        raw = memory.store.get_setting(SETTING)
        return cls(**json.loads(raw)) if raw else cls()


@dataclass
class Excluded:
    hit: Hit
    writer: str
    reason: str  # "quarantined" | "instruction" | "low trust" | "conflict"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.hit.id,
            "doc_id": self.hit.doc_id,
            "writer": self.writer,
            "reason": self.reason,
            "text": self.hit.text,
        }


@dataclass
class Conflict:
    """Two claims that disagree, each with its source and writer."""

    claims: tuple[str, str]
    hits: tuple[Hit, Hit]
    writers: tuple[str, str]
    used: str | None  # the writer whose claim is kept for the answer, None when both are

    def to_dict(self) -> dict[str, Any]:
        return {
            "claims": [
                {"text": c, "writer": w, "id": h.id, "doc_id": h.doc_id, "source": h.source}
                for c, w, h in zip(self.claims, self.writers, self.hits, strict=True)
            ],
            "used": self.used,
        }


@dataclass
class Guarded:
    """Hits fit for answering, what was set aside and why, and the conflicts found."""

    hits: list[Hit]
    excluded: list[Excluded] = field(default_factory=list)
    conflicts: list[Conflict] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "used": [h.id for h in self.hits],
            "excluded": [e.to_dict() for e in self.excluded],
            "conflicts": [c.to_dict() for c in self.conflicts],
        }


def guard(hits: list[Hit], policy: TrustPolicy, *, k: int | None = None) -> Guarded:
    """Apply ``policy`` to recalled ``hits``: the best ``k`` usable hits, trust-weighted (each
    gets ``scores["trust"]``), plus what was set aside and the conflicts found among all of
    them (set-aside ones included, so a contradicting claim is always shown)."""
    from engram.adversarial.conflicts import find_conflicts

    excluded: dict[int, Excluded] = {}
    trust: dict[int, float] = {}
    for h in hits:
        w = writer_of(h)
        reason = None
        if policy.quarantine and w not in policy.approved:
            reason = "quarantined"
        elif policy.instructions and looks_like_instruction(h.text):
            reason = "instruction"
        elif policy.trust(w) < policy.min_trust:
            reason = "low trust"
        if reason:
            excluded[h.id] = Excluded(h, w, reason)
        else:
            trust[h.id] = policy.trust(w)
    conflicts: list[Conflict] = []
    if policy.conflicts:
        for ha, ca, hb, cb in find_conflicts(hits, writer_of):
            ta, tb = trust.get(ha.id, 0.0), trust.get(hb.id, 0.0)
            used = None if ta == tb else writer_of(ha if ta > tb else hb)
            if ta != tb and min(ta, tb) > 0:  # both usable: drop the less trusted claim
                loser = hb if ta > tb else ha
                excluded[loser.id] = Excluded(loser, writer_of(loser), "conflict")
                trust.pop(loser.id)
            if ta == tb == 0.0:
                used = None
            conflicts.append(Conflict((ca, cb), (ha, hb), (writer_of(ha), writer_of(hb)), used))
    usable = []
    for h in hits:
        if h.id in trust:
            h.scores["trust"] = trust[h.id]
            h.score *= trust[h.id]
            usable.append(h)
    usable.sort(key=lambda h: -h.score)
    return Guarded(usable[:k] if k else usable, list(excluded.values()), conflicts)


@dataclass
class GuardedAnswer:
    """An answer from defended evidence, with what the defences did."""

    answer: Any
    guarded: Guarded

    def to_dict(self) -> dict[str, Any]:
        return {**self.answer.to_dict(), "defences": self.guarded.to_dict()}


def guarded_ask(
    memory: Any,
    question: str,
    policy: TrustPolicy | None = None,
    *,
    k: int | None = None,
    depth: int = 3,
    generator: Any = None,
    **search: Any,
) -> GuardedAnswer:
    """``Memory.ask`` with the defences between recall and answer: recall ``depth`` x ``k``
    hits, :func:`guard` them with ``policy`` (default: the one saved in the store), and
    answer from the best ``k`` that remain."""
    policy = policy or TrustPolicy.load(memory)
    k = k or memory.config.answer_k
    hits = memory.recall_evidence(question, k=k * depth, **search)
    guarded = guard(hits, policy, k=k)
    answer = memory.answer(question, guarded.hits, generator=generator)
    return GuardedAnswer(answer, guarded)
