"""Readers: the step that turns a cited prompt into an answer.

- ``extract``: a verbatim span of an evidence sentence, picked by the model's likelihood
  (``extract.py``); grounded by construction, with a calibrated confidence and abstention.
- ``generate``: the model writes the answer (right for large models and endpoints); citations
  are checked and an answer the passages do not back is withheld.
- ``auto``: ``extract`` for small local models that can score text, ``generate`` otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from engram.answer.citations import attribute, process_citations
from engram.answer.evidence import rank_sentences
from engram.answer.extract import ExtractSettings, Similarity, extract
from engram.answer.grounding import CITATION, is_grounded, is_no_answer, strip_preamble
from engram.answer.result import Answer, Evidence
from engram.answer.spans import answer_type
from engram.config import READERS
from engram.errors import EngramError
from engram.generate.base import Generator
from engram.index.analyzer import analyze
from engram.prompt import Prompt, Source

SMALL_MODEL_PARAMETERS = 1_000_000_000  # auto: models below this size extract


@dataclass
class ReadSettings:
    """Everything a reader needs besides the prompt; built from ``Config`` (no defaults here)."""

    max_tokens: int
    stop: list[str] | None
    require_grounding: bool
    no_answer: str
    extract: ExtractSettings


class Reader(Protocol):
    name: str

    def read(
        self,
        question: str,
        prompt: Prompt,
        generator: Generator,
        settings: ReadSettings,
        on_token: Callable[[str], None] | None,
    ) -> Answer:
        """Answer ``question`` from ``prompt`` (its sources are the numbered passages)."""
        ...

    def show(self, question: str, prompt: Prompt, settings: ReadSettings) -> Prompt:
        """The exact prompt the model will read, without calling it."""
        ...


def _declined(question: str, settings: ReadSettings, **fields: object) -> Answer:
    return Answer(question, settings.no_answer, no_answer=True, **fields)  # type: ignore[arg-type]


class ExtractReader:
    """Picks a verbatim span; ``similarity`` (embedding cosines to the question) helps it find
    the evidence sentence that words the answer differently from the question."""

    name = "extract"

    def __init__(self, similarity: Similarity | None = None) -> None:
        self.similarity = similarity

    def read(
        self,
        question: str,
        prompt: Prompt,
        generator: Generator,
        settings: ReadSettings,
        on_token: Callable[[str], None] | None,
    ) -> Answer:
        found = extract(
            question, prompt.sources, generator, settings.extract, similarity=self.similarity
        )
        shown = _reading_prompt(prompt, found.messages, generator)
        if found.best is None:
            _emit(on_token, settings.no_answer)
            return _declined(question, settings, prompt=shown, reader=self.name)
        span = found.best.candidate
        source = next(s for s in prompt.sources if s.number == span.sentence.source)
        evidence = [Evidence(span.sentence.text, source)]
        text = span.text
        if settings.extract.sentence_answers and answer_type(question) == "explanation":
            text = span.sentence.text  # a why/how question wants the whole statement
        if found.confidence < settings.extract.min_confidence:
            _emit(on_token, settings.no_answer)
            return _declined(
                question,
                settings,
                prompt=shown,
                raw=text,
                evidence=evidence,
                confidence=found.confidence,
                reader=self.name,
            )
        _emit(on_token, text)
        return Answer(
            question,
            text,
            [source],
            prompt=shown,
            raw=text,
            evidence=evidence,
            confidence=found.confidence,
            reader=self.name,
        )

    def show(self, question: str, prompt: Prompt, settings: ReadSettings) -> Prompt:
        found = extract(question, prompt.sources, None, settings.extract, prompt_only=True)
        return _reading_prompt(prompt, found.messages, None)


def _reading_prompt(prompt: Prompt, messages: list[dict[str, str]], generator: object) -> Prompt:
    text = "\n\n".join(m["content"] for m in messages)
    count = getattr(generator, "count_tokens", None)
    return Prompt(messages, prompt.sources, text, count(text) if count else 0, prompt.dropped)


def _emit(on_token: Callable[[str], None] | None, text: str) -> None:
    if on_token:
        on_token(text)


class GenerateReader:
    name = "generate"

    def read(
        self,
        question: str,
        prompt: Prompt,
        generator: Generator,
        settings: ReadSettings,
        on_token: Callable[[str], None] | None,
    ) -> Answer:
        pieces = []
        for piece in generator.stream(
            prompt.messages, max_tokens=settings.max_tokens, temperature=0.0, stop=settings.stop
        ):
            pieces.append(piece)
            _emit(on_token, piece)
        raw = "".join(pieces).strip()
        text, cited, unknown = process_citations(raw, prompt.sources)
        text = strip_preamble(text).strip()
        declined = is_no_answer(text)
        ungrounded = (
            settings.require_grounding
            and not declined
            and not is_grounded(text, question, prompt.sources)
        )
        if declined or ungrounded:
            return _declined(
                question,
                settings,
                prompt=prompt,
                unknown_citations=unknown,
                raw=raw,
                ungrounded=ungrounded,
                reader=self.name,
            )
        attributed = not cited
        cited = cited or attribute(text, prompt.sources)
        evidence, share = _best_sentence(text, cited)
        return Answer(
            question,
            text,
            cited,
            prompt=prompt,
            attributed=attributed and bool(cited),
            unknown_citations=unknown,
            raw=raw,
            evidence=evidence,
            confidence=share,
            reader=self.name,
        )

    def show(self, question: str, prompt: Prompt, settings: ReadSettings) -> Prompt:
        return prompt


def _best_sentence(answer: str, cited: list[Source]) -> tuple[list[Evidence], float]:
    """The cited sentence sharing most words with a generated answer, and the share found.

    A generated answer has no likelihood to calibrate, so its confidence is the share of its
    terms that the best evidence sentence contains (none shared: no evidence, confidence 0).
    """
    terms = set(analyze(CITATION.sub(" ", answer)))
    if not cited or not terms:
        return [], 0.0
    ranked = rank_sentences(answer, [(s.number, s.text or s.hit.text) for s in cited])
    if not ranked or not ranked[0].matched:
        return [], 0.0
    best = ranked[0]
    source = next(s for s in cited if s.number == best.source)
    return [Evidence(best.text, source)], min(1.0, best.matched / len(terms))


def choose_reader(name: str, generator: Generator, similarity: Similarity | None = None) -> Reader:
    """The reader for ``name``; ``auto`` extracts with small local models that can score text."""
    if name not in READERS:
        raise EngramError(f"unknown reader {name!r}; use one of {', '.join(READERS)}")
    if name == "extract" or (name == "auto" and _is_small_scorer(generator)):
        return ExtractReader(similarity)
    return GenerateReader()


def _is_small_scorer(generator: Generator) -> bool:
    """Whether ``generator`` can score replies and is small enough to need extraction."""
    if not hasattr(generator, "reply_logprobs"):
        return False
    size = getattr(generator, "parameter_count", None)
    return size is None or size() < SMALL_MODEL_PARAMETERS
