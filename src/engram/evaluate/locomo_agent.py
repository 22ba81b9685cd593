"""``engram eval locomo --retrieval agent``: LoCoMo through an agent's own memory.

Each conversation is stored as an agent stores it: turns only, one
``AgentMemory.remember_session`` per session (the shared image's caption appended, ``dia_id`` in
metadata, heuristic importance), in the namespace ``<conversation namespace>-agent``. Each
question is recalled by ``AgentMemory.recall`` (turn windows, default weights) at the
conversation's last time. This measures what a user of ``AgentMemory`` gets, beside the views
the evaluation writes for itself.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

from engram.agents.conversation import AgentMemory
from engram.errors import EngramError
from engram.memory import Memory

if TYPE_CHECKING:
    from engram.evaluate.locomo import Conversation


def agent_namespace(namespace: str) -> str:
    """Where ``--retrieval agent`` keeps a conversation (apart from its views)."""
    return f"{namespace}-agent"


def ingest_agent(memory: Memory, conv: Conversation) -> None:
    """Store ``conv``'s turns through ``AgentMemory`` (once: a kept store is reused)."""
    namespace = agent_namespace(conv.namespace)
    if memory.namespace_exists(namespace):
        held = memory.store.count_documents(namespace)
        if held != len(conv.turns):
            raise EngramError(
                f"namespace {namespace} holds {held} of {len(conv.turns)} turns (an earlier run "
                "stopped part way?): delete it and run again"
            )
        return
    sessions: defaultdict[int, list[dict[str, Any]]] = defaultdict(list)
    for t in conv.turns:
        shared = f" [shares {t.caption}]" if t.caption else ""
        sessions[t.session].append(
            {
                "speaker": t.speaker,
                "text": t.text.strip() + shared,
                "time": t.time,
                "metadata": {"dia_id": t.dia_id},
            }
        )
    agent = AgentMemory(memory, namespace)
    for session in sorted(sessions):
        agent.remember_session(sessions[session], session=session)


def agent_turns(memory: Memory, namespace: str, question: str, k: int) -> list[tuple[str, float]]:
    """``(dia_id, score)`` of ``AgentMemory.recall``'s ``k`` best turns, best first."""
    agent = AgentMemory(memory, agent_namespace(namespace))
    hits = agent.recall(question, k=k, reference=agent.latest_time())
    return [(h.metadata["dia_id"], h.score) for h in hits if "dia_id" in h.metadata]
