"""Recall: one query -> retrievers -> fusion -> explained hits (``Recaller``), with typed
``RecallSettings`` and, for answers, the ``EvidenceFloor``."""

from engram.recall.recaller import Recaller
from engram.recall.settings import MODES, EvidenceFloor, RecallSettings

__all__ = ["MODES", "EvidenceFloor", "RecallSettings", "Recaller"]
