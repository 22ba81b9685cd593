"""What the answer stage returns: the answer, its evidence and sources, a confidence."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engram.cluster import Cluster
from engram.prompt import Prompt, Source


@dataclass
class Evidence:
    """A sentence quoted verbatim from a numbered source, on which an answer rests."""

    text: str
    source: Source

    def to_dict(self) -> dict[str, Any]:
        hit = self.source.hit
        return {
            "text": self.text,
            "number": self.source.number,
            "id": hit.id,
            "doc_id": hit.doc_id,
            "source": hit.source,
            "title": hit.title,
        }


@dataclass
class Answer:
    """A model's answer with the sources it cites.

    ``citations`` are the sources cited (by ``[n]`` markers, or, for a model that forgot to cite,
    attributed by term overlap: then ``attributed`` is true). ``unknown_citations`` lists
    numbers the model made up; they are removed from ``answer``. ``evidence`` quotes the
    sentence(s) the answer comes from; ``confidence`` (0 to 1) is the reader's estimate that the
    answer is right. ``reader`` names the reader that produced it (``extract`` or ``generate``).
    """

    question: str
    answer: str
    citations: list[Source] = field(default_factory=list)
    clusters: list[Cluster] = field(default_factory=list)
    prompt: Prompt | None = None
    no_answer: bool = False
    attributed: bool = False
    unknown_citations: list[int] = field(default_factory=list)
    raw: str = ""
    ungrounded: bool = False  # the model answered, but the passages do not back it
    evidence: list[Evidence] = field(default_factory=list)
    confidence: float = 0.0
    reader: str = ""

    @property
    def sources(self) -> list[Source]:
        return self.prompt.sources if self.prompt else []

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "no_answer": self.no_answer,
            "confidence": round(self.confidence, 4),
            "reader": self.reader,
            "evidence": [e.to_dict() for e in self.evidence],
            "citations": [
                {
                    "number": s.number,
                    "id": s.hit.id,
                    "doc_id": s.hit.doc_id,
                    "source": s.hit.source,
                    "title": s.hit.title,
                    "text": s.hit.text,
                }
                for s in self.citations
            ],
            "attributed": self.attributed,
            "ungrounded": self.ungrounded,
            "raw": self.raw,
            "unknown_citations": self.unknown_citations,
            "clusters": [{"label": c.label, "ids": c.ids, "score": c.score} for c in self.clusters],
        }
