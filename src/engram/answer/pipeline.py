"""The answer stage: relevant hits -> clusters -> cited prompt -> reader -> Answer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from engram.answer.extract import ExtractSettings, Similarity
from engram.answer.readers import Reader, ReadSettings, choose_reader
from engram.answer.result import Answer
from engram.cluster import cluster_hits
from engram.config import Config
from engram.generate.base import Generator, stop_policy
from engram.prompt import NO_ANSWER, build_prompt
from engram.types import Hit


@dataclass
class AnswerSettings:
    """How to answer; built from ``Config`` by ``Memory`` (no defaults of its own)."""

    budget: int
    cluster_threshold: float
    reader: str
    read: ReadSettings

    @classmethod
    def from_config(cls, config: Config, generator: Generator | None = None) -> AnswerSettings:
        """Every value from ``config``; the stop sequences, when the config leaves them
        unset, are the generator's own stop policy (``generate.base.stop_policy``)."""
        stop = config.answer_stop
        if stop is None and generator is not None:
            stop = stop_policy(generator)
        return cls(
            budget=config.answer_budget,
            cluster_threshold=config.cluster_threshold,
            reader=config.reader,
            read=ReadSettings(
                max_tokens=config.answer_max_tokens,
                stop=stop or None,
                require_grounding=config.require_grounding,
                no_answer=NO_ANSWER,
                extract=ExtractSettings(
                    sentences=config.extract_sentences,
                    max_words=config.extract_max_words,
                    min_confidence=config.extract_min_confidence,
                    sentence_answers=config.extract_sentence_answers,
                    similarity_weight=config.extract_similarity_weight,
                ),
            ),
        )


def answer_from_hits(
    question: str,
    hits: list[Hit],
    generator: Generator,
    settings: AnswerSettings,
    *,
    persona: str | None = None,
    pinned: list[str] | None = None,
    on_token: Callable[[str], None] | None = None,
    prompt_only: bool = False,
    reader: Reader | None = None,
    similarity: Similarity | None = None,
) -> Answer:
    """Cluster ``hits``, build the cited prompt within the budget and let the reader answer.

    With no hits and nothing pinned, no model is called: memory holds no answer. The reader
    (``settings.reader`` unless one is given) decides how the model is used; see ``readers.py``.
    ``similarity`` gives the embedding cosine of texts to the question (for the extract reader).
    """
    no_answer = settings.read.no_answer
    if not hits and not pinned:
        if on_token and not prompt_only:
            on_token(no_answer)
        return Answer(question, no_answer, no_answer=True, raw=no_answer)
    reader = reader or choose_reader(settings.reader, generator, similarity)
    clusters = cluster_hits(hits, threshold=settings.cluster_threshold) if hits else []
    room = max(256, generator.context_window - settings.read.max_tokens - 64)
    prompt = build_prompt(
        question,
        clusters,
        count_tokens=generator.count_tokens,
        budget=min(settings.budget, room),
        persona=persona,
        pinned=pinned,
        no_answer=no_answer,
    )
    if prompt_only:
        shown = reader.show(question, prompt, settings.read)
        return Answer(question, "", clusters=clusters, prompt=shown, reader=reader.name)
    answer = reader.read(question, prompt, generator, settings.read, on_token)
    answer.clusters = clusters
    return answer
