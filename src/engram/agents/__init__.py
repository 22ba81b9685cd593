"""Memory for agents and characters: namespaces, conversation turns, time-aware recall with
recency and importance, reflection, pinned memories, forgetting, and a chat loop."""

from engram.agents.chat import Chat
from engram.agents.conversation import AgentMemory
from engram.agents.forgetting import decay, expire, forget, forget_older_than, purge_indexes
from engram.agents.namespaces import (
    copy_namespace,
    delete_namespace,
    export_namespace,
    import_namespace,
    list_namespaces,
)
from engram.agents.reflection import reflect, reflection_sources
from engram.agents.scoring import (
    Weights,
    heuristic_importance,
    model_importance,
    parse_rating,
    recency,
    rescore,
)
from engram.timeparse import TimeRange, parse_time_range, strip_time_phrase

__all__ = [
    "AgentMemory",
    "Chat",
    "TimeRange",
    "Weights",
    "copy_namespace",
    "decay",
    "delete_namespace",
    "expire",
    "export_namespace",
    "forget",
    "forget_older_than",
    "heuristic_importance",
    "import_namespace",
    "list_namespaces",
    "model_importance",
    "parse_rating",
    "parse_time_range",
    "purge_indexes",
    "recency",
    "reflect",
    "reflection_sources",
    "rescore",
    "strip_time_phrase",
]
