"""The answer stage: relevant hits -> clusters -> cited prompt -> unmodified model -> Answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from engram.answer_text import (
    attribute,
    is_grounded,
    is_no_answer,
    process_citations,
    strip_preamble,
)
from engram.cluster import Cluster, cluster_hits
from engram.generate.base import Generator
from engram.prompt import NO_ANSWER, Prompt, Source, build_prompt
from engram.types import Hit


@dataclass
class Answer:
    """A model's answer with the sources it cites.

    ``citations`` are the sources cited (by ``[n]`` markers, or, for a model that forgot to cite,
    attributed by term overlap: then ``attributed`` is true). ``unknown_citations`` lists
    numbers the model made up; they are removed from ``answer``.
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

    @property
    def sources(self) -> list[Source]:
        return self.prompt.sources if self.prompt else []

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.answer,
            "no_answer": self.no_answer,
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


def answer_from_hits(
    question: str,
    hits: list[Hit],
    generator: Generator,
    *,
    budget: int = 1200,
    max_tokens: int = 160,
    persona: str | None = None,
    pinned: list[str] | None = None,
    cluster_threshold: float = 0.7,
    no_answer: str = NO_ANSWER,
    stop: list[str] | None = None,
    require_grounding: bool = True,
    on_token: Callable[[str], None] | None = None,
    prompt_only: bool = False,
) -> Answer:
    """Cluster ``hits``, build the cited prompt within ``budget`` and let the model answer.

    With no hits and nothing pinned, the model is not called: memory holds no answer. With
    ``require_grounding``, an answer whose numbers or new terms the passages do not contain is
    replaced by the no-answer sentence (the model's text stays in ``raw``).
    """
    if not hits and not pinned:
        if on_token:
            on_token(no_answer)
        return Answer(question, no_answer, no_answer=True, raw=no_answer)
    clusters = cluster_hits(hits, threshold=cluster_threshold) if hits else []
    room = max(256, generator.context_window - max_tokens - 64)
    prompt = build_prompt(
        question,
        clusters,
        count_tokens=generator.count_tokens,
        budget=min(budget, room),
        persona=persona,
        pinned=pinned,
        no_answer=no_answer,
    )
    if prompt_only:
        return Answer(question, "", clusters=clusters, prompt=prompt)
    pieces = []
    for piece in generator.stream(
        prompt.messages, max_tokens=max_tokens, temperature=0.0, stop=stop
    ):
        pieces.append(piece)
        if on_token:
            on_token(piece)
    raw = "".join(pieces).strip()
    text, cited, unknown = process_citations(raw, prompt.sources)
    text = strip_preamble(text).strip()
    declined = is_no_answer(text)
    ungrounded = (
        require_grounding and not declined and not is_grounded(text, question, prompt.sources)
    )
    if declined or ungrounded:
        return Answer(
            question,
            no_answer,
            clusters=clusters,
            prompt=prompt,
            no_answer=True,
            unknown_citations=unknown,
            raw=raw,
            ungrounded=ungrounded,
        )
    attributed = False
    if not cited:
        cited = attribute(text, prompt.sources)
        attributed = bool(cited)
    return Answer(
        question,
        text,
        cited,
        clusters,
        prompt,
        attributed=attributed,
        unknown_citations=unknown,
        raw=raw,
    )
