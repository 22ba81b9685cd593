"""Agents of a multi-agent game over one store: each has a private namespace
(``agent:<name>``) and all share one (``shared``). A member's recall, answers and episodes reach
only its own namespace and the shared one; what it writes carries its name as provenance
(``metadata.writer``), which the defences of :mod:`engram.adversarial` weigh."""

from __future__ import annotations

import uuid
from typing import Any

from engram.agents.episodes import EpisodicMemory
from engram.errors import EngramError
from engram.memory import Memory, check_namespace
from engram.types import Document, Hit

PROVENANCE = ("writer",)


class TeamMember:
    """One agent: ``remember`` into its private (or the shared) namespace, ``recall`` and
    ``ask`` over both, ``episodes`` in its private namespace."""

    def __init__(
        self, memory: Memory, name: str, *, shared: str = "shared", prefix: str = "agent:"
    ):
        self.memory = memory
        self.name = name
        self.private = check_namespace(f"{prefix}{name}")
        self.shared = check_namespace(shared)
        if self.private == self.shared:
            raise EngramError("the private and shared namespaces must differ")

    @property
    def namespaces(self) -> list[str]:
        """The namespaces this member reaches that exist yet."""
        store = self.memory.store
        return [n for n in (self.private, self.shared) if store.namespace_exists(n)]

    def remember(
        self,
        text: str,
        *,
        shared: bool = False,
        metadata: dict[str, Any] | None = None,
        id: str | None = None,
    ) -> str:
        """Store ``text`` privately (or in the shared namespace); returns its document id.
        ``metadata.writer`` is always this member's name, whatever ``metadata`` says."""
        if not isinstance(text, str) or not text.strip():
            raise EngramError("a memory needs non-empty text")
        meta = {**(metadata or {}), "writer": self.name}
        key = id or f"{self.name}-{uuid.uuid4().hex[:12]}"
        namespace = self.shared if shared else self.private
        self.memory.add_documents([Document(text, key, metadata=meta)], namespace=namespace)
        return key

    def recall(self, query: str, k: int = 5, *, where: Any = None, **search: Any) -> list[Hit]:
        """Hybrid recall over this member's namespaces only."""
        if "namespace" in search:
            raise EngramError("a team member recalls from its own namespaces only")
        names = self.namespaces
        if not names:
            return []
        return self.memory.search(query, k=k, where=where, namespace=names, **search)

    def ask(self, question: str, **options: Any) -> Any:
        """``Memory.ask`` over this member's namespaces only."""
        if "namespace" in options:
            raise EngramError("a team member asks its own namespaces only")
        names = self.namespaces
        if not names:
            return self.memory.answer(question, [], generator=options.get("generator"))
        return self.memory.ask(question, namespace=names, **options)

    def episodes(self, gamma: float = 0.9) -> EpisodicMemory:
        """This member's episodic memory, in its private namespace."""
        return EpisodicMemory(self.memory, self.private, gamma=gamma)
