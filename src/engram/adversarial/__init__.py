"""Memory under attack: defences against poisoning (provenance and trust, quarantine of new
writers, instruction filtering, conflict detection) and ``engram eval poisoning``, which
measures what an attacker who can write into a shared namespace achieves against ``ask``."""

from engram.adversarial.defences import (
    Conflict,
    Excluded,
    Guarded,
    GuardedAnswer,
    TrustPolicy,
    guard,
    guarded_ask,
    looks_like_instruction,
    writer_of,
)

__all__ = [
    "Conflict",
    "Excluded",
    "Guarded",
    "GuardedAnswer",
    "TrustPolicy",
    "guard",
    "guarded_ask",
    "looks_like_instruction",
    "writer_of",
]
