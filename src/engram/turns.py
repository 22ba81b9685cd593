"""A conversation turn: the one definition agents, the HTTP/MCP server and export share.

A turn is stored as the document ``"speaker: text"`` (the speaker's name helps recall "what
did Ana say"), titled with the speaker, sourced ``session:<session>`` (else
``conversation``), with metadata ``kind="turn"``, ``speaker``, ``session`` when given, and,
where the writer knows them, ``turn`` (a running index in the namespace, kept by
``AgentMemory``) and ``importance`` (1-10), dated by ``created_at``.

Its key (``turn_key``): ``turn-<index>`` for an indexed turn, else ``turn:`` and a hash of
session, speaker, time and text, so posting the same turn twice stores it once. Keys of
turns stored before this module keep their form: the server's were already ``turn:<hash>``
of the same parts, the agents' ``turn-<n>``; both are found as they are.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from engram.identity import content_hash
from engram.types import Document, Hit

KIND = "turn"


def turn_key(
    speaker: str, text: str, created_at: float, session: Any = None, index: int | None = None
) -> str:
    """The document key of a turn (see the module docstring)."""
    if index is not None:
        return f"turn-{index}"
    session_part = "" if session is None else str(session)
    return "turn:" + content_hash(session_part, speaker, repr(created_at), text)[:32]


def spoken_text(document_text: str, speaker: str) -> str:
    """What the speaker said: a stored turn's text without its ``"speaker: "`` prefix."""
    prefix = f"{speaker}: "
    return (
        document_text[len(prefix) :]
        if speaker and document_text.startswith(prefix)
        else (document_text)
    )


def speakers_named(query: str, hits: Iterable[Hit], *, ignore_case: bool = False) -> list[str]:
    """The speakers of ``hits`` (their ``speaker`` metadata) that ``query`` names as a whole
    word, sorted; as written unless ``ignore_case``."""
    speakers = sorted({str(s) for h in hits if (s := h.metadata.get("speaker"))})
    flags = re.IGNORECASE if ignore_case else 0
    return [s for s in speakers if re.search(rf"(?<!\w){re.escape(s)}(?!\w)", query, flags)]


@dataclass
class Turn:
    """One thing said in a conversation, dated ``created_at`` (seconds since the epoch)."""

    speaker: str
    text: str
    created_at: float
    session: Any = None
    index: int | None = None  # running index in the namespace (AgentMemory)
    importance: int | None = None  # 1-10, when rated
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text.strip():
            raise ValueError("a turn needs non-empty text")
        self.speaker = str(self.speaker).strip() or "unknown"

    @property
    def key(self) -> str:
        return turn_key(self.speaker, self.text, self.created_at, self.session, self.index)

    def document(self) -> Document:
        """The turn as the document it is stored as."""
        meta: dict[str, Any] = dict(self.metadata)
        meta.update(kind=KIND, speaker=self.speaker)
        if self.index is not None:
            meta["turn"] = self.index
        if self.importance is not None:
            meta["importance"] = int(self.importance)
        if self.session is not None:
            meta["session"] = self.session
        return Document(
            text=f"{self.speaker}: {self.text.strip()}",
            id=self.key,
            source=f"session:{self.session}" if self.session not in (None, "") else "conversation",
            title=self.speaker,
            metadata=meta,
            created_at=self.created_at,
        )
