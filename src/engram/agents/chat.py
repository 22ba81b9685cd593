"""``Chat``: a conversation that recalls from memory and writes both turns back to it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from engram.agents.conversation import AgentMemory
from engram.answer import Answer
from engram.generate.base import Generator
from engram.memory import DEFAULT_NAMESPACE, Memory
from engram.types import Hit


class Chat:
    """Send user messages, get replies grounded in the namespace's memories.

    Each ``send`` recalls the ``k`` best memories (agent scoring) plus the last ``history``
    turns of this session, answers with ``Memory.answer`` (persona and pinned memories always
    in the prompt), then stores the user's turn and the reply. ``last`` holds the last
    ``Answer`` (citations, prompt). Usable from any agent framework: it only needs text in
    and text out. Open the memory with ``require_grounding=False`` for free conversation
    (otherwise replies the memories do not back become the no-answer sentence).
    """

    def __init__(
        self,
        memory: Memory,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        persona: str | None = None,
        generator: Generator | None = None,
        k: int = 6,
        history: int = 4,
        user: str = "user",
        assistant: str = "assistant",
        session: str | None = None,
        agent: AgentMemory | None = None,
    ):
        self.memory = memory
        self.agent = agent or AgentMemory(memory, namespace, generator=generator)
        self.persona = persona
        self.generator = generator
        self.k = k
        self.history = history
        self.user = user
        self.assistant = assistant
        self.session = session or time.strftime("chat-%Y%m%dT%H%M%S")
        self.last: Answer | None = None

    def context(self, text: str) -> list[Hit]:
        """Recalled memories for ``text`` plus the latest turns of this session."""
        hits = self.agent.recall(text, k=self.k) if self.k else []
        seen = {h.id for h in hits}
        recent = self.agent.recent(self.history, session=self.session) if self.history else []
        return hits + [h for h in recent if h.id not in seen]

    def send(self, text: str, on_token: Callable[[str], Any] | None = None) -> str:
        """The reply to ``text``; both turns are remembered."""
        text = text.strip()
        if not text:
            raise ValueError("empty message")
        hits = self.context(text)
        self.last = self.memory.answer(
            text,
            hits,
            persona=self.persona,
            pinned=self.agent.pinned(),
            generator=self.generator,
            on_token=on_token,
            reader="generate",  # a conversation wants replies in the model's words
        )
        reply = self.last.answer.strip() or "…"
        self.agent.remember_session(
            [(self.user, text), (self.assistant, reply)], session=self.session
        )
        return reply
