"""``engram eval locomo --retrieval agent``: LoCoMo through an agent's own memory.

Each conversation is stored as an agent stores it: turns only, one
``AgentMemory.remember_session`` per session (the shared image's caption appended, ``dia_id`` in
metadata, heuristic importance), in the namespace ``<conversation namespace>-agent``. Each
question is recalled by ``AgentMemory.recall`` (turn windows and its turn ranker, default
weights; ``ranker=none``: windows alone, ``ranker_pool``: how many it re-orders) at the
conversation's last time. This measures what a user of ``AgentMemory`` gets, beside the views
the evaluation writes for itself.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Any

import numpy as np

from engram.agents.conversation import AgentMemory
from engram.agents.scoring import Weights
from engram.agents.windows import WindowWeights
from engram.errors import EngramError
from engram.memory import Memory
from engram.recall.linear import LinearRanker, fit_logistic

if TYPE_CHECKING:
    from engram.evaluate.locomo import Conversation, Settings


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


def agent_window(settings: Settings) -> WindowWeights:
    """The turn windows of ``settings``: its ``ranker`` (``learned``: the agent's own turn
    ranker, ``none``: windows alone) over its ``ranker_pool`` best turns."""
    if settings.ranker == "none":
        return WindowWeights(ranker=None)
    return WindowWeights(ranked=settings.ranker_pool)


def agent_turns(
    memory: Memory, namespace: str, question: str, k: int, window: WindowWeights | None = None
) -> list[tuple[str, float]]:
    """``(dia_id, score)`` of ``AgentMemory.recall``'s ``k`` best turns, best first (turn
    windows and ranker: ``window``, default ``WindowWeights()``)."""
    agent = AgentMemory(memory, agent_namespace(namespace), window=window or WindowWeights())
    hits = agent.recall(question, k=k, reference=agent.latest_time())
    return [(h.metadata["dia_id"], h.score) for h in hits if "dia_id" in h.metadata]


class _Recorder:
    """A turn ranker that keeps the feature rows it is given and scores by the window score
    (their first column), so the order it returns is the windows' own."""

    def __init__(self) -> None:
        self.rows: list[np.ndarray] = []

    def score(self, x: np.ndarray) -> np.ndarray:
        self.rows.append(x)
        return np.asarray(x[:, 0])


def fit_agent_ranker(
    memory: Memory, convs: list[Conversation], c: float = 0.01, ranked: int = 100
) -> LinearRanker:
    """The ``AgentMemory`` turn ranker (``agents/turn_rank.py``) fitted on the evidence of
    ``convs``' scored questions: the best ``ranked`` turns by window score of each, labelled 1
    when they are evidence. Stores each conversation first, as ``ingest_agent`` does."""
    from engram.evaluate.locomo import _scored_questions  # its caller

    todo, _ = _scored_questions(convs)
    rows = []
    for conv in convs:
        ingest_agent(memory, conv)
    for conv, q in todo:
        recorder = _Recorder()
        window = WindowWeights(ranker=recorder, ranked=ranked)
        agent = AgentMemory(memory, agent_namespace(conv.namespace), window=window)
        hits = agent.recall(
            q.question, k=ranked, reference=agent.latest_time(), weights=Weights(1, 0, 0)
        )
        if not recorder.rows:
            continue  # no candidates: nothing to learn from
        if len(recorder.rows[-1]) != len(hits):
            raise RuntimeError("the recorded turns and the recalled ones differ")
        labels = np.asarray([float(h.metadata.get("dia_id") in q.evidence) for h in hits])
        rows.append((recorder.rows[-1], labels))
    return fit_logistic(rows, c)
